"""Every aiohttp handler: WHEP, the JSON API, the admin API, pages and SSE, with one
JSON error middleware and CORS. Handlers parse, call control/, and serialize."""
