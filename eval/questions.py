"""Question sets in the JSON Lines format of the evaluation note.

Required per line: ``id``, ``question``, ``gold_titles``; the rest defaults.
Unknown fields are kept in ``extra`` (e.g. ``split``, ``forbidden``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from rag.paper import Paper, normalise_title
from rag.errors import FileLineError

QUESTION_TYPES = ("single", "multi", "comparison", "followup", "unanswerable", "injection")
# The project's sets: every question of the first is "dev" (tuning; its old test half is
# spent), the held-out second is "test" (reporting only).
DEV_QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
TEST_QUESTIONS = Path(__file__).resolve().parent / "questions-test.jsonl"
KNOWN_FIELDS = {"id", "type", "question", "history", "gold_titles", "answer_keywords", "answerable"}


class QuestionSetError(FileLineError):
    """A question set that cannot be loaded."""


@dataclass
class Question:
    id: str
    question: str
    gold_titles: list[str]
    type: str = "single"
    history: list[dict] = field(default_factory=list)
    answer_keywords: list[str] = field(default_factory=list)
    answerable: bool = True
    extra: dict = field(default_factory=dict)


def json_records(path: Path | str, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each line of a JSON Lines question set; QuestionSetError naming
    the file and line for a missing file, a line that is not a JSON object, or a missing field."""
    path = Path(path)
    if not path.is_file():
        raise QuestionSetError(path, None, "file not found")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise QuestionSetError(path, number, f"not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise QuestionSetError(path, number, "expected a JSON object")
        missing = [k for k in required if k not in record]
        if missing:
            raise QuestionSetError(path, number, f"missing field(s) {', '.join(missing)}")
        yield number, record


def load_questions(path: Path | str) -> list[Question]:
    path = Path(path)
    questions, seen = [], set()
    for number, record in json_records(path, ("id", "question", "gold_titles")):
        if not isinstance(record["gold_titles"], list):
            raise QuestionSetError(path, number, "gold_titles must be a list")
        qid = str(record["id"])
        if qid in seen:
            raise QuestionSetError(path, number, f"duplicate id {qid!r}")
        seen.add(qid)
        qtype = record.get("type", "single")
        if qtype not in QUESTION_TYPES:
            raise QuestionSetError(path, number, f"unknown type {qtype!r}")
        gold = [str(t) for t in record["gold_titles"]]
        questions.append(
            Question(
                id=qid,
                question=str(record["question"]),
                gold_titles=gold,
                type=qtype,
                history=list(record.get("history") or []),
                answer_keywords=[str(k) for k in record.get("answer_keywords") or []],
                answerable=bool(record.get("answerable", bool(gold))),
                extra={k: v for k, v in record.items() if k not in KNOWN_FIELDS},
            )
        )
    if not questions:
        raise QuestionSetError(path, None, "no questions")
    return questions


def default_questions(split: str | None) -> Path:
    """The project's question file for a split, when no file is given: the held-out set
    for ``test``, the dev set otherwise (no split: every dev question)."""
    return TEST_QUESTIONS if split == "test" else DEV_QUESTIONS


def check_against_corpus(questions: list[Question], papers: list[Paper]) -> list[str]:
    """Problems that make a question unscorable: unknown gold titles, unsupported keywords."""
    by_title = {normalise_title(p.title): p for p in papers}
    problems = []
    for q in questions:
        gold = []
        for title in q.gold_titles:
            paper = by_title.get(normalise_title(title))
            if paper is None:
                problems.append(f"{q.id}: gold title not in the corpus: {title!r}")
            else:
                gold.append(paper)
        if q.answerable and not q.gold_titles:
            problems.append(f"{q.id}: answerable but has no gold titles")
        text = " ".join(p.abstract.casefold() for p in gold)
        for keyword in q.answer_keywords:
            if gold and keyword.casefold() not in text:
                problems.append(f"{q.id}: keyword {keyword!r} is in no gold abstract")
    return problems


def select_questions(
    questions: list[Question],
    types: str | None = None,
    split: str | None = None,
    per_type: int | None = None,
    limit: int | None = None,
) -> list[Question]:
    """Narrow a question set: comma-separated types, a split, the first N of each type, the first N."""
    if types:
        wanted = set(types.split(","))
        questions = [q for q in questions if q.type in wanted]
    if split:
        questions = [q for q in questions if q.extra.get("split") == split]
    if per_type:
        questions = first_per_type(questions, per_type)
    if limit:
        questions = questions[:limit]
    return questions


def first_per_type(questions: list[Question], n: int) -> list[Question]:
    """The first n questions of each type, in file order (a quick, balanced sample)."""
    taken: dict[str, int] = {}
    sample = []
    for question in questions:
        if taken.get(question.type, 0) < n:
            taken[question.type] = taken.get(question.type, 0) + 1
            sample.append(question)
    return sample
