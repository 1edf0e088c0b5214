// ragbot on Azure without keys: a user-assigned managed identity is at once the bot's identity
// (Azure Bot, MicrosoftAppType=UserAssignedMSI) and the app's credential for Azure OpenAI,
// Azure AI Search and the container registry, through role assignments.
//
// Deploy into the resource group that holds the Azure OpenAI account, the Azure AI Search service
// and the container registry (see README, "Deploy to Azure"):
//   az deployment group create --resource-group <rg> --template-file manifests/azure/main.bicep \
//     --parameters containerRegistryName=<acr> openAiAccountName=<aoai> openAiDeployment=<chat> \
//                  searchServiceName=<search>

@description('Prefix of every resource name.')
@minLength(3)
@maxLength(16)
param namePrefix string = 'ragbot'

@description('Region of the web app and the identity (the bot registration is global).')
param location string = resourceGroup().location

@description('Azure Container Registry (in this resource group) holding the image built from the Dockerfile.')
param containerRegistryName string

@description('Image name and tag inside the registry.')
param imageName string = 'ragbot:0.1.0'

@description('Azure OpenAI account (in this resource group).')
param openAiAccountName string

@description('Chat model deployment name (AZURE_OPENAI_MODEL).')
param openAiDeployment string

@description('Embedding deployment name for vector queries (AZURE_OPENAI_EMBEDDING_NAME); empty for none.')
param openAiEmbeddingDeployment string = ''

@description('Azure AI Search service (in this resource group) with role-based access enabled.')
param searchServiceName string

@description('Search index built by `ragbot index --target azure` (AZURE_SEARCH_INDEX).')
param searchIndex string = 'ragbot'

@allowed(['simple', 'semantic', 'vector', 'vector_simple_hybrid', 'vector_semantic_hybrid'])
param searchQueryType string = 'simple'

@description('Answer backend: grounded queries the index with the app identity; on_your_data lets Azure OpenAI query it (then its own identity needs access to the index too).')
@allowed(['grounded', 'on_your_data'])
param backend string = 'grounded'

@description('Name shown in Teams and on the bot registration (RAGBOT_APP_NAME).')
@maxLength(30)
param appName string = 'Contoso Help Desk'

@allowed(['B1', 'B2', 'S1', 'P0v3', 'P1v3'])
param appServicePlanSku string = 'B1'

@allowed(['F0', 'S1'])
param botSku string = 'F0'

@description('Web app instances. Above 1, conversation state is kept in Blob storage (RAGBOT_STORAGE=blob), shared by all; at 1, in SQLite on the instance.')
@minValue(1)
@maxValue(10)
param replicas int = 1

var suffix = uniqueString(resourceGroup().id, namePrefix)
var siteName = '${namePrefix}-${suffix}'
var hostName = '${siteName}.azurewebsites.net'
var port = '3978'
var sharedState = replicas > 1
var storageName = toLower(take(replace('${namePrefix}st${suffix}', '-', ''), 24))
var stateContainer = 'ragbot-state'
var stateAccountUrl = 'https://${storageName}.blob.${environment().suffixes.storage}'

// Built-in role definitions (ids are the same in every tenant).
var cognitiveServicesOpenAiUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
var searchIndexDataReader = '1407120a-92aa-4202-b7e9-c0e197c71c8f'
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id-${suffix}'
  location: location
}

resource openAi 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = {
  name: openAiAccountName
}

resource search 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchServiceName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: containerRegistryName
}

resource openAiAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, identity.id, cognitiveServicesOpenAiUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAiUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource searchAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, identity.id, searchIndexDataReader)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', searchIndexDataReader)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource registryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = if (sharedState) {
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = if (sharedState) {
  parent: storage
  name: 'default'
}

resource stateBlobs 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (sharedState) {
  parent: blobService
  name: stateContainer
  properties: {
    publicAccess: 'None'
  }
}

resource storageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (sharedState) {
  name: guid(storage.id, identity.id, storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Traces and metrics (requests, dependencies, customMetrics) in Application Insights on a Log Analytics
// workspace. Local authentication is off: only the bot's identity (Monitoring Metrics Publisher) can send,
// with an Entra ID token, so the connection string is an address, not a credential.
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-ai-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The exporter signs in to Application Insights as the bot's managed identity.
var telemetrySignIn = 'Authorization=AAD;ClientId=${identity.properties.clientId}'

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${namePrefix}-plan-${suffix}'
  location: location
  kind: 'linux'
  sku: {
    name: appServicePlanSku
    capacity: replicas
  }
  properties: {
    reserved: true
  }
}

var appSettings = concat(
  [
    { name: 'WEBSITES_PORT', value: port }
    { name: 'RAGBOT_PORT', value: port }
    { name: 'RAGBOT_PUBLIC_HOSTNAME', value: hostName }
    { name: 'RAGBOT_APP_NAME', value: appName }
    { name: 'RAGBOT_BACKEND', value: backend }
    { name: 'RAGBOT_LOG_FORMAT', value: 'json' }
    { name: 'MicrosoftAppType', value: 'UserAssignedMSI' }
    { name: 'MicrosoftAppId', value: identity.properties.clientId }
    { name: 'MicrosoftAppTenantId', value: tenant().tenantId }
    { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
    { name: 'AZURE_OPENAI_ENDPOINT', value: openAi.properties.endpoint }
    { name: 'AZURE_OPENAI_MODEL', value: openAiDeployment }
    { name: 'AZURE_SEARCH_SERVICE', value: search.name }
    { name: 'AZURE_SEARCH_INDEX', value: searchIndex }
    { name: 'AZURE_SEARCH_QUERY_TYPE', value: searchQueryType }
    { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
    { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: telemetrySignIn }
  ],
  empty(openAiEmbeddingDeployment) ? [] : [{ name: 'AZURE_OPENAI_EMBEDDING_NAME', value: openAiEmbeddingDeployment }],
  sharedState
    ? [
        { name: 'RAGBOT_STORAGE', value: 'blob' }
        { name: 'RAGBOT_BLOB_ACCOUNT_URL', value: stateAccountUrl }
        { name: 'RAGBOT_BLOB_CONTAINER', value: stateContainer }
      ]
    : []
)

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: siteName
  location: location
  kind: 'app,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'DOCKER|${registry.properties.loginServer}/${imageName}'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identity.properties.clientId
      alwaysOn: true
      healthCheckPath: '/healthz'
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      appSettings: appSettings
    }
  }
  dependsOn: [
    registryAccess
    openAiAccess
    searchAccess
    telemetryAccess
    storageAccess
    stateBlobs
  ]
}

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: '${namePrefix}-bot-${suffix}'
  location: 'global'
  kind: 'azurebot'
  sku: {
    name: botSku
  }
  properties: {
    displayName: appName
    endpoint: 'https://${hostName}/api/messages'
    msaAppType: 'UserAssignedMSI'
    msaAppId: identity.properties.clientId
    msaAppTenantId: tenant().tenantId
    msaAppMSIResourceId: identity.id
  }
}

resource teams 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
    }
  }
}

@description('MicrosoftAppId for `ragbot teams-package` (the managed identity\'s client id).')
output botAppId string = identity.properties.clientId

@description('RAGBOT_PUBLIC_HOSTNAME for `ragbot teams-package`.')
output hostName string = hostName

output messagingEndpoint string = 'https://${hostName}/api/messages'
output tenantId string = tenant().tenantId
output botName string = bot.name
output siteName string = site.name
