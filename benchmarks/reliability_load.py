"""Reliability suite "load": users at once against one real `rag serve` (the API
and the page in one process) on the embedded smollm2-135m model.

For each level (8, 16, 32 users; quick: 4) and for a bounded time, that many
users ask through the API (`/v1/chat/completions`, half of them whole answers,
half streamed, with httpx) and as many more through the page (gradio_client, the
page's /chat, as benchmarks/ui_load.py does), all at once. Each user asks the
question set's questions in turn, waits a little, asks again; told the server
is busy (API: 429 with Retry-After; page: a "busy, ask again in 10 s" message,
or Gradio's "queue is full"), it waits and retries, as a client should. Both
front-ends wait at one queue at the model (rag/admission.py).

Recorded per level and front-end (api-whole, api-stream, page): requests,
completed answers, busy replies, errors by kind, p50/p95/max latency of the
completed ones, and hung requests: no reply within answer_timeout plus a
margin (the page and the API must end every answer by then). Per level and overall: the RSS of the serve process and its
children (the llama.cpp server), sampled every RSS_SAMPLE_S, with its slope,
and the tracebacks the server logged. Overload must give busy replies, never
hung requests or tracebacks.

    .venv/bin/python benchmarks/reliability_load.py [--quick] [--workdir DIR]

benchmarks/reliability.py runs it as a suite (run(workdir, quick)); the full
run prints its time bound first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks.ui_load import percentile  # noqa: E402
from rag.admission import RETRY_AFTER_SECONDS  # noqa: E402
from rag.net import free_port  # noqa: E402

QUESTIONS = ROOT / "eval" / "questions.jsonl"
RAG = str(Path(sys.executable).parent / "rag")

FULL_LEVELS, FULL_LEVEL_S = (8, 16, 32), 90.0
QUICK_LEVELS, QUICK_LEVEL_S = (4,), 15.0
HUNG_MARGIN_S = 15.0  # beyond answer_timeout, a request with no reply is hung
THINK_S = (0.5, 2.0)  # a user's pause between a reply and the next question
ARRIVAL_GAP_S = 0.25  # API users arrive in turn, so the first places go to both kinds (whole, streamed)
QUEUE_FULL_WAIT_S = 5.0  # Gradio's "queue is full" says no time: the wait before retrying
RSS_SAMPLE_S = 1.0
RSS_JUDGED_AFTER_S = 60.0  # a level shorter than this is too short to call RSS growth a leak
RSS_TIMELINE_EVERY = 5  # every 5th sample goes into the report's timeline
RSS_GROWTH_LIMIT_MB_PER_MIN = 20.0
INGEST_TIMEOUT_S = 900.0
SERVE_READY_TIMEOUT_S = 300.0
CLEAR_EVERY = 3  # a page user starts a new conversation after this many questions

# The served configuration: the fast embedded model, one llama.cpp thread (a core
# for the app), short replies; answer_timeout bounds how long a level drains.
BASE_ENV = {"RAG_LLM__LOCAL_MODEL": "smollm2-135m", "RAG_LLM__LOCAL_THREADS": "1", "RAG_LLM__MAX_TOKENS": "128"}
FULL_ENV = {"RAG_ANSWERING__ANSWER_TIMEOUT": "60"}  # the model's queue as shipped (2 answers at once, 8 waiting)
# Quick: two places (1 answer, 1 waiting) for 4 users per front-end, so both front-ends are told busy
# (the point): the API users arrive 0.25 s apart and the page users with them, while the first answer
# takes seconds. A slow CI machine answers slowly, so the deadline is long: hung means no reply at all.
QUICK_ENV = {"RAG_ANSWERING__ANSWER_TIMEOUT": "120", "RAG_ANSWERING__ANSWER_CONCURRENCY": "1", "RAG_ANSWERING__ANSWER_MAX_QUEUE": "1"}
FRONT_ENDS = ("api-whole", "api-stream", "page")


@dataclass
class Tally:
    """What one front-end's users got during one level (added to under Load's lock)."""

    requests: int = 0
    completed: int = 0
    busy: int = 0
    hung: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def add(self, outcome: str, seconds: float) -> None:
        """outcome: "completed", "busy", "hung", or an error kind."""
        self.requests += 1
        if outcome == "completed":
            self.completed += 1
            self.latencies.append(seconds)
        elif outcome in ("busy", "hung"):
            setattr(self, outcome, getattr(self, outcome) + 1)
        else:
            self.errors[outcome] = self.errors.get(outcome, 0) + 1

    def summary(self) -> dict:
        return {
            "requests": self.requests, "completed": self.completed, "busy": self.busy, "hung": self.hung,
            "errors": dict(sorted(self.errors.items())),
            "latency_s": {"p50": percentile(self.latencies, 0.5), "p95": percentile(self.latencies, 0.95),
                          "max": round(max(self.latencies), 2) if self.latencies else None},
        }


def load_questions() -> list[str]:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    return [row["question"] for row in rows]


# --- the users ----------------------------------------------------------------------------


@dataclass
class Load:
    """One level: the users share its stop signal, its deadline per request and its tallies."""

    base: str
    questions: list[str]
    deadline_s: float
    stop: threading.Event = field(default_factory=threading.Event)
    tallies: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in FRONT_ENDS})
    asking: dict[str, str] = field(default_factory=dict)  # user -> the front-end it is waiting on
    closed: bool = False  # counted: what a user still waiting reports later is not
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, user: str, front_end: str) -> float:
        with self.lock:
            self.asking[user] = front_end
        return time.monotonic()

    def end(self, user: str, outcome: str, started: float) -> None:
        with self.lock:
            front_end = self.asking.pop(user)
            if not self.closed:
                self.tallies[front_end].add(outcome, time.monotonic() - started)

    def close(self) -> None:
        """After the drain: a user still waiting has a hung request."""
        with self.lock:
            self.closed = True
            for front_end in self.asking.values():
                self.tallies[front_end].add("hung", 0.0)

    def pause(self, seconds: float) -> None:
        self.stop.wait(seconds)


def api_user(load: Load, user: int) -> None:
    """Asks through the API until the level stops: even users whole answers, odd users streamed."""
    rng = random.Random(user)
    stream = user % 2 == 1
    timeout = httpx.Timeout(load.deadline_s, connect=10.0)
    load.pause(user * ARRIVAL_GAP_S)
    with httpx.Client(base_url=f"{load.base}/v1", timeout=timeout) as http:
        asked = 0
        while not load.stop.is_set():
            question = load.questions[(user * 7 + asked) % len(load.questions)]
            asked += 1
            started = load.begin(f"api{user}", "api-stream" if stream else "api-whole")
            outcome, wait = ask_api(http, question, stream, started + load.deadline_s)
            load.end(f"api{user}", outcome, started)
            load.pause(wait if outcome == "busy" else rng.uniform(*THINK_S))


def ask_api(http: httpx.Client, question: str, stream: bool, deadline: float) -> tuple[str, float]:
    """One chat completion: (outcome, seconds the server asked us to wait)."""
    body = {"model": "default", "messages": [{"role": "user", "content": question}], "stream": stream}
    try:
        with http.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code == 429:
                retry_after = response.headers.get("retry-after", "")
                if not retry_after.isdigit():
                    return "busy_without_retry_after", QUEUE_FULL_WAIT_S
                return "busy", float(retry_after)
            if response.status_code != 200:
                # 504: the answer ran out of answer_timeout, said so (as a stream's last chunk does)
                return ("answer_timeout" if response.status_code == 504 else f"http_{response.status_code}"), 0.0
            if not stream:
                reply = json.loads(response.read())
                return api_outcome(reply["choices"][0]["message"]["content"], reply.get("paper_rag") or {}), 0.0
            content, extra, done = "", {}, False
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    return "hung", 0.0
                if line == "data: [DONE]":
                    done = True
                    break
                if line.startswith("data: "):
                    chunk = json.loads(line[len("data: "):])
                    content += chunk["choices"][0]["delta"].get("content") or ""
                    extra = chunk.get("paper_rag") or extra
            return (api_outcome(content, extra) if done else "stream_cut"), 0.0
    except httpx.TimeoutException:
        return "hung", 0.0
    except httpx.HTTPError as err:
        return f"connection_{type(err).__name__}", 0.0


def api_outcome(content: str, paper_rag: dict) -> str:
    if paper_rag.get("error"):
        return f"answer_{paper_rag['error']}"  # a reply that says why there is no answer
    return "completed" if content.strip() else "empty_reply"


def page_user(load: Load, user: int) -> None:
    """Asks through the page's /chat until the level stops; a new conversation every few questions."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    rng = random.Random(1000 + user)
    try:
        client = Client(f"{load.base}/", verbose=False, analytics_enabled=False)
    except Exception as err:  # the page did not even answer its config: an error, not a hang
        load.end(f"page{user}", f"connect_{type(err).__name__}", load.begin(f"page{user}", "page"))
        return
    try:
        asked = 0
        while not load.stop.is_set():
            question = load.questions[(user * 11 + asked) % len(load.questions)]
            asked += 1
            started = load.begin(f"page{user}", "page")
            job = client.submit(question, api_name="/chat")
            wait = rng.uniform(*THINK_S)
            try:
                _, _, details = job.result(timeout=load.deadline_s)
                outcome = page_outcome(details)
                if outcome == "busy":
                    wait = RETRY_AFTER_SECONDS  # what the message asks
            except QueueError:
                outcome, wait = "busy", QUEUE_FULL_WAIT_S
            except TimeoutError:
                outcome = "hung"
                with contextlib.suppress(Exception):  # told to stop, or not: it is hung either way
                    job.cancel()
            except AppError as err:
                outcome = f"app_error_{str(err)[:60]}"
            except Exception as err:
                outcome = f"client_{type(err).__name__}"
            load.end(f"page{user}", outcome, started)
            if asked % CLEAR_EVERY == 0 and not load.stop.is_set():
                with contextlib.suppress(Exception):
                    client.predict(api_name="/clear")
            load.pause(wait)
    finally:
        client.close()


def page_outcome(details: object) -> str:
    details = details if isinstance(details, dict) else {}
    if details.get("error_kind") == "busy":
        return "busy"
    if details.get("error"):
        return f"answer_{details.get('error_kind') or 'error'}"
    return "completed" if details.get("answer") else "empty_reply"


# --- the server, its memory and its log ----------------------------------------------------


def build_index(env: dict[str, str], log: Path) -> None:
    """The bundled corpus indexed in the run's data folder (incremental when it is there already)."""
    with open(log, "w") as out:
        subprocess.run([RAG, "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
                       timeout=INGEST_TIMEOUT_S)


@contextlib.contextmanager
def served(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`rag serve` on a free loopback port until /healthz says ready; yields (base URL, pid).
    Stopped with SIGTERM (it stops its model server); anything of its tree left is killed."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen([RAG, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        ready_by = time.monotonic() + SERVE_READY_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > ready_by:
                raise RuntimeError(f"rag serve did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, process.pid
    finally:
        tree = descendants(process.pid)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in tree:  # normally gone already: rag serve stops its model server
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """The processes under pid (from /proc: psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of pid and its descendants, in MB."""
    total_kb = 0
    for member in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


class RssSampler:
    """Samples the serve tree's RSS every RSS_SAMPLE_S in a thread: (seconds since start, MB)."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._started, tree_rss_mb(self.pid)))
            self._stop.wait(RSS_SAMPLE_S)

    def now(self) -> float:
        return time.monotonic() - self._started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def rss_summary(samples: list[tuple[float, float]]) -> dict:
    """Start, end and max RSS, and the least-squares slope in MB per minute."""
    if not samples:
        return {"samples": 0}
    times, sizes = [t for t, _ in samples], [mb for _, mb in samples]
    mean_t, mean_mb = sum(times) / len(times), sum(sizes) / len(sizes)
    spread = sum((t - mean_t) ** 2 for t in times)
    slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in samples) / spread * 60 if spread else 0.0
    return {"samples": len(samples), "start_mb": round(sizes[0], 1), "end_mb": round(sizes[-1], 1),
            "max_mb": round(max(sizes), 1), "slope_mb_per_min": round(slope, 2),
            "seconds": round(times[-1] - times[0], 1)}


def tracebacks_in(log: Path, since: int) -> tuple[int, int]:
    """Tracebacks the server logged after byte `since`, and the log's size now."""
    data = log.read_bytes()
    return data[since:].count(b"Traceback"), len(data)


# --- a level, the run ---------------------------------------------------------------------


def run_level(base: str, users: int, seconds: float, deadline_s: float, questions: list[str]) -> dict[str, Tally]:
    """`users` API users and `users` page users for `seconds`; then each finishes its request (at most
    deadline_s). Threads that outlive that are left as daemons and their requests already count as hung."""
    load = Load(base, questions, deadline_s)
    threads = [threading.Thread(target=api_user, args=(load, i), daemon=True) for i in range(users)]
    threads += [threading.Thread(target=page_user, args=(load, i), daemon=True) for i in range(users)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    load.stop.set()
    drained_by = time.monotonic() + deadline_s  # a request begun before the stop has a reply by then, or is hung
    for thread in threads:
        thread.join(max(0.0, drained_by - time.monotonic()))
    load.close()
    return load.tallies


def warm_up(base: str, question: str, deadline_s: float) -> None:
    """One answer through each front-end before measuring: the first answers load what the
    process keeps (the model's prompt cache, Gradio's workers), which is not growth under load."""
    from gradio_client import Client

    httpx.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]},
               timeout=deadline_s).raise_for_status()
    client = Client(f"{base}/", verbose=False, analytics_enabled=False)
    try:
        client.submit(question, api_name="/chat").result(timeout=deadline_s)
    finally:
        client.close()


def plan(quick: bool) -> tuple[tuple[int, ...], float, dict[str, str]]:
    if quick:
        return QUICK_LEVELS, QUICK_LEVEL_S, {**BASE_ENV, **QUICK_ENV}
    return FULL_LEVELS, FULL_LEVEL_S, {**BASE_ENV, **FULL_ENV}


def bound_s(levels: tuple[int, ...], seconds: float, deadline_s: float) -> float:
    """The longest the load part can take: the warm-up, then each level and its drain
    (the index and the server's start not included)."""
    return 2 * deadline_s + len(levels) * (seconds + deadline_s)


def run(workdir: Path, quick: bool = False, levels: tuple[int, ...] | None = None, seconds: float | None = None) -> dict:
    """The suite; levels and seconds replace the plan's (a shorter look at one level)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    planned_levels, planned_seconds, served_env = plan(quick)
    levels, seconds = levels or planned_levels, seconds or planned_seconds
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("RAG_")}  # this run's settings only
    env = {**inherited, "RAG_STORAGE__DATA_DIR": str(workdir / "data"), **served_env}
    deadline_s = float(served_env["RAG_ANSWERING__ANSWER_TIMEOUT"]) + HUNG_MARGIN_S
    print(f"load: levels {levels} users per front-end, {seconds:g} s each; at most "
          f"{bound_s(levels, seconds, deadline_s) / 60:.1f} min after the index (about 1 min) and the server's start",
          flush=True)
    questions = load_questions()
    random.Random(13).shuffle(questions)
    build_index(env, workdir / "ingest.log")
    log = workdir / "serve.log"
    details, failures, worst = [], [], None
    with served(env, log) as (base, pid):
        sampler = RssSampler(pid)
        log_at = 0
        try:
            warm_up(base, questions[0], deadline_s)
            loaded_from = sampler.now()
            for users in levels:
                began = sampler.now()
                tallies = run_level(base, users, seconds, deadline_s, questions)
                tracebacks, log_at = tracebacks_in(log, log_at)
                rss = rss_summary([s for s in sampler.samples if s[0] >= began])
                for name, tally in tallies.items():
                    details.append({"users": users, "front_end": name, **tally.summary()})
                    if tally.latencies:
                        worst = max(worst or 0.0, max(tally.latencies))
                details.append({"users": users, "front_end": "server", "tracebacks": tracebacks, "rss": rss})
                print(f"load: {users} users: " + "; ".join(
                    f"{name} {t.completed} completed (p50 {percentile(t.latencies, 0.5)} s), {t.busy} busy, "
                    f"{t.hung} hung, errors {t.errors}"
                    for name, t in tallies.items()) + f"; {tracebacks} tracebacks; RSS {rss}", flush=True)
                # Quick: two places for all, so one front-end may hold them throughout; not a failure.
                failures += level_failures(users, tallies, tracebacks, rss if seconds >= RSS_JUDGED_AFTER_S else None,
                                           each_answered=not quick)
        finally:
            sampler.stop()
        loaded = [sample for sample in sampler.samples if sample[0] >= loaded_from]
    timeline = [[round(t), round(mb)] for t, mb in loaded[::RSS_TIMELINE_EVERY]]
    details.append({"users": None, "front_end": "server", "rss": rss_summary(loaded), "rss_timeline_s_mb": timeline,
                    "served_env": served_env})
    tallies_seen = [d for d in details if d["front_end"] in FRONT_ENDS]
    cases = sum(d["requests"] for d in tallies_seen)
    hung = sum(d["hung"] for d in tallies_seen)
    unexplained = sum(n for d in tallies_seen for kind, n in d["errors"].items() if not kind.startswith("answer_"))
    top = max(levels)
    return {
        "suite": "load",
        "cases": cases,
        "survived": cases - hung - unexplained,
        "data_lost": 0,  # nothing is written: questions only
        "worst_latency_s": round(worst, 2) if worst is not None else None,
        "headline": {f"hung requests under {top} users": sum(d["hung"] for d in tallies_seen if d["users"] == top)},
        "failures": failures,
        "details": details,
    }


def level_failures(users: int, tallies: dict[str, Tally], tracebacks: int, rss: dict | None,
                   each_answered: bool = True) -> list[str]:
    """What went wrong in a level; rss: its RSS summary when the level was long enough to judge growth;
    each_answered: whether every front-end must have completed an answer."""
    found = []
    for name, tally in tallies.items():
        if tally.hung:
            found.append(f"{users} users, {name}: {tally.hung} hung requests (no reply within the deadline)")
        if each_answered and not tally.completed:
            found.append(f"{users} users, {name}: no completed answer")
        for kind, n in tally.errors.items():
            if not kind.startswith("answer_"):  # answer_*: a reply naming why there is no answer
                found.append(f"{users} users, {name}: {n} x {kind}")
    if tracebacks:
        found.append(f"{users} users: the server logged {tracebacks} tracebacks")
    if rss is not None and rss.get("slope_mb_per_min", 0.0) > RSS_GROWTH_LIMIT_MB_PER_MIN:
        found.append(f"{users} users: RSS grew {rss['slope_mb_per_min']} MB/min (limit {RSS_GROWTH_LIMIT_MB_PER_MIN})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI-sized run: 4 users, tiny queues, 15 s")
    parser.add_argument("--workdir", type=Path, help="where the index and logs go (default: a temporary folder)")
    parser.add_argument("--levels", help="users per front-end, comma-separated (default: the plan's)")
    parser.add_argument("--seconds", type=float, help="seconds per level (default: the plan's)")
    args = parser.parse_args(argv)
    levels = tuple(int(n) for n in args.levels.split(",")) if args.levels else None
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-load-")))
        result = run(workdir, quick=args.quick, levels=levels, seconds=args.seconds)
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
