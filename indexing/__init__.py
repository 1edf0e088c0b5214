"""Ingestion: folders of documents -> chunks with citations metadata -> Azure AI Search or the local store.

`sources` finds files, `loaders` reads them, `chunking` cuts them, `pipeline.Indexer` runs an incremental
pass into a `targets.Target` (`targets.LocalTarget` or `azure_target.AzureSearchTarget`, whose index comes
from `azure_schema.build_index`); `factory` builds all of it from settings for `ragbot index`.
"""
