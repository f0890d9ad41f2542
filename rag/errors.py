"""The errors a user can act on, under one base class.

Front-ends show a :class:`UserError` as one line (its ``str()`` is written for
a person). Any other exception is a bug: front-ends say so in one line and
write the traceback to a log file (:func:`log_bug`), whose path they show.
"""

from __future__ import annotations

import datetime
import tempfile
import traceback
from pathlib import Path


class UserError(Exception):
    """Something the user can fix or wait out: bad input, a missing index, an unreachable service."""


class SettingsError(UserError, ValueError):
    """A setting, or the config file that holds it, is invalid."""


class FileLineError(UserError, ValueError):
    """An input file cannot be read; the message names the file and, where known, the line."""

    def __init__(self, path: Path | str, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class CorpusError(FileLineError):
    """A corpus file that cannot be loaded."""


class InvalidQuestionError(UserError, ValueError):
    """A question that cannot be searched (empty, too long)."""


class InvalidRequestError(InvalidQuestionError):
    """A request a front-end made that cannot be answered; ``field`` names the part at fault
    (question, history, top_k, filters or collection), so each front-end can name its own input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class NothingMatchesFilterError(InvalidQuestionError):
    """A year, author or category filter that no paper in the collection passes."""


class StoreError(UserError, RuntimeError):
    """The store is missing, busy, unreachable, or was built differently from the settings."""


class EmbeddingModelError(UserError, RuntimeError):
    """The embedding model cannot be found or loaded."""


class LocalModelError(UserError, RuntimeError):
    """The embedded LLM cannot be found, verified or served."""


class LLMError(UserError, RuntimeError):
    """The LLM could not produce an answer; ``kind`` says why, for programs."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # unreachable | timeout | http | cut_off | bad_response | not_ready


class ServerBusyError(UserError):
    """Every place at the model is taken (answer_max_queue), or the answers ahead would
    keep one more past answer_timeout: ask again after ``retry_after`` seconds."""

    kind = "busy"

    def __init__(self, pending: int, retry_after: int):
        super().__init__(
            f"the model is busy ({pending} answers being made or waiting for it); please ask again in {retry_after} s"
        )
        self.retry_after = retry_after


class AnswerTimeoutError(UserError, TimeoutError):
    """An admitted answer was not made within answer_timeout (the model was slow or busy)."""

    kind = "timeout"

    def __init__(self, timeout: float):
        # Worded to follow the page's "No answer: " and to stand alone in the API's 504.
        super().__init__(f"the answer took more than {timeout:g} s (answer_timeout); the model may be busy, please ask again")


def log_bug(err: BaseException, folder: Path | None = None) -> Path:
    """Write err's traceback to a new file in folder/logs (or the temp folder) and return its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for base in ([Path(folder) / "logs"] if folder else []) + [Path(tempfile.gettempdir()) / "paper-rag-logs"]:
        try:
            base.mkdir(parents=True, exist_ok=True)
            path = base / f"error-{stamp}.log"
            path.write_text("".join(traceback.format_exception(err)), encoding="utf-8")
            return path
        except OSError:
            continue
    raise err


def describe_bug(err: BaseException, folder: Path | None = None) -> str:
    """One line for a person about an unexpected failure, naming the log that holds its traceback."""
    try:
        where = f"; details in {log_bug(err, folder)}"
    except Exception:  # even the log cannot be written: still one line
        where = ""
    detail = " ".join(str(err).split())[:200]
    return f"unexpected internal error ({type(err).__name__}: {detail}): this is a bug{where}"
