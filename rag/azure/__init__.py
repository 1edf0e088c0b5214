"""Azure OpenAI: the On Your Data backend and the HTTP client every model call in `rag` shares.

`client` (transport, auth, retries, rate limit, SSE, error mapping), `dialects` (what each api-version
accepts), `data_source` + `chat_request` (pure request builders), `responses` (parsing, streaming),
`security` (group filters), `embeddings`, `on_your_data` (the Answerer).
"""
