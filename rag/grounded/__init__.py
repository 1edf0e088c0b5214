"""On Your Data's semantics on the client: intent, retrieval, strictness/top_n/in_scope, grounded answer.

Works with any chat model (Azure OpenAI deployments On Your Data refuses, any OpenAI-compatible endpoint) or
with none (the extractive generator), over Azure AI Search or the embedded local store.
"""
