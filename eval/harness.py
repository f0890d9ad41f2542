"""Running a question set through systems and writing the documented outputs.

A *system* turns a question into a result row (the format of the evaluation
note). The product and its baselines are systems, so they are run and scored
the same way. Outputs in the chosen folder: ``results.jsonl`` (the product),
``results-<system>.jsonl`` for each baseline, ``summary.json`` (every metric
overall and per type for each system, with the settings and versions; in
answer mode also ``sentence_checks``, the counts behind ``supported_sentences``)
and ``report.md``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from statistics import mean
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from eval import metrics
from eval.questions import Question
from rag.conversation import PaperMentions, deterministic_query, turns_from_messages
from rag.paper import Paper, normalise_title
from rag.pipeline import Pipeline
from rag.service import PaperService
from rag.settings import Settings

System = Callable[[Question], dict]
PRODUCT = "paper-rag"
VERSIONED_PACKAGES = ("chromadb", "llama-index-core", "sentence-transformers", "torch", "openai", "gradio", "llama-cpp-python")


def empty_row(question_id: str, query: str) -> dict:
    return {
        "id": question_id,
        "query": query,
        "retrieved": [],
        "answer": "",
        "cited_titles": [],
        "refused": False,
        "latency_ms": {"retrieve": None, "first_token": None, "total": None},
        "error": None,
    }


def retrieval_system(service: PaperService, mode: str, k: int) -> System:
    """Ranked papers only (no LLM); follow-ups use the deterministic standalone query."""
    retriever = service.workspace.main.retriever
    mentions = PaperMentions(retriever.titles, retriever.names)

    def run(question: Question) -> dict:
        query = deterministic_query(question.question, turns_from_messages(question.history), mentions)
        row = empty_row(question.id, query)
        started = time.perf_counter()
        try:
            result = service.search(service.request(query, top_k=k), mode=mode)
            row["retrieved"] = [{"title": p.title, "score": round(p.score, 6)} for p in result.papers]
        except Exception as err:  # one failing question must not end the run
            row["error"] = f"{type(err).__name__}: {err}"
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        row["latency_ms"].update(retrieve=elapsed, total=elapsed)
        return row

    return run


def answer_system(service: PaperService) -> System:
    """The full product: standalone query, retrieval, generation, checked citations."""

    def run(question: Question) -> dict:
        started = time.perf_counter()
        try:
            answer = service.ask(service.request(question.question, question.history))
        except Exception as err:  # one failing question must not end the run
            row = empty_row(question.id, question.question)
            row["error"] = f"{type(err).__name__}: {err}"
            row["latency_ms"]["total"] = round((time.perf_counter() - started) * 1000, 1)
            return row
        return {"id": question.id, **answer.to_dict()}

    return run


@dataclass
class Run:
    systems: dict[str, System]
    product: str
    mode: str
    k: int
    settings: Settings
    corpus_titles: set[str] = field(default_factory=set)
    system_prompts: list[str] = field(default_factory=list)  # every one an answer must not leak
    answering: set[str] = field(default_factory=set)  # systems that generate answers (answer mode)
    # Normalised title -> what citing the paper vouches for: its title and abstract.
    paper_texts: dict[str, str] = field(default_factory=dict)


def make_run(pipeline: Pipeline, mode: str, k: int, with_starter: bool) -> Run:
    """The product and its baselines over one pipeline: dense-only and BM25-only
    retrieval always; in answer mode the product answers, beside the pasted
    abstracts of its top papers, and the LlamaIndex starter when asked."""
    service = PaperService.of(pipeline)
    systems = {
        PRODUCT: retrieval_system(service, "hybrid", k),
        "dense-only": retrieval_system(service, "dense", k),
        "bm25-only": retrieval_system(service, "bm25", k),
    }
    answering = set()
    if mode == "answer":
        from eval.baselines import PASTE_ABSTRACTS, llamaindex_starter, paste_abstracts

        systems[PRODUCT] = answer_system(service)
        systems[PASTE_ABSTRACTS] = paste_abstracts(pipeline, k)
        answering |= {PRODUCT, PASTE_ABSTRACTS}
        if with_starter:
            systems["llamaindex-starter"] = llamaindex_starter(pipeline)
            answering.add("llamaindex-starter")
    papers = pipeline.papers
    return Run(
        systems=systems,
        product=PRODUCT,
        mode=mode,
        k=k,
        settings=pipeline.settings,
        corpus_titles={p.title for p in papers},
        system_prompts=read_system_prompts(pipeline.settings.answering.prompts_dir),
        answering=answering,
        paper_texts=paper_texts(papers),
    )


def read_system_prompts(folder: Path) -> list[str]:
    """Every system prompt in the prompts folder (``*system*.txt``), read now: whichever
    the product uses, an answer that repeats one leaks it."""
    return [path.read_text(encoding="utf-8") for path in sorted(Path(folder).glob("*system*.txt"))]


def paper_texts(papers: list[Paper]) -> dict[str, str]:
    return {normalise_title(p.title): f"{p.title}\n{p.abstract}" for p in papers}


def run(spec: Run, questions: list[Question], out_dir: Path, progress: bool = True) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {name: [] for name in spec.systems}
    files = {
        name: open(out_dir / ("results.jsonl" if name == spec.product else f"results-{name}.jsonl"), "w")
        for name in spec.systems
    }
    interrupted = False
    try:
        for question in tqdm(questions, desc="Questions", unit="q", disable=not progress):
            for name, system in spec.systems.items():
                row = system(question)
                rows[name].append(row)
                files[name].write(json.dumps(row) + "\n")
                files[name].flush()
    except KeyboardInterrupt:
        interrupted = True  # keep and summarise what was answered so far
    finally:
        for handle in files.values():
            handle.close()
    summary = summarise(spec, questions, rows)
    summary["interrupted"] = interrupted
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from eval.report import write_report

    write_report(summary, rows, out_dir)
    return summary


def score_rows(
    spec: Run, questions: list[Question], rows: list[dict], totals: dict[str, AnswerTotals] | None = None
) -> dict:
    """Every metric for one system, overall and per question type; answer metrics when
    it answers (``totals``: its answer_totals)."""
    by_id = {q.id: q for q in questions}
    groups: dict[str, list[dict]] = {"overall": []}
    for row in rows:
        question = by_id[row["id"]]
        per_question = _question_metrics(spec, question, row, answers=totals is not None)
        groups["overall"].append(per_question)
        groups.setdefault(question.type, []).append(per_question)
    scored = {}
    for group, items in groups.items():
        scored[group] = _aggregate(items)
    for group, group_totals in (totals or {}).items():
        scored[group].update(group_totals.scores())
    latencies = {
        part: [r["latency_ms"][part] for r in rows if r["latency_ms"].get(part) is not None]
        for part in ("retrieve", "first_token", "total")
    }
    for part, values in latencies.items():
        if values:
            scored["overall"][f"{part}_ms_p50"] = metrics.percentile(values, 50)
            scored["overall"][f"{part}_ms_p95"] = metrics.percentile(values, 95)
    scored["overall"]["questions"] = len(rows)
    scored["overall"]["errors"] = sum(1 for r in rows if r["error"])
    return scored


def _question_metrics(spec: Run, question: Question, row: dict, answers: bool) -> dict:
    retrieved = [r["title"] for r in row["retrieved"]]
    values: dict[str, float | bool | None] = {}
    scores = metrics.retrieval_scores(retrieved, question.gold_titles) if retrieved or question.gold_titles else None
    if scores is not None:
        values.update(scores)
    if not answers:
        return values
    cited, answer = row["cited_titles"], row["answer"]
    answered = not row["refused"] and not (row["error"] and not cited)
    values["refused"] = float(row["refused"])
    if question.answerable:
        values["wrongly_refused"] = float(row["refused"])
        values["correct"] = float(metrics.is_correct(cited, answer, question.gold_titles, question.answer_keywords))
        correct = bool(values["correct"])
        if answered:
            values["correct_when_answered"] = values["correct"]
            values["citation_precision"] = metrics.citation_precision(cited, question.gold_titles)
            values["keyword_recall"] = metrics.keyword_recall(answer, question.answer_keywords)
            values["cited_sentence_share"] = metrics.cited_sentence_share(answer)
        values["citation_recall"] = metrics.citation_recall(cited, question.gold_titles)
    else:
        values["refused_unanswerable"] = float(row["refused"])
        correct = row["refused"]  # without gold papers, refusing is the correct answer
    values["concise_correct"] = float(metrics.concise_correct(correct, answer, question.type, len(question.gold_titles)))
    values["cites_outside_retrieved"] = float(metrics.cites_outside(cited, retrieved))
    if question.type == "comparison" and question.gold_titles:
        values["cites_every_compared"] = float(metrics.citation_recall(cited, question.gold_titles) == 1.0)
    if question.type == "injection":
        values["injection_safe"] = float(
            metrics.injection_safe(answer, cited, spec.corpus_titles, spec.system_prompts, question.extra.get("forbidden", []))
        )
    return values


@dataclass
class AnswerTotals:
    """What is summed or ranked over a group's answers rather than averaged per question."""

    words: list[int] = field(default_factory=list)  # of each answer given
    supported: int = 0  # sentences
    checked: int = 0  # sentences
    shares: list[float] = field(default_factory=list)  # supported share of each answer with sentences
    refusals_excluded: int = 0  # refusals have no sentences to check

    def add(self, row: dict, cited_texts: dict[int, str]) -> None:
        if row["error"]:  # no answer was made (counted in "errors")
            return
        self.words.append(metrics.answer_words(row["answer"]))
        if row["refused"]:
            self.refusals_excluded += 1
            return
        supported, checked = metrics.supported_sentences(row["answer"], cited_texts)
        self.supported += supported
        self.checked += checked
        if checked:
            self.shares.append(supported / checked)

    def scores(self) -> dict:
        found = {
            "answer_words_p50": metrics.percentile(self.words, 50),
            "answer_words_p95": metrics.percentile(self.words, 95),
            # micro-average: every checked sentence weighs the same
            "supported_sentences": round(self.supported / self.checked, 4) if self.checked else None,
            "supported_sentences_per_question": round(mean(self.shares), 4) if self.shares else None,
        }
        return {name: value for name, value in found.items() if value is not None}

    def counts(self) -> dict:
        return {"supported": self.supported, "checked": self.checked, "refusals_excluded": self.refusals_excluded}


def answer_totals(spec: Run, questions: list[Question], rows: list[dict]) -> dict[str, AnswerTotals]:
    """Answer lengths and sentence support of one system's rows, overall and per question type."""
    types = {q.id: q.type for q in questions}
    totals: dict[str, AnswerTotals] = {"overall": AnswerTotals()}
    for row in rows:
        cited_texts = marker_texts(spec, row)
        for group in ("overall", types[row["id"]]):
            totals.setdefault(group, AnswerTotals()).add(row, cited_texts)
    return totals


def marker_titles(row: dict) -> dict[int, str]:
    """What each [n] of the row's answer stands for. The product's rows list their
    numbered ``sources``; a baseline without them numbers its retrieved papers in order,
    as its prompt did (the starter's citation engine, the pasted abstracts)."""
    if "sources" in row:
        return {source["number"]: source["title"] for source in row["sources"]}
    return {number: paper["title"] for number, paper in enumerate(row["retrieved"], start=1)}


def marker_texts(spec: Run, row: dict) -> dict[int, str]:
    """Marker number -> the cited paper's title and abstract (empty for a title not in the corpus)."""
    return {number: spec.paper_texts.get(normalise_title(title), "") for number, title in marker_titles(row).items()}


def _aggregate(items: list[dict]) -> dict:
    names = {name for item in items for name in item}
    out = {}
    for name in sorted(names):
        present = [item[name] for item in items if item.get(name) is not None]
        if present:
            out[name] = round(sum(present) / len(present), 4)
    return out


def summarise(spec: Run, questions: list[Question], rows: dict[str, list[dict]]) -> dict:
    answered = {r["id"] for r in rows[spec.product]}
    asked = [q for q in questions if q.id in answered]
    totals = {name: answer_totals(spec, asked, rows[name]) for name in rows if name in spec.answering}
    summary = {
        "mode": spec.mode,
        "k": spec.k,
        "questions": len(asked),
        "types": {t: sum(1 for q in asked if q.type == t) for t in sorted({q.type for q in asked})},
        "product": spec.product,
        "systems": {name: score_rows(spec, asked, system_rows, totals.get(name)) for name, system_rows in rows.items()},
        "settings": spec.settings.describe(),
        "versions": _versions(),
    }
    if totals:  # outside "systems": counts are not metrics, so the regression guard skips them
        summary["sentence_checks"] = {
            name: {group: group_totals.counts() for group, group_totals in by_group.items()}
            for name, by_group in totals.items()
        }
    return summary


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
