"""`rag mcp`: the MCP server (serve/mcp_tools.py) for AI agents.

Over stdio by default, the way desktop clients launch a server: stdout carries only the
protocol (the SDK points the process's own stdout at stderr while it serves). With
`--http`, over streamable HTTP at http://HOST:PORT/mcp, under `rag serve`'s rules: loopback
unless told otherwise; on any other address only with API keys (RAG_SERVING__API_KEYS or
RAG_SERVING__API_KEYS_FILE) unless api_allow_unauthenticated says so; with keys, every
request needs one as a bearer token, checked by the API's own check (api/auth.py).
"""

from __future__ import annotations

import sys

from starlette.responses import JSONResponse

from api.auth import KeyCheck, configured_keys
from api.schemas import error_body
from rag.net import LOOPBACK, free_port
from rag.pipeline import Workspace
from rag.settings import Settings
from serve.mcp_tools import build_mcp_server
from serve.startup import check_listen_address, open_served_pipeline

MCP_PATH = "/mcp"
HTTP_HOST, HTTP_PORT = LOOPBACK, 8001  # `rag serve` has 8000


class KeyRequired:
    """An ASGI app behind the API key check: an HTTP request without a valid key gets 401."""

    def __init__(self, app, key_check: KeyCheck):
        self.app, self.key_check = app, key_check

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not self.key_check.allows(authorization or None):
                body = error_body("a valid API key is required: send 'Authorization: Bearer KEY'", code="invalid_api_key")
                await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve_mcp(settings: Settings, http_address: tuple[str, int] | None = None) -> None:
    """Serve over stdio until the client closes it, or, given a (host, port) (port 0: any free
    one), over HTTP until Ctrl-C or SIGTERM. The embedded model, when used, starts in the
    background and stops with the server."""
    keys = configured_keys(settings.serving) if http_address else None
    if http_address:
        check_listen_address(settings, http_address[0], api_keys=keys, page=False)
    with open_served_pipeline(settings) as pipeline:
        server = build_mcp_server(Workspace(pipeline))
        if pipeline.llm.embedded:  # on stderr: with stdio, stdout is the protocol's
            print(f"starting the embedded model ({pipeline.llm.description}) in the background", file=sys.stderr, flush=True)
        if http_address is None:
            server.run("stdio")
            return
        import uvicorn

        host, port = http_address
        port = port or free_port(host)
        app = KeyRequired(server.streamable_http_app(host=host, streamable_http_path=MCP_PATH), KeyCheck(keys))
        print(f"paper-rag MCP server: http://{host}:{port}{MCP_PATH}  (keys required: {'yes' if keys else 'no'}; Ctrl-C to stop)", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
