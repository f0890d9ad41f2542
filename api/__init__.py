"""`rag serve`: the OpenAI-compatible API under /v1 and the chat page at /, in one process.

app.py      the FastAPI app: routes, back-pressure, timeouts, and `serve`
schemas.py  request bodies (validated, errors name the field) and OpenAI-shaped replies
auth.py     API keys (bearer, constant-time) and the rule for non-loopback binds
"""
