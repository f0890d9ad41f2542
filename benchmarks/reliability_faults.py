"""Reliability suite "faults": processes killed or stopped at random, and what survives.

Cases (all on 127.0.0.1, all state under ``workdir``):

- **kill -9 of a real `rag ingest`** at seeded random moments. Each moment is a
  phase start seen from outside the process (the vector ids recorded just
  before embedding; the next generation's BM25 folder; the committed
  generation) plus a random delay; the phase the kill actually hit is read
  from what it left on disk. After each kill: `rag search` answers, `rag check`
  passes, the committed papers are exactly the old or the new version, and the
  next `rag ingest` completes and leaves nothing pending. Every round ingests a
  new version (20 new papers, 3 edited, the previous 20 removed), so each kill
  interrupts real work. data_lost counts papers of the version before a kill
  that are missing or incomplete after it.
- **SIGKILL of the embedded llama.cpp server during an answer** (the SmolLM2
  model): the answer names the reason and shows the passages; the next
  question restarts the server by itself.
- **the Chroma server stopped during queries** (server mode): a clear message,
  and queries work again once it is back on the same port.
- **two `rag ingest` at once**: the second is refused while the first holds
  the lock; the first completes; nothing interleaves.

    .venv/bin/python benchmarks/reliability_faults.py [--quick] [--workdir DIR]

tests/test_ingest_kill.py and tests/test_faults.py run these cases (quick sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rag.corpus import load_corpus
from rag.paper import Paper
from rag.errors import StoreError
from rag.net import free_port
from rag.settings import BUNDLED_CORPUS, Settings

BIN = Path(sys.executable).parent
RAG = str(BIN / "rag")
KILLS, QUICK_KILLS = 10, 3
SEED = 13
PHASES = ("embedding", "store write", "switch")
# Largest random delay after each phase starts: embedding lasts seconds (batches
# of 4 chunks), writing BM25 and switching generations take milliseconds.
MAX_DELAY_S = {"embedding": 1.0, "store write": 0.01, "switch": 0.05}
FRESH_PAPERS = 20  # papers added (and the previous round's removed) per version
CORE_PAPERS = 10  # papers every version keeps, 3 of them edited each round
STEP_TIMEOUT_S = 900  # generous: a loaded 2-core machine is slow, a quiet one takes seconds


# --- the index as seen from outside the processes ---------------------------------


def _catalog(data_dir: Path) -> Path:
    return data_dir / "index" / "catalog.sqlite"


def _query(data_dir: Path, sql: str) -> list[tuple]:
    """Read the catalog of a possibly running ingest (read-only; [] before its schema exists)."""
    path = _catalog(data_dir)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def committed_generation(data_dir: Path) -> int:
    rows = _query(data_dir, "SELECT value FROM state WHERE key = 'generation'")
    return int(rows[0][0]) if rows else 0


def committed_papers(data_dir: Path) -> dict[str, str]:
    """Paper id -> content hash of the committed generation."""
    return dict(_query(data_dir, "SELECT id, hash FROM papers"))


def _recorded_vectors(data_dir: Path) -> bool:
    return bool(_query(data_dir, "SELECT 1 FROM garbage LIMIT 1"))


def _next_lexical(data_dir: Path, generation: int) -> bool:
    return any((data_dir / "index" / "lexical").glob(f"g{generation + 1}-*"))


# When each phase has started, seen from outside: (data dir, generation before) -> bool.
PHASE_STARTED = {
    "embedding": lambda data, gen: _recorded_vectors(data),  # ids are recorded just before the first batch
    "store write": _next_lexical,
    "switch": lambda data, gen: committed_generation(data) == gen + 1,
}


def _older_lexical(data_dir: Path, generation: int) -> bool:
    return any(not p.name.startswith(f"g{generation + 1}-") for p in (data_dir / "index" / "lexical").glob("g*"))


def phase_hit(data_dir: Path, generation: int) -> str:
    """Which phase a killed ingest was in, from what it left on disk."""
    if committed_generation(data_dir) == generation + 1:
        cleaning = _recorded_vectors(data_dir) or _older_lexical(data_dir, generation)
        return "switch" if cleaning else "after the switch"
    if _next_lexical(data_dir, generation):
        return "store write"
    return "embedding" if _recorded_vectors(data_dir) else "before embedding"


@dataclass(frozen=True)
class KillPlan:
    phase: str  # the phase whose start triggers the kill
    delay_s: float  # then wait this long

    def label(self) -> str:
        return f"{self.delay_s * 1000:.0f} ms into {self.phase}"


def kill_plans(kills: int, seed: int = SEED) -> list[KillPlan]:
    """Random but reproducible moments: the phases in turn, shuffled per cycle, each with a random delay."""
    rng = random.Random(seed)
    plans: list[KillPlan] = []
    while len(plans) < kills:
        cycle = list(PHASES)
        rng.shuffle(cycle)
        plans += [KillPlan(phase, round(rng.uniform(0, MAX_DELAY_S[phase]), 3)) for phase in cycle]
    return plans[:kills]


def versions(papers: list[Paper], count: int) -> list[list[Paper]]:
    """``count`` corpora in turn: the core papers (3 edited per version) and a fresh slice."""
    core = papers[:CORE_PAPERS]
    needed = CORE_PAPERS + FRESH_PAPERS * count
    if needed > len(papers):
        raise ValueError(f"{count} versions need {needed} papers; the corpus has {len(papers)}")
    found = []
    for n in range(count):
        edited = [dataclasses.replace(p, abstract=f"{p.abstract} Revision {n}.") for p in core[:3]]
        start = CORE_PAPERS + FRESH_PAPERS * n
        found.append(edited + core[3:] + papers[start : start + FRESH_PAPERS])
    return found


def write_corpus(path: Path, papers: list[Paper]) -> Path:
    path.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in papers))
    return path


def _hashes(papers: list[Paper]) -> dict[str, str]:
    return {p.id: p.content_hash for p in papers}


# --- running the product's commands ------------------------------------------------


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RAG_STORAGE__DATA_DIR": str(data_dir), **extra}


def rag(args: list[str], env: dict[str, str], timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([RAG, *args], env=env, capture_output=True, text=True, timeout=timeout)


def check(env: dict[str, str], *extra: str) -> tuple[int, dict]:
    """`rag check --json`: its exit code and report ({} if it printed none)."""
    done = rag(["check", "--json", *extra], env)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, {"problems": [done.stderr.strip()[-500:]]}


def search_finds(title: str, env: dict[str, str], *extra: str) -> bool:
    """`rag search` answers, and the paper whose title is asked comes first."""
    done = rag(["search", "--json", "--k", "3", *extra, title], env)
    if done.returncode != 0:
        return False
    papers = json.loads(done.stdout).get("papers", [])
    return bool(papers) and papers[0]["title"] == title


def _kill_when(process: subprocess.Popen, plan: KillPlan, data_dir: Path, generation: int) -> float:
    """SIGKILL the process once the plan's phase has started and its delay passed (or
    when it exits by itself); returns the moment of the kill (time.monotonic)."""
    started = PHASE_STARTED[plan.phase]
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not started(data_dir, generation) and process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"rag ingest never reached the {plan.phase} phase")
        time.sleep(0.002)
    time.sleep(plan.delay_s)
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    process.wait()
    return killed_at


def ingest_kill_cases(workdir: Path, kills: int, seed: int = SEED) -> list[dict]:
    """One dict per kill (see the module docstring); the index lives in workdir/data."""
    data_dir = workdir / "data"
    env = _env(data_dir, RAG_EMBEDDING__BATCH_SIZE="4")  # small batches: the embedding phase lasts
    corpora = versions(load_corpus([BUNDLED_CORPUS]), kills + 1)
    files = [write_corpus(workdir / f"version-{n}.jsonl", papers) for n, papers in enumerate(corpora)]
    first = rag(["ingest", "--quiet", str(files[0])], env)
    if first.returncode != 0:
        raise RuntimeError(f"the first ingest failed: {first.stderr[-2000:]}")

    cases = []
    for n, plan in enumerate(kill_plans(kills, seed)):
        before, target = _hashes(corpora[n]), _hashes(corpora[n + 1])
        generation = committed_generation(data_dir)
        process = subprocess.Popen(
            [RAG, "ingest", "--quiet", str(files[n + 1])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        killed_at = _kill_when(process, plan, data_dir, generation)
        phase = phase_hit(data_dir, generation)
        survivor = next(p for p in corpora[n] if p.id in target and before[p.id] == target[p.id])
        answered = search_finds(survivor.title, env)
        recovery_s = time.monotonic() - killed_at
        code, report = check(env)
        committed = committed_papers(data_dir)
        kept = before if committed != target else {pid: h for pid, h in before.items() if pid in target}
        lost = {pid for pid in kept if pid not in committed} | (set(report.get("incomplete_papers", [])) & set(before))
        next_ingest = rag(["ingest", "--quiet", str(files[n + 1])], env)
        after_code, after = check(env)
        failures = []
        if not answered:
            failures.append("search did not answer after the kill")
        if code != 0:
            failures.append(f"rag check failed after the kill: {report.get('problems')}")
        if committed not in (before, target):
            failures.append("the committed papers are neither the old nor the new version")
        if next_ingest.returncode != 0:
            failures.append(f"the next ingest failed: {next_ingest.stderr.strip()[-300:]}")
        if after_code != 0 or after.get("pending_cleanup") or committed_papers(data_dir) != target:
            failures.append(f"after the next ingest: {after.get('problems')} {after.get('pending_cleanup')}")
        cases.append(
            {
                "case": f"kill -9 rag ingest #{n + 1}",
                "planned": plan.label(),
                "phase": phase,
                "committed": "new" if committed == target else "old" if committed == before else "mixed",
                "pending_cleanup": len(report.get("pending_cleanup", [])),
                "data_lost": len(lost),
                "recovery_s": round(recovery_s, 3),
                "failures": failures,
            }
        )
    return cases


# --- the embedded LLM server killed during an answer ---------------------------------

LLM_KILL_DELAY_S = 0.2  # after the request is sent: the server is reading the prompt


def _index_papers(settings: Settings, papers: list[Paper]) -> None:
    from rag.pipeline import open_pipeline

    open_pipeline(settings, retrieval=False, answering=False).index.ingest(papers, progress=False)


def llm_kill_case(workdir: Path, model: str = "smollm2-135m") -> dict:
    """SIGKILL the llama.cpp server while it answers; the answer must give the reason
    and the passages, and the next question must restart the server and be answered."""
    from rag.pipeline import open_pipeline

    settings = Settings(data_dir=workdir / "llm-data", local_model=model, local_context_tokens=2048)
    papers = load_corpus([BUNDLED_CORPUS])[:12]
    _index_papers(settings, papers)
    question = f"What does the paper {papers[4].title!r} propose?"
    failures = []
    with open_pipeline(settings) as pipeline:
        llm = pipeline.llm
        warm = pipeline.engine.ask(question)
        if warm.error:
            failures.append(f"the first answer failed: {warm.error}")
        killed = _kill_during_next_request(llm)
        broken = pipeline.engine.ask(question)
        killed_at, pid = killed.result()
        if broken.error is None or broken.generated:
            failures.append("the answer during the kill did not report a failure")
        passages = [p.passages[0].text for p in broken.retrieved[:1] if p.passages]
        if not passages or passages[0][:60] not in broken.text:
            failures.append("the failed answer does not show the retrieved passages")
        again = pipeline.engine.ask(question)
        recovery_s = time.monotonic() - killed_at
        restarted = llm.server.process.pid != pid and llm.status() == "ready"
        if again.error is not None or not restarted:
            failures.append(f"the next question was not answered by a restarted server: {again.error} ({llm.status()})")
    return {
        "case": "SIGKILL of the embedded LLM server during an answer",
        "reason_shown": broken.error,
        "error_kind": broken.error_kind,
        "data_lost": 0,
        "recovery_s": round(recovery_s, 3),
        "failures": failures,
    }


class _Killed:
    def __init__(self):
        self._done = threading.Event()
        self._value: tuple[float, int] | None = None

    def set(self, value: tuple[float, int]) -> None:
        self._value = value
        self._done.set()

    def result(self) -> tuple[float, int]:
        if not self._done.wait(60):
            raise TimeoutError("the LLM was never asked, so its server was not killed")
        return self._value


def _kill_during_next_request(llm) -> _Killed:
    """Fault injection at the call boundary: the next request to the model is sent
    as usual, and its server process is SIGKILLed while it works on it."""
    completions = llm.client.chat.completions
    original = completions.create
    killed = _Killed()

    def create(*args, **kwargs):
        completions.create = original  # once
        process = llm.server.process

        def kill() -> None:
            time.sleep(LLM_KILL_DELAY_S)
            process.send_signal(signal.SIGKILL)
            killed.set((time.monotonic(), process.pid))

        threading.Thread(target=kill, daemon=True).start()
        return original(*args, **kwargs)

    completions.create = create
    return killed


# --- the Chroma server stopped during queries --------------------------------------

CHROMA_DOWN_S = 2.0  # how long the server stays down while queries keep coming


@contextlib.contextmanager
def chroma_server(path: Path, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """`chroma run` on 127.0.0.1:port storing in path, once it accepts connections; stopped on exit."""
    chroma = shutil.which("chroma") or str(BIN / "chroma")
    with open(log, "a") as out:
        process = subprocess.Popen(
            [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def chroma_stop_case(workdir: Path) -> dict:
    """Queries keep coming while the Chroma server is killed and, after a while,
    started again on the same port: every failed query is a StoreError saying the
    server is not answering (never another exception), and queries work again."""
    from rag.pipeline import open_pipeline

    port, store, log = free_port(), workdir / "chroma-server", workdir / "chroma.log"
    url = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=workdir / "chroma-client", chroma_url=url)
    papers = load_corpus([BUNDLED_CORPUS])[:12]
    title = papers[5].title
    outcomes: list[str] = []  # "ok", "store error", or the unexpected exception
    failures = []
    with chroma_server(store, port, log) as server:
        _index_papers(settings, papers)
        pipeline = open_pipeline(settings, answering=False)  # a running front-end keeps its client

        def ask() -> None:
            try:
                found = pipeline.retriever.search(title, k=3).papers
                outcomes.append("ok" if found and found[0].title == title else "wrong result")
            except StoreError as err:
                outcomes.append("store error" if "is not answering" in str(err) else f"unclear: {err}")
            except Exception as err:  # what the case looks for: a traceback instead of a message
                outcomes.append(f"{type(err).__name__}: {err}")

        ask()
        stopping = threading.Thread(target=lambda: (server.send_signal(signal.SIGKILL), server.wait()))
        stopping.start()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < CHROMA_DOWN_S:
            ask()
        stopping.join()
        cli = rag(["search", "--chroma-url", url, title], _env(settings.storage.data_dir))
    if cli.returncode != 1 or len(cli.stderr.strip().splitlines()) != 1 or f"Chroma server at {url}" not in cli.stderr:
        failures.append(f"`rag search` with the server down: exit {cli.returncode}, {cli.stderr.strip()[-300:]!r}")
    with chroma_server(store, port, log):
        ask()
        recovery_s = time.monotonic() - stopped_at
    unexpected = sorted({o for o in outcomes if o not in ("ok", "store error")})
    if outcomes[0] != "ok" or outcomes[-1] != "ok":
        failures.append(f"queries before the stop / after the restart: {outcomes[0]} / {outcomes[-1]}")
    if "store error" not in outcomes:
        failures.append("no query met the stopped server")
    failures += [f"a query while the server was down: {o}" for o in unexpected]
    return {
        "case": "Chroma server killed during queries, then restarted on the same port",
        "queries": len(outcomes),
        "store_errors": outcomes.count("store error"),
        "message": cli.stderr.strip(),
        "data_lost": 0,
        "recovery_s": round(recovery_s, 3),
        "failures": failures,
    }


# --- two ingests at once ---------------------------------------------------------------


def concurrent_ingest_case(workdir: Path) -> dict:
    """A second `rag ingest`, started while the first holds the lock, is refused with
    a message; the first completes; the index holds exactly the first one's papers."""
    data_dir = workdir / "concurrent"
    env = _env(data_dir, RAG_EMBEDDING__BATCH_SIZE="4")
    corpora = versions(load_corpus([BUNDLED_CORPUS]), 2)
    files = [write_corpus(workdir / f"concurrent-{n}.jsonl", papers) for n, papers in enumerate(corpora)]
    first = subprocess.Popen(
        [RAG, "ingest", "--quiet", str(files[0])], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not _recorded_vectors(data_dir) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the first is embedding, lock held
    second = rag(["ingest", "--quiet", str(files[1])], env)
    first_out, first_err = first.communicate(timeout=STEP_TIMEOUT_S)
    code, report = check(env)
    failures = []
    if first.returncode != 0:
        failures.append(f"the first ingest failed: {first_err.strip()[-300:]}")
    if second.returncode != 1 or "another ingest is running" not in second.stderr:
        failures.append(f"the second ingest was not refused: exit {second.returncode}, {second.stderr.strip()[-300:]!r}")
    if code != 0 or committed_papers(data_dir) != _hashes(corpora[0]):
        failures.append(f"the index is not exactly the first ingest's: {report.get('problems')}")
    return {
        "case": "two rag ingest at once",
        "second_said": second.stderr.strip(),
        "data_lost": len(set(_hashes(corpora[0]).items()) - set(committed_papers(data_dir).items())),
        "recovery_s": None,
        "failures": failures,
    }


# --- the suite -------------------------------------------------------------------------


def run(workdir: Path, quick: bool = False) -> dict:
    """Every case above (quick: 3 kills instead of 10); see the module docstring."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    kills = QUICK_KILLS if quick else KILLS
    details: list[dict] = []
    for name, case in (
        ("ingest-kills", lambda folder: ingest_kill_cases(folder, kills)),
        ("llm-kill", lambda folder: [llm_kill_case(folder)]),
        ("chroma-stop", lambda folder: [chroma_stop_case(folder)]),
        ("concurrent-ingests", lambda folder: [concurrent_ingest_case(folder)]),
    ):
        folder = workdir / name
        folder.mkdir(exist_ok=True)
        try:
            details += case(folder)
        except Exception as err:  # a case that could not run is a failed case, not a crashed suite
            details.append({"case": name, "data_lost": 0, "recovery_s": None, "failures": [f"{type(err).__name__}: {err}"]})
    latencies = [d["recovery_s"] for d in details if d.get("recovery_s") is not None]
    kill_cases = [d for d in details if d["case"].startswith("kill -9 rag ingest")]
    return {
        "suite": "faults",
        "cases": len(details),
        "survived": sum(not d["failures"] for d in details),
        "data_lost": sum(d["data_lost"] for d in details),
        "worst_latency_s": max(latencies, default=None),
        "headline": {f"data lost over {len(kill_cases)} kills": sum(d["data_lost"] for d in kill_cases)},
        "failures": [f"{d['case']}: {f}" for d in details for f in d["failures"]],
        "details": details,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KILLS} kills instead of {KILLS}")
    parser.add_argument("--workdir", type=Path, help="keep the state here (default: a temporary folder)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-faults-")))
        print(json.dumps(run(workdir, args.quick), indent=2))


if __name__ == "__main__":
    main()
