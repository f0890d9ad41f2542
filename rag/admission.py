"""One queue in front of the model for everyone a server answers at once: the page
and the API of `rag serve` (or the page of `rag ui`) share it, so neither can let
in answers the other's already fill the model with.

`answer_concurrency` answers are made at once and up to `answer_max_queue` more
wait for a turn. One more is told "busy" at once (ServerBusyError), and so is one
that, at the pace answers have been taking, could not be answered within
`answer_timeout`: a slow model under load would otherwise fill the queue with
requests that can only time out. Every admitted answer ends by `answer_timeout`
(AnswerTimeoutError), even in the middle of a model call, and an answer given up
stops at its next step rather than keep calling the model.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Callable, Iterator, Sequence

from rag.errors import AnswerTimeoutError, ServerBusyError
from rag.filters import PaperFilter
from rag.generation import AnswerEngine, AnswerEvent
from rag.settings import Settings

RETRY_AFTER_SECONDS = 10  # what a person or client told "busy" is asked to wait
ANSWER_PACE_WEIGHT = 0.3  # the newest answer's weight in the moving average of answer times
WAITING_FOR_A_TURN = "Waiting for a turn at the model"  # the status an answer shows while it waits
_ENDED = object()  # the worker's last item: the engine's events are over


class AnswerQueue:
    """The places at the model; each admitted answer is made by a thread of its own."""

    def __init__(self, settings: Settings):
        self.concurrency = settings.answering.answer_concurrency
        self.limit = settings.answering.answer_concurrency + settings.answering.answer_max_queue
        self.timeout = settings.answering.answer_timeout
        self.pending = 0  # answers being made or waiting for a turn
        self.answer_s: float | None = None  # recent answers' seconds at the model (a moving average)
        self._lock = threading.Lock()
        self._turns = threading.BoundedSemaphore(self.concurrency)

    def events(
        self, engine: AnswerEngine, question: str, history: Sequence = (), paper_filter: PaperFilter | None = None
    ) -> Iterator[AnswerEvent]:
        """The engine's events for the question, made by a worker once a turn is free.
        Raises ServerBusyError now if there is no place; reading raises
        AnswerTimeoutError at the deadline. The worker, not the reader, gives the place
        back when it ends, and stops at its next event once nobody reads. (A question
        that cannot be answered at all never gets here: rag.service checks it first.)"""
        return self.run(lambda: engine.stream(question, history, paper_filter))

    def run(self, make_events: Callable[[], Iterator[AnswerEvent]]) -> Iterator[AnswerEvent]:
        """Any model work's events (an answer, a table), queued as ``events`` describes."""
        self._enter()
        deadline = time.monotonic() + self.timeout
        items: queue.Queue = queue.Queue()
        given_up = threading.Event()

        def work() -> None:
            try:
                with self._turn(deadline, on_wait=items.put):
                    events = make_events()
                    try:
                        for event in events:
                            if given_up.is_set():
                                break
                            items.put(event)
                    finally:
                        events.close()
            except Exception as err:  # raised to the reader
                items.put(err)
            finally:
                self._leave()
                items.put(_ENDED)

        # Started now, not when reading starts: the place is given back even if nobody reads. A daemon
        # (at most `limit` of them): a model call that hangs does not keep the server from exiting.
        threading.Thread(target=work, name="answer", daemon=True).start()
        return self._read(items, deadline, given_up)

    def _read(self, items: queue.Queue, deadline: float, given_up: threading.Event) -> Iterator[AnswerEvent]:
        try:
            while True:
                try:
                    item = items.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise AnswerTimeoutError(self.timeout) from None
                if item is _ENDED:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            given_up.set()

    def _enter(self) -> None:
        with self._lock:
            if self.pending >= self.limit or self._expected_s() > self.timeout:
                raise ServerBusyError(self.pending, RETRY_AFTER_SECONDS)
            self.pending += 1

    def _expected_s(self) -> float:
        """Seconds until one more request would be answered; 0 while a turn is free."""
        if self.answer_s is None or self.pending < self.concurrency:
            return 0.0
        rounds_ahead = (self.pending - self.concurrency) // self.concurrency + 1
        return (rounds_ahead + 1) * self.answer_s

    @contextlib.contextmanager
    def _turn(self, deadline: float, on_wait: Callable[[AnswerEvent], None]) -> Iterator[None]:
        """Wait for a turn (until the deadline; saying so through on_wait), make the answer,
        record how long it took."""
        if not self._turns.acquire(blocking=False):
            with self._lock:
                others = self.pending - 1
            on_wait(AnswerEvent("status", f"{WAITING_FOR_A_TURN} ({others} other answers being made or waiting)…"))
            if not self._turns.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise AnswerTimeoutError(self.timeout)
        started = time.monotonic()
        try:
            yield
        finally:
            self._turns.release()
            seconds = time.monotonic() - started
            with self._lock:
                self.answer_s = seconds if self.answer_s is None else ANSWER_PACE_WEIGHT * seconds + (
                    1 - ANSWER_PACE_WEIGHT) * self.answer_s

    def _leave(self) -> None:
        with self._lock:
            self.pending -= 1
