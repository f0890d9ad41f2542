"""Ingest and search with no network at all, and proof that nothing tried to reach out.

The CLI runs in a child process inside a fresh network namespace (`unshare -n`:
no interfaces but a down loopback) with a Python audit hook that records every
socket connection and DNS look-up attempt. The child environment has none of
the offline variables set, so the product must set them itself.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import write_jsonl

AUDITED_RUN = textwrap.dedent(
    """
    import sys
    attempts = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
            attempts.append((event, repr(args)[:200]))
            raise OSError("network use during an offline test: " + event)
    sys.addaudithook(audit)
    from cli.main import main
    code = main(sys.argv[1:])
    for event, args in attempts:
        print("NETWORK ATTEMPT", event, args, file=sys.stderr)
    sys.exit(code if not attempts else 99)
    """
)
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TIKTOKEN_CACHE_DIR", "HF_DATASETS_OFFLINE")


def _offline_run(args, data_dir):
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES and not k.startswith("RAG_")}
    env["RAG_STORAGE__DATA_DIR"] = str(data_dir)
    command = [sys.executable, "-c", AUDITED_RUN, *args]
    if shutil.which("unshare") and os.geteuid() == 0:
        command = ["unshare", "--net", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_ingest_and_search_need_no_network(tmp_path, small_corpus):
    if not (shutil.which("unshare") and os.geteuid() == 0):
        pytest.skip("needs root and unshare to cut the network")  # CI runs as root
    corpus = write_jsonl(tmp_path / "c.jsonl", small_corpus)
    ingest = _offline_run(["ingest", "--quiet", str(corpus)], tmp_path / "data")
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert "NETWORK ATTEMPT" not in ingest.stderr
    assert "Indexed 12 papers" in ingest.stdout

    search = _offline_run(["search", "--json", small_corpus[2].abstract[:150]], tmp_path / "data")
    assert search.returncode == 0, search.stderr[-3000:]
    assert "NETWORK ATTEMPT" not in search.stderr
    assert small_corpus[2].title in search.stdout


def test_the_audit_hook_does_catch_network_use(tmp_path):
    """The guard above can fail: a connection attempt is caught and reported."""
    probe = AUDITED_RUN.replace(
        "from cli.main import main",
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n    pass\nfrom cli.main import main",
    )
    env = {**os.environ, "RAG_STORAGE__DATA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", probe, "info"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 99
    assert "NETWORK ATTEMPT socket." in run.stderr
