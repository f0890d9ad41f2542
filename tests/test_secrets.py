"""Secrets and exposure (issue 13, item 5).

- The API keys (RAG_SERVING__API_KEYS and RAG_SERVING__API_KEYS_FILE) and the LLM's key
  (llm_api_key) never appear in what the product shows or writes: a real
  `rag serve` subprocess whose LLM endpoint refuses the key with a 401 that
  echoes it (as some endpoints do) is asked through the API (whole and
  streamed) and the page's /ask; its /healthz, /v1/models, page HTML, Gradio
  config (which holds the model panel), error replies and every log it wrote
  are searched for the keys. Then the endpoint dies, and the same again. `rag
  info` (text and --json) and the settings' description are searched too.
- The default listen addresses are loopback, and `rag ui` refuses another
  address without a page login (`rag serve`'s refusal is tested in test_api.py).
- The embedded llama.cpp server listens on 127.0.0.1 only, on a port the
  system picked (its ephemeral range), as /proc/net/tcp shows for the real
  SmolLM2 server's own sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from rag.index import PaperIndex
from rag.local_llm import LocalLLMServer, model_file
from rag.settings import Settings, load_settings
from api.auth import configured_keys
from tests.serving import RAG, rag_serve

pytestmark = pytest.mark.slow

API_KEY = "k-secret-api-7f3a9c1e5b"
FILE_KEY = "k-secret-file-2d8e4b6a0c"
LLM_KEY = "sk-secret-llm-9b1d3f5e7a"
SECRETS = (API_KEY, FILE_KEY, LLM_KEY)
QUESTION = "What problem does TransliCo address, and how?"  # a paper of the twelve indexed


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


class KeyEchoingEndpoint:
    """An OpenAI-compatible endpoint that refuses every key with a 401 that repeats it
    ("Incorrect API key provided: <key>"), recording the keys it was sent."""

    def __init__(self):
        self.keys_seen: list[str] = []
        seen = self.keys_seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _refuse(self):
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                seen.append(key)
                body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}.",
                                             "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._refuse()

            do_GET = _refuse

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def data_dir(real_embedder, bundled_papers, tmp_path_factory) -> Path:
    """A data folder with twelve bundled papers indexed."""
    folder = tmp_path_factory.mktemp("secrets") / "data"
    PaperIndex(Settings(data_dir=folder), real_embedder).ingest(bundled_papers[:12], progress=False)
    return folder


def secret_env(data_dir: Path, llm_base_url: str) -> dict[str, str]:
    keys_file = data_dir.parent / "api-keys.txt"
    keys_file.write_text(f"# the team's key\n{FILE_KEY}\n")
    return {
        "RAG_STORAGE__DATA_DIR": str(data_dir),
        "RAG_SERVING__API_KEYS": API_KEY,
        "RAG_SERVING__API_KEYS_FILE": str(keys_file),
        "RAG_LLM__BASE_URL": llm_base_url,
        "RAG_LLM__API_KEY": LLM_KEY,
        "RAG_LLM__MAX_RETRIES": "0",
        "RAG_LLM__TIMEOUT": "10",
    }


def everything_shown(base: str) -> dict[str, str]:
    """What the served product shows a client, by where it shows it."""
    auth = {"Authorization": f"Bearer {FILE_KEY}"}
    ask = {"model": "default", "messages": [{"role": "user", "content": QUESTION}]}
    shown = {
        "healthz": httpx.get(f"{base}/healthz").text,
        "models": httpx.get(f"{base}/v1/models", headers=auth).text,
        "page": httpx.get(f"{base}/").text,
        "gradio config (the model panel)": httpx.get(f"{base}/config").text,
        "refused key": httpx.post(f"{base}/v1/chat/completions", json=ask,
                                  headers={"Authorization": f"Bearer {API_KEY[:-1]}"}).text,
        "completion": httpx.post(f"{base}/v1/chat/completions", json=ask, headers=auth, timeout=120).text,
        "stream": httpx.post(f"{base}/v1/chat/completions", json={**ask, "stream": True}, headers=auth,
                             timeout=120).text,
        "search": httpx.post(f"{base}/v1/search", json={"query": QUESTION}, headers=auth, timeout=60).text,
    }
    from gradio_client import Client

    page = Client(f"{base}/", verbose=False, analytics_enabled=False)
    shown["page /ask"] = json.dumps(page.predict(QUESTION, api_name="/ask"))
    return shown


def logs_written(data_dir: Path, serve_log: Path) -> dict[str, str]:
    files = [serve_log, *sorted((data_dir / "logs").glob("*"))] if (data_dir / "logs").exists() else [serve_log]
    return {str(path): path.read_text(errors="replace") for path in files}


def test_no_key_is_shown_or_logged_when_the_llm_refuses_it_or_is_gone(data_dir, tmp_path):
    with KeyEchoingEndpoint() as endpoint:
        with rag_serve(secret_env(data_dir, endpoint.base_url), tmp_path / "serve.log") as base:
            refused = everything_shown(base)
    assert LLM_KEY in endpoint.keys_seen  # the key was sent, and came back in the 401
    assert "HTTP 401" in json.loads(refused["completion"])["choices"][0]["message"]["content"]
    assert "HTTP 401" in refused["page /ask"] and "HTTP 401" in refused["stream"]
    assert endpoint.base_url in refused["gradio config (the model panel)"]  # the model panel was read

    dead = endpoint.base_url  # nothing listens there any more
    with rag_serve(secret_env(data_dir, dead), tmp_path / "serve-dead.log") as base:
        unreachable = everything_shown(base)
    assert "cannot reach the language model" in unreachable["completion"]

    for name, text in {**refused, **{f"{k} (dead endpoint)": v for k, v in unreachable.items()}}.items():
        assert not leaked(text), f"{leaked(text)} shown in {name}"
    for path, text in {**logs_written(data_dir, tmp_path / "serve.log"),
                       **logs_written(data_dir, tmp_path / "serve-dead.log")}.items():
        assert not leaked(text), f"{leaked(text)} written to {path}"


def test_rag_info_shows_no_key(data_dir):
    env = {**os.environ, **secret_env(data_dir, "http://127.0.0.1:9/v1")}
    for args in (["info"], ["info", "--json"], ["collections"]):
        done = subprocess.run([RAG, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not leaked(done.stdout + done.stderr), args
    assert json.loads(subprocess.run([RAG, "info", "--json"], env=env, capture_output=True, text=True).stdout)["papers"] == 12


def test_settings_never_show_a_secret():
    settings = Settings(llm_api_key=SecretStr(LLM_KEY), api_keys=SecretStr(API_KEY), ui_username="me",
                        ui_password=SecretStr(FILE_KEY))
    assert configured_keys(settings.serving) == [API_KEY] and settings.llm.api_key.get_secret_value() == LLM_KEY
    for shown in (json.dumps(settings.describe()), repr(settings), str(settings)):
        assert not leaked(shown)


def test_a_secret_of_the_wrong_type_is_not_repeated_in_the_error(tmp_path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text(f'[llm]\napi_key = ["{LLM_KEY}"]\n\n[serving]\napi_keys = {{ key = "{API_KEY}" }}\n')
    monkeypatch.setenv("RAG_CONFIG", str(config))
    with pytest.raises(ValueError) as refused:
        load_settings()
    assert "llm.api_key" in str(refused.value) and "serving.api_keys" in str(refused.value)
    assert not leaked(str(refused.value))


# --- where the product listens ------------------------------------------------------------


def test_every_listen_address_defaults_to_loopback():
    from cli.main import build_parser

    settings = Settings()
    assert settings.serving.ui_host == settings.serving.serve_host == "127.0.0.1"
    assert build_parser().parse_args(["llm-server"]).host == "127.0.0.1"
    assert LocalLLMServer(settings).host == "127.0.0.1"


def test_rag_ui_refuses_a_public_address_without_a_page_login(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_UI_", "RAG_API_"))}
    done = subprocess.run([RAG, "ui", "--host", "0.0.0.0", "--data-dir", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without a login for the page" in done.stderr


def test_rag_ui_checks_the_address_before_anything_starts():
    from rag.errors import SettingsError
    from serve.startup import check_listen_address

    def check_page_bind(settings):
        check_listen_address(settings, settings.serving.ui_host)

    open_page = Settings()
    check_page_bind(open_page)  # loopback
    check_page_bind(open_page.changed(**{"ui_host": "::1"}))
    with pytest.raises(SettingsError, match="without a login for the page"):
        check_page_bind(open_page.changed(**{"ui_host": "192.168.1.5"}))
    check_page_bind(open_page.changed(**{"ui_host": "0.0.0.0", "ui_username": "me", "ui_password": SecretStr("pw")}))
    check_page_bind(open_page.changed(**{"ui_host": "0.0.0.0", "api_allow_unauthenticated": True}))


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of each TCP socket the process listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append((_address(address, width), int(port, 16)))
    return found


def _address(hex_address: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* write each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)) if width == 8 else str(ipaddress.IPv6Address(words))


def test_the_embedded_model_listens_on_loopback_only_on_a_port_the_system_picked(tmp_path):
    settings = Settings(data_dir=tmp_path, local_model="smollm2-135m", local_context_tokens=1024, local_threads=1)
    model_file(settings)
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    with LocalLLMServer(settings) as server:
        server.wait_ready(120)
        sockets = listening_sockets(server.process.pid)
    assert sockets == [("127.0.0.1", server.port)]
    assert low <= server.port <= high  # an ephemeral port the system gave, not a fixed one
