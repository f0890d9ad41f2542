"""Prompting and generation: from a question to a grounded, checked, cited answer.

Steps: check the question, make it standalone (follow-ups), retrieve, refuse
early when nothing relevant was found, then answer from evidence, paper by
paper (see rag/evidence.py): each candidate paper's sentences closest to the
question go to the model, which says which answer; each paper that answers is
quoted in its own paragraph, streamed as soon as it is judged, so its citation
is right by construction. A comparison ends with one written sentence on how
the papers differ, checked like any model text: invalid markers dropped, a
sentence with a number no source states or a paper the question invented
dropped. When the LLM fails, the user gets the reason and the most relevant
passages, marked as not generated.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np

from rag.citations import MARKER, check_citations, markers_in
from rag.conversation import PaperMentions, Turn, carried_titles, deterministic_query, turns_from_messages
from rag.corpus import Paper
from rag.embedding import Embedder
from rag.errors import NothingMatchesFilterError
from rag.filters import PaperFilter
from rag.evidence import Evidence, paragraph, select_evidence, states_asked_value
from rag.llm import ChatLLM, LLMError
from rag.prompts import PromptLibrary
from rag.retrieval import RetrievalResult, RetrievedPaper, Retriever, asks_for_several_papers, topic_of
from rag.settings import Settings
from rag.text import STOPWORDS, split_sentences, unreadable_text_problem

# "different" and "similarity" are left out: research questions use them as content
# words ("different distances", "semantic similarity"), and a false comparison reads
# every candidate paper unfiltered.
COMPARISON_CUES = re.compile(
    r"\b(compare[sd]?|comparing|comparison|vs\.?|versus|differ(?:s|ence|ences)?|both|contrast)\b", re.I
)
REFUSAL_CUES = re.compile(
    r"(do(?:es)? not (?:answer|contain|mention|provide|say|specify|state|include|discuss|address|report)"
    r"|(?:no|not enough|insufficient) information|cannot (?:be )?(?:answer|determine|find)|can't (?:answer|determine)"
    r"|not (?:mentioned|provided|stated|specified|available|covered|given|reported)|unable to (?:answer|find|determine))",
    re.I,
)
CLOSEST_PAPERS_SHOWN = 3
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
LEADING_NON_TITLE_WORDS = STOPWORDS | {"compare", "cite", "also", "please", "explain", "summarize", "tell"}
# Quoted text, or a run of 3+ capitalised words: how a question names a paper.
TITLE_LIKE = re.compile(r"[\"“'‘]([^\"”'’]{8,200})[\"”'’]|((?:[A-Z][\w-]*[ :]+){2,}[A-Z][\w-]*)")
# HTML, a Markdown link or image, or a URL: nothing a sentence on how papers differ needs.
MARKUP = re.compile(r"<[A-Za-z/!?]|!?\[[^\]]*\]\(|(?:https?|ftp)://|www\.", re.I)
# Fewer words than this, markers aside, is no answer at all.
MIN_ANSWER_WORDS = 4


@dataclass
class Source:
    number: int
    paper: Paper
    sentences: list[str]

    @property
    def title(self) -> str:
        return self.paper.title

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass
class Answer:
    question: str
    query: str
    text: str = ""
    sources: list[Source] = field(default_factory=list)
    cited_numbers: list[int] = field(default_factory=list)
    retrieved: list[RetrievedPaper] = field(default_factory=list)
    refused: bool = False
    generated: bool = False
    error: str | None = None
    # Why there is no answer, for programs: invalid_question, no_match (a filter), or the
    # LLM's failure (unreachable, timeout, http, cut_off, bad_response, not_ready).
    error_kind: str | None = None
    comparison: bool = False
    dropped_citations: int = 0
    unsupported_sentences: int = 0  # dropped: a number no source states, or an invented paper
    evidence_replies: int = 0  # papers the model judged
    malformed_replies: int = 0  # ... of which the reply could not be read as a selection
    timings_ms: dict = field(default_factory=dict)
    # For a refusal: the papers closest to the question, and the message without their
    # list (front-ends that show the papers themselves show `notice`).
    closest: list[RetrievedPaper] = field(default_factory=list)
    notice: str = ""

    @property
    def cited(self) -> list[Source]:
        by_number = {s.number: s for s in self.sources}
        return [by_number[n] for n in self.cited_numbers]

    @property
    def cited_titles(self) -> list[str]:
        return [s.title for s in self.cited]

    def markdown(self) -> str:
        """The answer as shown to a person: text, then the cited papers."""
        if not self.cited:
            return self.text
        listing = "\n".join(
            f"[{s.number}] {s.title}" + "".join(f" — {part}" for part in (s.paper.byline, s.paper.link) if part)
            for s in self.cited
        )
        return f"{self.text}\n\nSources:\n{listing}"

    def as_turn(self) -> Turn:
        return Turn(question=self.question, answer=self.markdown(), cited_titles=self.cited_titles)

    @property
    def keeps_context(self) -> bool:
        """Whether follow-ups may refer to this answer (it answered, or said the corpus does not)."""
        return self.generated or self.refused

    def to_dict(self) -> dict:
        """The answer as JSON-able data: the shape of evaluation result rows, `rag ask --format json`
        and the API (the evaluation note's fields first, then the details)."""
        timings = self.timings_ms
        return {
            "question": self.question,
            "query": self.query,
            "retrieved": [p.to_dict(passages=False) for p in self.retrieved],
            "answer": self.text,
            "cited_titles": self.cited_titles,
            "refused": self.refused,
            "latency_ms": {part: timings.get(part) for part in ("retrieve", "first_token", "total")},
            "error": self.error,
            "error_kind": self.error_kind,
            "generated": self.generated,
            "comparison": self.comparison,
            "markdown": self.markdown(),
            "sources": [
                {**s.paper.citation(), "number": s.number, "cited": s.number in self.cited_numbers, "sentences": s.sentences}
                for s in self.sources
            ],
            "checks": {
                "dropped_citations": self.dropped_citations,
                "unsupported_sentences": self.unsupported_sentences,
                "evidence_replies": self.evidence_replies,
                "malformed_replies": self.malformed_replies,
            },
        }


@dataclass
class AnswerEvent:
    """What a front-end shows while an answer is made: a status line; the retrieved
    papers (``answer`` holds them, before any LLM output); text of the answer as it
    is written; and last the checked answer."""

    kind: Literal["status", "retrieved", "token", "answer"]
    text: str = ""
    answer: Answer | None = None


def final_answer(events: Iterable[AnswerEvent]) -> Answer:
    """The answer a stream of events ends with."""
    answer = None
    for event in events:
        if event.kind == "answer":
            answer = event.answer
    if answer is None:
        raise RuntimeError("the engine ended without an answer")
    return answer


class AnswerEngine:
    """Answers questions over one retriever with one LLM; both are injected."""

    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        llm: ChatLLM,
        *,
        embedder: Embedder | None = None,
        prompts: PromptLibrary | None = None,
    ):
        self.settings = settings
        self.retriever = retriever
        self.llm = llm
        self.prompts = prompts or PromptLibrary(settings.prompts_dir)
        self.embedder = embedder or retriever.embedder
        self.mentions = PaperMentions(retriever.titles, retriever.names)

    def with_settings(self, **changes: object) -> AnswerEngine:
        """A copy answering with some settings changed (e.g. top_k), sharing every part."""
        return AnswerEngine(
            self.settings.model_copy(update=changes), self.retriever, self.llm, embedder=self.embedder, prompts=self.prompts
        )

    def ask(
        self, question: str, history: Sequence[Turn] | Sequence[dict] = (), paper_filter: PaperFilter | None = None
    ) -> Answer:
        return final_answer(self.stream(question, history, paper_filter))

    def stream(
        self, question: str, history: Sequence[Turn] | Sequence[dict] = (), paper_filter: PaperFilter | None = None
    ) -> Iterator[AnswerEvent]:
        """Status, retrieved passages, answer tokens, then the finished answer; only
        papers that pass ``paper_filter`` are searched."""
        started = time.perf_counter()
        question = question.strip()
        answer = Answer(question=question, query=question)
        problem = self.question_problem(question)
        if problem:
            answer.text, answer.error, answer.error_kind = problem, problem, "invalid_question"
            yield AnswerEvent("answer", answer=answer)
            return

        turns = turns_from_messages(list(history))
        yield AnswerEvent("status", "Searching the abstracts…")
        answer.query = self.standalone_query(question, turns)
        asks_for_several = asks_for_several_papers(question)
        depth = max(self.settings.top_k, self.settings.context_papers)
        if asks_for_several:
            depth = max(depth, self.settings.multi_context_papers)
        try:
            result = self.retriever.search(answer.query, k=depth, paper_filter=paper_filter)
        except NothingMatchesFilterError as err:
            answer.text = answer.error = f"{err}."
            answer.error_kind = "no_match"
            yield AnswerEvent("answer", answer=answer)
            return
        answer.retrieved = result.papers
        named = [p for p in result.papers if p.named]
        answer.comparison = bool(COMPARISON_CUES.search(question)) or len(named) >= 2
        answer.timings_ms["retrieve"] = _ms_since(started)
        yield AnswerEvent("retrieved", answer=answer)

        absent = result.absent_topic_words if not named else []
        if absent or not self._relevant(result):
            self._refuse(answer, absent, paper_filter)
            answer.timings_ms["total"] = _ms_since(started)
            yield AnswerEvent("answer", answer=answer)
            return

        kind = "comparison" if answer.comparison else "multi" if asks_for_several else "single"
        yield from self._answer_from_evidence(answer, question, kind, result.papers, named, started)
        answer.timings_ms["total"] = _ms_since(started)
        yield AnswerEvent("answer", answer=answer)

    def question_problem(self, question: str) -> str | None:
        """Why the question (stripped) cannot be answered at all, said to a person; None if it can."""
        if not question:
            return "Please type a question."
        if len(question) > self.settings.max_question_chars:
            return (
                f"That question is {len(question):,} characters long; the limit is "
                f"{self.settings.max_question_chars:,}. Please shorten it."
            )
        return unreadable_text_problem(question)

    # --- steps ------------------------------------------------------------------
    def standalone_query(self, question: str, history: list[Turn]) -> str:
        fallback = deterministic_query(question, history, self.mentions)
        if self.settings.followup_rewrite != "llm" or fallback == question:
            return fallback
        recent = history[-self.settings.history_turns :] if self.settings.history_turns else []
        transcript = "\n".join(f"User: {t.question}\nAssistant: {t.answer[:600]}" for t in recent)
        prompt = self.prompts.render("rewrite_followup", history=transcript, question=question)
        try:
            rewritten = " ".join(self.llm.complete([{"role": "user", "content": prompt}], max_tokens=80).split())
        except LLMError:
            return fallback
        if not rewritten or len(rewritten) > 400:
            return fallback
        if not self.mentions.in_text(rewritten):  # the rewrite lost the paper: keep the titles
            titles = carried_titles(question, history, self.mentions)
            return f"{rewritten} (about: {'; '.join(titles)})"
        return rewritten

    def _relevant(self, result: RetrievalResult) -> bool:
        if any(p.named for p in result.papers):
            return True
        similarities = [p.dense_similarity for p in result.papers if p.dense_similarity is not None]
        if result.topic_similarity is not None:
            similarities.append(result.topic_similarity)
        return max(similarities, default=-1.0) >= self.settings.min_relevance

    def _sources_for(self, question: str, chosen: list[RetrievedPaper]) -> list[Source]:
        """Each paper numbered in order, with its sentences closest to the question (in the paper's order)."""
        limit = self.settings.context_sentences
        per_paper = [
            split_sentences(p.paper.abstract) if limit else [s.text for s in p.passages] for p in chosen
        ]
        flat = [s for sentences in per_paper for s in sentences]
        vectors = np.asarray(self.embedder.embed([question, *flat]))
        question_vector, sentence_vectors = vectors[0], vectors[1:]
        sources, offset = [], 0
        for number, (paper, sentences) in enumerate(zip(chosen, per_paper), start=1):
            own = sentence_vectors[offset : offset + len(sentences)]
            offset += len(sentences)
            keep = list(range(len(sentences)))
            if limit and len(sentences) > limit:
                ranked = [int(i) for i in np.argsort(-(own @ question_vector))]
                keep = ranked[:limit]
                if not states_asked_value(question, [sentences[i] for i in keep]):
                    # Asked for a value: show the closest sentence stating one, in place of the farthest.
                    stating = [i for i in ranked[limit:] if states_asked_value(question, [sentences[i]])]
                    keep = keep[:-1] + stating[:1] if stating else keep
                keep.sort()
            sources.append(Source(number, paper.paper, [sentences[i] for i in keep]))
        return sources

    # --- the evidence-first answer ------------------------------------------------
    def _evidence_candidates(
        self, question: str, kind: str, papers: list[RetrievedPaper], named: list[RetrievedPaper]
    ) -> list[RetrievedPaper]:
        if kind == "comparison" and len(named) >= 2:
            # The compared papers and no others, in the order the question names them.
            position = {pid: at for pid, (at, _) in self.retriever.names.mentions(question).items()}
            return sorted(named, key=lambda p: position.get(p.paper.id, len(question)))
        if kind == "multi":
            depth, share = self.settings.multi_context_papers, self.settings.multi_min_score_share
        elif kind == "comparison":  # it compares papers the retriever could not name: read them all
            depth, share = self.settings.context_papers, 0.0
        else:
            depth, share = self.settings.context_papers, self.settings.single_min_score_share
        # The model judges nearly every candidate relevant (measured), so papers far below
        # the best one's fused retrieval score are not offered to it at all.
        best = papers[0].score if papers else 0.0
        return [
            p
            for rank, p in enumerate(papers[:depth])
            if rank == 0 or p.named or share == 0 or (best > 0 and p.score >= share * best)
        ]

    def _answer_from_evidence(
        self,
        answer: Answer,
        question: str,
        kind: str,
        papers: list[RetrievedPaper],
        named: list[RetrievedPaper],
        started: float,
    ) -> Iterator[AnswerEvent]:
        """Each candidate paper in turn: the model says which of its sentences answer; each
        paper that answers becomes a paragraph quoting it, streamed as soon as it is judged.
        For a comparison, one written sentence on how the papers differ follows."""
        compared = kind == "comparison" and len(named) >= 2  # the candidates are the papers it names
        candidates = self._sources_for(question, self._evidence_candidates(question, kind, papers, named))
        yield AnswerEvent("status", f"Reading {len(candidates)} papers…")
        found: list[Evidence] = []
        paragraphs: list[str] = []  # as streamed
        try:
            for source in candidates:
                if not compared and not states_asked_value(question, source.sentences):
                    continue  # asked for a value it does not state: no need to ask the model
                evidence = select_evidence(
                    self.llm, self.prompts, question, source.paper, source.sentences, self.settings.evidence_max_tokens
                )
                answer.evidence_replies += 1
                answer.malformed_replies += not evidence.well_formed
                if not evidence.relevant and compared:
                    # A compared paper speaks for itself, whatever the model said of it.
                    evidence.chosen = list(range(len(evidence.shown)))
                if not evidence.relevant:
                    continue
                found.append(evidence)
                paragraphs.append(paragraph(evidence, len(found)))
                if len(found) == 1:
                    answer.timings_ms["first_token"] = _ms_since(started)
                yield AnswerEvent("token", ("\n\n" if len(found) > 1 else "") + paragraphs[-1])
            if not found:
                self._refuse(answer)
                return
            answer.sources = self._renumbered(candidates, found)
            answer.cited_numbers = list(range(1, len(found) + 1))
            if kind == "comparison" and len(found) >= 2:
                yield AnswerEvent("status", "Comparing…")
                contrast = self._contrast(question, answer)
                if contrast:
                    paragraphs.append(contrast)
                    yield AnswerEvent("token", "\n\n" + contrast)
        except LLMError as err:
            self._fall_back(answer, err)
            return
        answer.generated = True
        answer.text = "\n\n".join(paragraphs)

    def _renumbered(self, candidates: list[Source], found: list[Evidence]) -> list[Source]:
        """Papers with evidence first, numbered as the answer cites them, showing the
        quoted sentences; then the others, with the sentences they were shown."""
        by_paper = {e.paper.id: e for e in found}
        cited = [Source(n, e.paper, e.sentences) for n, e in enumerate(found, start=1)]
        rest = [s for s in candidates if s.paper.id not in by_paper]
        return cited + [Source(len(cited) + i, s.paper, s.sentences) for i, s in enumerate(rest, start=1)]

    def _contrast(self, question: str, answer: Answer) -> str:
        """One sentence on how the cited papers differ, written from their evidence
        alone and checked like any answer sentence; empty when it does not pass."""
        compared = answer.cited
        numbers = {s.number for s in compared}
        rendered = "\n".join(self.prompts.render("source", number=s.number, title=s.title, text=s.text) for s in compared)
        messages = [
            {"role": "system", "content": self.prompts.render("system")},
            {"role": "user", "content": self.prompts.render("contrast", sources=rendered, question=question)},
        ]
        reply = self.llm.complete(messages, max_tokens=self.settings.llm_max_tokens // 4)
        checked = check_citations(reply, numbers)
        answer.dropped_citations = checked.dropped
        sentences = split_sentences(checked.text)
        if not sentences or REFUSAL_CUES.search(sentences[0]):
            return ""
        kept = self._supported(sentences[:1], answer)
        if not kept or len(MARKER.sub("", kept[0]).split()) < MIN_ANSWER_WORDS:
            return ""
        sentence = kept[0]
        if not markers_in(sentence):  # it compares the papers, so it cites them
            sentence = sentence.rstrip(" .") + " " + "".join(f"[{n}]" for n in sorted(numbers)) + "."
        return sentence

    def _supported(self, sentences: list[str], answer: Answer) -> list[str]:
        """Drop sentences that carry a number no source states, name a paper (a
        title-like phrase) that neither the sources nor the question contain, or
        carry a link, URL or HTML: an invented or injected title is never presented,
        and what an abstract asks the model to add (an image, a link) never is."""
        source_text = " ".join(s.paper.abstract for s in answer.sources)
        known_numbers = _numbers_in(source_text)
        known = " ".join([source_text, *(s.title for s in answer.sources)]).casefold()
        invented = [phrase for phrase in _title_like_phrases(answer.question) if phrase.casefold() not in known]
        kept = []
        for sentence in sentences:
            unmarked = MARKER.sub("", sentence)
            question = answer.question.casefold()
            named = [p for p in _title_like_phrases(unmarked) if p.casefold() not in known and p.casefold() not in question]
            if (
                _numbers_in(unmarked) - known_numbers
                or any(phrase.casefold() in sentence.casefold() for phrase in invented)
                or named
                or MARKUP.search(sentence)
            ):
                answer.unsupported_sentences += 1
                continue
            kept.append(sentence)
        return kept

    def _refuse(self, answer: Answer, absent_words: Sequence[str] = (), paper_filter: PaperFilter | None = None) -> None:
        answer.refused = True
        answer.cited_numbers = []
        answer.closest = answer.retrieved[:CLOSEST_PAPERS_SHOWN]
        # Under a filter, only the papers it lets through were searched: say so, not "this collection".
        searched = f"searched ({paper_filter.describe()})" if paper_filter else "in this collection"
        answer.notice = self.prompts.render("refusal", searched=searched)
        if absent_words:  # say why: the words no abstract contains
            quoted = " or ".join(f"\u201c{w}\u201d" for w in absent_words)
            topic = topic_of(answer.query) or answer.query
            answer.notice = self.prompts.render("refusal_absent_words", words=quoted, topic=f"\u201c{topic}\u201d")
        listing = "\n".join(f"- {p.title}" for p in answer.closest) or "- (none)"
        answer.text = f"{answer.notice}\n{self.prompts.render('closest_papers', closest=listing)}"

    def _fall_back(self, answer: Answer, err: LLMError) -> None:
        reason = str(err)
        answer.generated = False
        answer.error, answer.error_kind = reason, err.kind
        answer.cited_numbers = []
        answer.closest = answer.retrieved[:CLOSEST_PAPERS_SHOWN]
        shown = answer.sources or [
            Source(n, p.paper, [s.text for s in p.passages[:1]]) for n, p in enumerate(answer.retrieved[:3], 1)
        ]
        passages = "\n\n".join(f"**{s.title}**\n> {s.text}" for s in shown)
        answer.text = self.prompts.render("llm_unavailable", reason=reason, passages=passages)


def _numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def _title_like_phrases(question: str) -> list[str]:
    phrases = []
    for quoted, capitalised in TITLE_LIKE.findall(question):
        words = (quoted or capitalised).replace(":", " ").split()
        if capitalised and words[0].casefold() in LEADING_NON_TITLE_WORDS:
            words = words[1:]  # "Also Fake Paper Title" names "Fake Paper Title"
        if len(words) >= 2:
            phrases.append(" ".join(words))
    return phrases


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
