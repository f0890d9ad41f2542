"""`rag serve` as a subprocess for tests (the API tests and the browser test)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from rag.net import free_port

RAG = str(Path(sys.executable).parent / "rag")


@contextlib.contextmanager
def rag_serve(settings_env: dict[str, str], log: Path, timeout: float = 240) -> Iterator[str]:
    """`rag serve` on a free port of 127.0.0.1 with these RAG_* variables added to the
    environment, once /healthz answers 200; yields the base URL (no trailing slash).
    Stopped (SIGTERM) on exit; its output is in `log`."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [RAG, "serve", "--port", str(port)], env={**os.environ, **settings_env}, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rag serve did not become healthy: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
