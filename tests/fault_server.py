"""A fault-injecting OpenAI-compatible server for tests (stdlib only).

    with FaultServer("ok") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        server.mode = "error500"   # the next request fails

POST /v1/chat/completions and GET /v1/models behave per `mode`:
  ok          a fixed completion (`reply`), as JSON or as SSE chunks ending in
              `data: [DONE]`, in the OpenAI wire format
  error500/error404/error401
              that status with an OpenAI-style JSON error body
  hang        the request is read and never answered (until the server stops)
  cut_stream  a couple of chunks, then the connection is closed mid-body
              (GET /v1/models answers normally)
  garbage     200 with a body that is not JSON (SSE events that are not JSON
              when streaming)
`requests` counts chat-completion requests; `bodies` holds their JSON bodies.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "error500", "error404", "error401", "hang", "cut_stream", "garbage")
_ERRORS = {
    "error500": (500, "server_error", "The server had an error while processing your request."),
    "error404": (404, "invalid_request_error", "The model `local` does not exist."),
    "error401": (401, "invalid_request_error", "Incorrect API key provided."),
}
GARBAGE = b"<html><body>502 Bad Gateway</body></html>"


class FaultServer:
    def __init__(self, mode: str = "ok", reply: str | Callable[[list[dict]], str] = "Paris is the capital of France [1].",
                 model: str = "local"):
        self.mode = mode
        self.reply = reply
        self.model = model
        self.requests = 0
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fault = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; one of {MODES}")
        self._mode = value

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # releases hanging requests
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, body: dict) -> None:
        with self._lock:
            self.requests += 1
            self.bodies.append(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like real servers

    def log_message(self, *args: object) -> None:
        pass

    @property
    def fault(self) -> FaultServer:
        return self.server.fault

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        mode = self.fault.mode
        if self._fault(mode, stream=False, payload=None):
            return
        self._json(200, {"object": "list", "data": [
            {"id": self.fault.model, "object": "model", "created": 0, "owned_by": "fault-server"}]})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        body = json.loads(raw or b"{}")
        self.fault._record(body)
        mode, stream = self.fault.mode, bool(body.get("stream"))
        if mode in ("ok", "cut_stream"):
            events = self._completion_events(body) if stream else None
            payload = None if stream else self._completion(body)
            if mode == "cut_stream":
                return self._cut(events, payload)
            return self._sse(events) if stream else self._json(200, payload)
        self._fault(mode, stream=stream, payload=body)

    # --- faults -------------------------------------------------------------

    def _fault(self, mode: str, *, stream: bool, payload: dict | None) -> bool:
        """Answer per a fault mode; False for modes that answer normally here."""
        if mode in _ERRORS:
            status, kind, message = _ERRORS[mode]
            self._json(status, {"error": {"message": message, "type": kind, "param": None,
                                          "code": None}})
        elif mode == "hang":
            self.fault._stopped.wait()
            self.close_connection = True
        elif mode == "garbage":
            if stream:
                self._sse([b"data: " + GARBAGE + b"\n\n"], done=False)
            else:
                self._send(200, "application/json", GARBAGE)
        else:
            return False
        return True

    def _cut(self, events: list[bytes] | None, payload: dict | None) -> None:
        if events is not None:
            self._start_chunked()
            for event in events[:2]:
                self._chunk(event)
        else:  # promise the whole body, send half of it
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    # --- the OpenAI wire format ---------------------------------------------

    def _reply(self, body: dict) -> str:
        """The fixed reply, or what a function of the request's messages makes of them."""
        reply = self.fault.reply
        return reply(body.get("messages", [])) if callable(reply) else reply

    def _completion(self, body: dict) -> dict:
        prompt, completion = self._usage(body)
        return {
            "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.fault.model), "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self._reply(body)},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }

    def _completion_events(self, body: dict) -> list[bytes]:
        base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", self.fault.model),
                "system_fingerprint": None}

        def event(delta: dict, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        words = self._reply(body).split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        events = [event({"role": "assistant", "content": ""})]
        events += [event({"content": piece}) for piece in pieces]
        events.append(event({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt, completion = self._usage(body)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion}
            events.append(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode()
                          + b"\n\n")
        return events

    def _usage(self, body: dict) -> tuple[int, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        return prompt, len(self._reply(body).split())

    # --- HTTP ---------------------------------------------------------------

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _sse(self, events: list[bytes], done: bool = True) -> None:
        self._start_chunked()
        for event in events:
            self._chunk(event)
        if done:
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
