"""The answer path: from a question to a short, written, verified, cited answer.

AnswerEngine runs the stages in order, each a module of its own: check the
question; understand it (rag/understanding.py: standalone text, kind, topic,
named papers, embedding, once); retrieve (rag/retrieval.py); refuse early
when nothing relevant was found (the relevance gate); select evidence
(rag/evidence.py: each candidate paper's few sentences closest to the
question, never one addressed to an assistant or carrying markup); write
(rag/writing.py: the model's short sentences, each naming the evidence it
restates); verify (rag/verification.py: each sentence against the sentences
it cites; a failing one is replaced by the cited sentence carrying its answer,
or dropped); complete (the parts of a question, the compared papers, the
candidates of a "which papers" question, that no sentence answered: each gets
its closest evidence sentence); render (each sentence with its [n], the evidence kept
under the answer). No sentence passes: the answer says the abstracts do not
answer and lists the closest papers. When the LLM fails, the user gets the
reason and the most relevant passages, marked as not generated.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Sequence


from rag.citations import MARKER
from rag.comparison import (
    Aspect,
    Comparison,
    TableBuilder,
    asks_about_a_topic,
    asks_for_a_table,
    aspects_in_question,
    aspects_named,
    comparison_question,
    papers_asked_for,
)
from rag.conversation import PaperMentions, Turn, carried_titles, deterministic_query, turns_from_messages
from rag.embedding import Embedder
from rag.errors import NothingMatchesFilterError
from rag.evidence import (
    Source,
    best_sentence_for,
    question_parts,
    select_evidence,
    usable_sentences,
)
from rag.filters import PaperFilter
from rag.paper import Paper, short_name
from rag.llm import ChatLLM, LLMError
from rag.prompts import PromptLibrary
from rag.safe_markdown import inert_markdown
from rag.retrieval import RetrievalResult, RetrievedPaper, Retriever, topic_of
from rag.settings import Settings
from rag.text import WORD, question_problem, split_sentences
from rag.understanding import Query, understand
from rag.verification import SentenceVerifier, content_words, terms
from rag.writing import EvidenceSentence, WrittenSentence, write_answer

REFUSAL_CUES = re.compile(
    r"(do(?:es)? not (?:answer|contain|mention|provide|say|specify|state|include|discuss|address|report)"
    r"|(?:no|not enough|insufficient) information|cannot (?:be )?(?:answer|determine|find)|can't (?:answer|determine)"
    r"|not (?:mentioned|provided|stated|specified|available|covered|given|reported)|unable to (?:answer|find|determine))",
    re.I,
)
CLOSEST_PAPERS_SHOWN = 3
PAPER_BY_NUMBER = re.compile(r"\b(?:[Pp]aper|[Ss]ource)\s*\[?(\d+)\]?")
# HTML, a Markdown link or image, or a URL: nothing a written answer sentence needs.
MARKUP = re.compile(r"<[A-Za-z/!?]|!?\[[^\]]*\]\(|(?:https?|ftp)://|www\.", re.I)


@dataclass
class VerifiedSentence:
    """An answer sentence that passed verification (or the cited sentence that replaced it)."""

    text: str
    cited: list[EvidenceSentence]

    @property
    def paper_numbers(self) -> list[int]:
        return list(dict.fromkeys(e.paper_number for e in self.cited))


def empty_checks() -> dict[str, int]:
    """What verification did to the written sentences of one answer."""
    return {
        "written": 0, "supported": 0, "replaced": 0, "dropped": 0,
        # of the dropped: asserting about what the question asks a term or claim the evidence lacks;
        # saying the abstracts do not answer
        "invented": 0, "declined": 0,
        "added_for_parts": 0, "added_for_papers": 0,
    }


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
    checks: dict[str, int] = field(default_factory=empty_checks)
    malformed_replies: int = 0  # model replies that could not be read as JSON sentences
    timings_ms: dict = field(default_factory=dict)
    # For a refusal: the papers closest to the question, and the message without their
    # list (front-ends that show the papers themselves show `notice`).
    closest: list[RetrievedPaper] = field(default_factory=list)
    notice: str = ""
    # For a "which papers" answer: how many candidates were read, and those read but judged
    # off-topic (left out of the answer; shown collapsed, so a user sees what was left out).
    candidates_read: int = 0
    near_misses: list[RetrievedPaper] = field(default_factory=list)
    # A comparison answered as a table (the text is its Markdown, the sources its columns).
    table: Comparison | None = None

    @classmethod
    def failed(cls, question: str, message: str, kind: str | None = None) -> Answer:
        """No answer, and why: the message for a person, the kind for programs."""
        return cls(question=question, query=question, text=message, error=message, error_kind=kind)

    @property
    def cited(self) -> list[Source]:
        by_number = {s.number: s for s in self.sources}
        return [by_number[n] for n in self.cited_numbers]

    @property
    def cited_titles(self) -> list[str]:
        return [s.title for s in self.cited]

    def markdown(self) -> str:
        """The answer as shown to a person: text, then its evidence and sources, then the
        candidates read but left out."""
        shown = f"{self.text}\n\n{self.evidence_and_sources()}" if self.cited else self.text
        return f"{shown}\n\n{self.near_misses_note()}" if self.near_misses and self.cited else shown

    def safe_markdown(self, text: str | None = None) -> str:
        """The Markdown (or a part of it, ``text``) made inert for any viewer that renders it: no
        HTML, image or link but to a source's own page, whatever the corpus or the model wrote."""
        return inert_markdown(self.markdown() if text is None else text, (s.paper.link for s in self.sources))

    def near_misses_note(self) -> str:
        """"Read 15 candidate papers; left out as off-topic: ..." ("" when none was left out)."""
        if not self.near_misses:
            return ""
        listing = "\n".join(f"- {p.title}" for p in self.near_misses)
        return (
            f"Read {self.candidates_read} candidate papers; {len(self.near_misses)} judged off-topic and left out:\n"
            + listing
        )

    def evidence_and_sources(self) -> str:
        """What follows the text: the evidence under it (each cited paper's sentences, those an
        answer sentence cites in bold), then the cited papers ("" when it cites none)."""
        if not self.cited:
            return ""
        evidence = "\n".join(_evidence_lines(s) for s in self.cited)
        listing = "\n".join(f"[{s.number}] {s.paper.reference()}" for s in self.cited)
        return f"Evidence:\n{evidence}\n\nSources:\n{listing}"

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
            "sources": [{**s.to_dict(), "cited": s.number in self.cited_numbers} for s in self.sources],
            "checks": {**self.checks, "malformed_replies": self.malformed_replies},
            "candidates_read": self.candidates_read,
            "near_misses": [p.title for p in self.near_misses],
            "table": self.table.to_dict() if self.table else None,
        }


@dataclass
class AnswerEvent:
    """What a front-end shows while an answer is made: a status line; the retrieved
    papers (``answer`` holds them, before any LLM output); text of the answer as it
    is written, or for a table each cell and difference as it passes (``answer.table``
    holds those so far); and last the checked answer."""

    kind: Literal["status", "retrieved", "token", "cell", "answer"]
    text: str = ""
    answer: Answer | None = None


class AnswerStream:
    """One answer's events as every front-end reads them: iterate for the status, retrieved and
    token events (the answer event too); ``answer`` is the finished Answer once they are read."""

    def __init__(self, events: Iterable[AnswerEvent]):
        self._events = events
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[AnswerEvent]:
        for event in self._events:
            if event.kind == "answer":
                self._answer = event.answer
            yield event

    @property
    def answer(self) -> Answer:
        if self._answer is None:  # a bug in the engine, not a user's problem
            raise RuntimeError("the engine ended without an answer")
        return self._answer

    def close(self) -> None:
        """Stop the engine mid-answer (a client gone, a timeout): its generator's cleanup runs."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def finish(self) -> Answer:
        """Read the events left (raising what reading raises), stop the engine, and give the answer."""
        try:
            for _ in self:
                pass
        finally:
            self.close()
        return self.answer


def final_answer(events: Iterable[AnswerEvent]) -> Answer:
    """The answer a stream of events ends with."""
    return AnswerStream(events).finish()


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
        self.prompts = prompts or PromptLibrary(settings.answering.prompts_dir)
        self.embedder = embedder or retriever.embedder
        self.mentions = PaperMentions(retriever.titles, retriever.names)
        self.verifier = SentenceVerifier(
            self.embedder.embed, settings.answering.min_sentence_coverage, settings.answering.min_sentence_similarity
        )

    def with_settings(self, **changes: object) -> AnswerEngine:
        """A copy answering with some settings changed (e.g. top_k), sharing every part."""
        return AnswerEngine(
            self.settings.changed(**changes), self.retriever, self.llm, embedder=self.embedder, prompts=self.prompts
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
        problem = question_problem(question, self.settings.answering.max_question_chars)
        if problem:  # a request made without rag.service, which checks it the same way
            yield AnswerEvent("answer", answer=Answer.failed(question, problem, "invalid_question"))
            return

        turns = turns_from_messages(list(history))
        yield AnswerEvent("status", "Searching the abstracts…")
        answer.query = self.standalone_query(question, turns)
        query = understand(self.retriever, question, answer.query, paper_filter)
        depth = max(self.settings.retrieval.top_k, self.settings.answering.context_papers)
        if query.several:
            depth = max(depth, self.settings.answering.multi_context_papers)
        try:
            result = self.retriever.search(answer.query, k=depth, paper_filter=paper_filter, understood=query)
        except NothingMatchesFilterError as err:
            answer.text = answer.error = f"{err}."
            answer.error_kind = "no_match"
            yield AnswerEvent("answer", answer=answer)
            return
        answer.retrieved = result.papers
        named = [p for p in result.papers if p.named]
        answer.comparison = query.kind == "comparison"
        answer.timings_ms["retrieve"] = _ms_since(started)
        yield AnswerEvent("retrieved", answer=answer)

        absent = result.absent_topic_words if not named else []
        if absent or query.absent_title or not self._relevant(result):
            self._refuse(answer, absent, paper_filter, query.absent_title)
            answer.timings_ms["total"] = _ms_since(started)
            yield AnswerEvent("answer", answer=answer)
            return

        columns = self._table_columns(query, result.papers, named)
        if columns:
            aspects = self._asked_aspects(question)
            yield from self._table_answer(answer, [p.paper for p in columns], aspects, started)
        else:
            yield from self._written_answer(answer, query, result.papers, named, started)
        answer.timings_ms["total"] = _ms_since(started)
        yield AnswerEvent("answer", answer=answer)

    def compare(self, papers: Sequence[Paper], aspects: Sequence[str] = ()) -> Iterator[AnswerEvent]:
        """The table of chosen papers (a picker, `rag compare`), as stream() gives an answer's events."""
        started = time.perf_counter()
        question = comparison_question([short_name(p.title) for p in papers], aspects)
        answer = Answer(question=question, query=question, comparison=True)
        answer.retrieved = [RetrievedPaper(p, 1.0, [], named=True) for p in papers]
        answer.timings_ms["retrieve"] = 0.0
        yield AnswerEvent("retrieved", answer=answer)
        yield from self._table_answer(answer, list(papers), self._aspects(aspects), started)
        answer.timings_ms["total"] = _ms_since(started)
        yield AnswerEvent("answer", answer=answer)

    # --- steps ------------------------------------------------------------------
    def standalone_query(self, question: str, history: list[Turn]) -> str:
        fallback = deterministic_query(question, history, self.mentions)
        if self.settings.answering.followup_rewrite != "llm" or fallback == question:
            return fallback
        recent = history[-self.settings.answering.history_turns :] if self.settings.answering.history_turns else []
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

    def _relevant_paper(self, paper: RetrievedPaper) -> bool:
        """Whether a paper is named by the question or at least min_relevance similar to it."""
        similarity = paper.dense_similarity
        return paper.named or (similarity is not None and similarity >= self.settings.answering.min_relevance)

    def _relevant(self, result: RetrievalResult) -> bool:
        """The relevance gate: a paper is relevant, or a list question's topic alone is close enough."""
        topic = result.topic_similarity
        return any(self._relevant_paper(p) for p in result.papers) or (
            topic is not None and topic >= self.settings.answering.min_relevance
        )

    def _evidence_candidates(
        self, question: str, kind: str, papers: list[RetrievedPaper], named: list[RetrievedPaper]
    ) -> list[RetrievedPaper]:
        if kind == "comparison" and len(named) >= 2:
            # The compared papers and no others, in the order the question names them.
            position = {pid: at for pid, (at, _) in self.retriever.names.mentions(question).items()}
            return sorted(named, key=lambda p: position.get(p.paper.id, len(question)))
        if kind == "multi":
            depth, share = self.settings.answering.multi_context_papers, self.settings.answering.multi_min_score_share
        elif kind == "comparison":
            # It compares papers the retriever could not name: read them all. On dev, 8 comparisons name
            # fewer than 2 papers; in 5 the second compared paper ranks 2nd at 0.01-0.02 of the best score.
            depth, share = self.settings.answering.context_papers, 0.0
        else:
            depth, share = self.settings.answering.context_papers, self.settings.answering.single_min_score_share
        # Papers far below the best one's fused retrieval score are not offered to the model.
        best = papers[0].score if papers else 0.0
        return [
            p
            for rank, p in enumerate(papers[:depth])
            if rank == 0 or p.named or share == 0 or (best > 0 and p.score >= share * best)
        ]

    # --- tables -------------------------------------------------------------------------
    def _table_columns(self, query: Query, papers: list[RetrievedPaper], named: list[RetrievedPaper]) -> list[RetrievedPaper]:
        """The papers a comparison question puts side by side: those it names, in its order, then
        the best-ranked others up to as many as it asks for ("the four ... papers", or the papers
        it describes one after another), two by default, or topic_papers for "compare the papers
        on X". [] (a prose answer) when fewer than two are found, or when the question names
        fewer than two papers and does not ask for them side by side."""
        if query.kind != "comparison" or (len(named) < 2 and not asks_for_a_table(query.question, len(named))):
            return []
        question = query.question
        wanted = papers_asked_for(question) or (
            self.settings.comparison.topic_papers if asks_about_a_topic(question) else 2
        )
        wanted = min(max(wanted, len(named)), self.settings.comparison.max_papers)
        named = self._evidence_candidates(question, "comparison", papers, named) if len(named) >= 2 else named
        columns = (named + [p for p in papers if not p.named])[:wanted]
        return columns if len(columns) >= 2 else []

    def _asked_aspects(self, question: str) -> list[Aspect]:
        """The aspects the question names after its papers, else the default ones."""
        mentions = self.retriever.names.mentions(question)
        tokens = list(WORD.finditer(question.casefold()))  # the words mentions() counts positions in
        ends = [tokens[min(len(tokens) - 1, at + length - 1)].end() for at, length in mentions.values() if tokens]
        return self._aspects(aspects_in_question(question, max(ends, default=0)))

    def _aspects(self, names: Sequence[str]) -> list[Aspect]:
        return aspects_named(list(names) or self.settings.comparison.aspects, self.prompts)

    def _table_answer(
        self, answer: Answer, papers: list[Paper], aspects: list[Aspect], started: float
    ) -> Iterator[AnswerEvent]:
        """The comparison table: each cell and difference streamed as it passes; the text is the
        table's Markdown, the sources its columns."""
        answer.comparison = True
        yield AnswerEvent("status", f"Comparing {len(papers)} papers on {len(aspects)} aspects…")
        builder = TableBuilder(self.settings.comparison, self.embedder, aspects)

        def write(evidence: list[EvidenceSentence], titles: dict[int, str]) -> Iterable[WrittenSentence]:
            return write_answer(
                self.llm, self.prompts, "differences", answer.question, evidence, titles,
                self.settings.comparison.max_tokens, self.settings.answering.write_format,
            )  # fmt: skip

        def verify(sentence: WrittenSentence, evidence: list[EvidenceSentence], titles: dict[int, str]):
            answer.checks["written"] += 1
            checked = self._verified(answer.question, sentence, evidence, titles, answer.checks)
            return (checked.text, checked.cited) if checked else None

        answer.table = builder.table
        try:
            for item in builder.build(papers, write, verify):
                answer.timings_ms.setdefault("first_token", _ms_since(started))
                yield AnswerEvent("cell", answer=answer)
        except LLMError as err:
            answer.table = None
            self._fall_back(answer, err)
            return
        table = answer.table
        answer.sources = table.sources
        answer.cited_numbers = [s.number for s in table.sources]
        answer.generated = True
        answer.text = table.markdown()

    # --- write, verify, render ---------------------------------------------------------
    def _written_answer(
        self,
        answer: Answer,
        query: Query,
        papers: list[RetrievedPaper],
        named: list[RetrievedPaper],
        started: float,
    ) -> Iterator[AnswerEvent]:
        """The model writes a few sentences from a few selected sentences; each is verified
        against the sentences it cites as soon as the model has written it (replaced by the
        shortest of them that carries the same answer, or dropped) and streamed once it has
        passed. No sentence passes: a refusal that lists the closest papers."""
        question, kind = query.question, query.kind
        candidates = self._evidence_candidates(question, kind, papers, named)
        if kind == "multi":
            read = papers[: self.settings.answering.multi_context_papers]
            answer.candidates_read = len(read)
            kept = {p.paper.id for p in candidates}
            answer.near_misses = [p for p in read if p.paper.id not in kept]
        sources = select_evidence(
            self.embedder, query, [p.paper for p in candidates], self._sentences_per_paper(kind, len(candidates)),
            self.settings.answering.evidence_word_weight,
        )
        evidence = [
            EvidenceSentence(i, number, text)
            for i, (number, text) in enumerate(((s.number, t) for s in sources for t in s.sentences), start=1)
        ]
        titles = {s.number: s.title for s in sources}
        yield AnswerEvent("status", f"Writing from {len(evidence)} sentences of {len(sources)} papers…")
        answer.sources = sources
        verified: list[VerifiedSentence] = []
        renumber: dict[int, int] = {}  # the prompt's paper numbers -> the answer's, in order of first citation
        lines: list[str] = []

        def shown(item: VerifiedSentence) -> AnswerEvent:
            verified.append(item)
            for number in item.paper_numbers:
                renumber.setdefault(number, len(renumber) + 1)
            lines.append(self._line(kind, item, renumber, titles))
            if len(lines) == 1:
                answer.timings_ms["first_token"] = _ms_since(started)
            return AnswerEvent("token", (self._separator(kind) if len(lines) > 1 else "") + lines[-1])

        try:
            written = write_answer(
                self.llm, self.prompts, kind, question, evidence, titles, self.settings.answering.write_max_tokens,
                self.settings.answering.write_format,
            )
            for written_item in written:
                for sentence in split_sentences(_paper_names(written_item.text, titles)):
                    answer.checks["written"] += 1
                    item = self._verified(question, WrittenSentence(sentence, written_item.from_ids), evidence, titles, answer.checks)
                    if item is None or (kind == "multi" and item.paper_numbers[0] in renumber):
                        continue  # failed, or a second line on a paper that has one
                    if any(item.text == v.text for v in verified):
                        continue
                    yield shown(item)
            answer.malformed_replies += not written.well_formed
        except LLMError as err:
            self._fall_back(answer, err)
            return
        if kind == "comparison":
            # The papers it names are the candidates; naming fewer than two, it compares the two
            # best-ranked (in 5 of the first dev set's 8 such comparisons the second compared
            # paper ranked second), if each is relevant to the question on its own: "how much
            # faster than BERT is SBERT" is no comparison of two papers of the collection.
            compared = sources if len(named) >= 2 else sources[:2]
            if len(named) < 2 and not all(self._relevant_paper(p) for p in candidates[:2]):
                compared = []
            for quote in self._unstated_evidence(question, verified, compared, evidence):
                answer.checks["added_for_papers"] += 1
                yield shown(quote)
        if kind == "single" and (verified or self._only_said_too_little(answer)):
            for quote in self._unanswered_parts(question, verified, evidence, sources):
                answer.checks["added_for_parts"] += 1
                yield shown(quote)
        if kind == "multi":  # the small model lists one or two of the candidates; each other one gets a line
            listed = {item.paper_numbers[0] for item in verified}
            for quote in self._unstated_evidence(question, verified, sources, evidence):
                if quote.paper_numbers[0] not in listed:
                    answer.checks["added_for_papers"] += 1
                    yield shown(quote)
        if not verified:
            self._refuse(answer)
            return
        answer.sources = self._cited_first(sources, verified, renumber)
        answer.cited_numbers = sorted(renumber.values())
        answer.generated = True
        if kind == "comparison":  # as streamed, then arranged: each paper's sentences together, comparisons last
            order = sorted(range(len(verified)), key=lambda i: (len(verified[i].paper_numbers) > 1, renumber[verified[i].paper_numbers[0]], i))
            lines = [lines[i] for i in order]
        answer.text = self._separator(kind).join(lines)

    def _sentences_per_paper(self, kind: str, papers: int) -> list[int]:
        """How many evidence sentences each candidate gives: the best-ranked paper more than the
        others (it is the answer most often); each compared paper as many as the others."""
        if kind == "multi":
            return [self.settings.answering.multi_evidence_sentences] * papers
        if kind == "comparison":
            return [self.settings.answering.evidence_sentences_others] * papers
        return [self.settings.answering.evidence_sentences] + [self.settings.answering.evidence_sentences_others] * (papers - 1)

    def _verified(
        self,
        question: str,
        sentence: WrittenSentence,
        evidence: list[EvidenceSentence],
        titles: dict[int, str],
        checks: dict[str, int],
    ) -> VerifiedSentence | None:
        """The written sentence with the evidence sentences that support it, else the shortest of
        them that carries the same answer, else None (recorded in ``checks``).

        The small model often names the wrong sentence id, so a sentence is checked against
        the evidence of the paper it names, and then of each other paper: the first paper
        whose sentences support it is the one it cites, and of that paper's sentences those
        closest to it are the ones it cites."""
        text = MARKER.sub("", sentence.text).strip()
        if not text or MARKUP.search(text) or REFUSAL_CUES.search(text):
            checks["dropped"] += 1
            checks["declined"] += bool(REFUSAL_CUES.search(text))
            return None
        by_paper: dict[int, list[EvidenceSentence]] = {}
        for item in evidence:
            by_paper.setdefault(item.paper_number, []).append(item)
        named = list(dict.fromkeys(e.paper_number for e in evidence if e.id in sentence.from_ids))
        # A sentence on how papers differ rests on several papers at once: the ones it names, else all.
        groups = [named] if len(named) > 1 else []
        groups += [[n] for n in named + [n for n in by_paper if n not in named]]
        groups += [list(by_paper)] if len(by_paper) > 1 and len(named) < 2 else []
        first_check, first_paper = None, None
        for group in groups:
            group_evidence = [e for n in group for e in by_paper[n]]
            check = self.verifier.check(text, [e.text for e in group_evidence], question, [titles[n] for n in group])
            cited = self._supporting(text, group_evidence, titles) if check.supported else []
            if check.supported and (len(group) == 1 or len({e.paper_number for e in cited}) > 1):
                checks["supported"] += 1
                return VerifiedSentence(text, cited)
            if first_check is None and len(group) == 1:
                first_check, first_paper = check, group[0]
        # An invented term or claim answered nothing the evidence says; a loose paraphrase is
        # replaced by the sentence it paraphrased, an echo of the question by the sentence it echoes.
        invented = first_check.missing_terms or first_check.unsupported_claims
        paper_sentences = [e.text for e in by_paper[first_paper]]
        if invented:
            # Only an invention about what the question asks tells that the evidence lacks the answer;
            # one sharing no word with the question is babble (e.g. the prompt's example copied).
            checks["invented"] += bool(set(content_words(text)) & set(content_words(question)))
            replacement = None
        elif not first_check.new_words:
            replacement = self.verifier.echo_replacement(text, paper_sentences, question)
        else:
            replacement = self.verifier.replacement(text, paper_sentences)
        if replacement is None:
            checks["dropped"] += 1
            return None
        checks["replaced"] += 1
        return VerifiedSentence(replacement, [e for e in by_paper[first_paper] if e.text == replacement])

    def _supporting(self, text: str, sentences: list[EvidenceSentence], titles: dict[int, str]) -> list[EvidenceSentence]:
        """Of each paper's evidence, the sentences a verified sentence rests on: those holding the
        most of its terms (a paper's own name counts for each of its sentences), else the one
        closest to it."""
        asserted = [t.casefold() for t in terms(text)]
        similarity = self.verifier.similarities(text, [e.text for e in sentences])
        chosen = []
        for number in dict.fromkeys(e.paper_number for e in sentences):
            own = [(i, e) for i, e in enumerate(sentences) if e.paper_number == number]
            name = short_name(titles[number]).casefold()
            held = [sum(t in e.text.casefold() and t not in name for t in asserted) for _, e in own]
            if max(held) > 0:
                chosen += [e for (_, e), count in zip(own, held) if count == max(held)]
            else:
                chosen.append(max(own, key=lambda pair: similarity[pair[0]])[1])
        return chosen

    @staticmethod
    def _only_said_too_little(answer: Answer) -> bool:
        """Whether the model wrote sentences and every one failed only for saying too little (an
        echo of the question, a loose paraphrase): none asserted what the evidence lacks, none
        said the abstracts do not answer. The evidence then holds the answer the model missed."""
        checks = answer.checks
        return checks["written"] > 0 and checks["invented"] == 0 and checks["declined"] == 0

    def _unanswered_parts(
        self, question: str, verified: list[VerifiedSentence], evidence: list[EvidenceSentence], sources: list[Source]
    ) -> list[VerifiedSentence]:
        """Each thing a question asks ("Which model ...? Which benchmarks ...?") gets the sentence
        of the cited paper's abstract closest to it, unless an answer sentence already rests on
        it: the small model answers the first part and stops, or answers it vaguely. With no
        verified sentence (the model only echoed the question), each part gets one from the
        best-ranked paper if that sentence holds a word the part asks about beyond the paper's
        name. Such a sentence joins the paper's evidence."""
        parts = question_parts(question)
        if verified:
            source = next(s for s in sources if s.number == verified[0].paper_numbers[0])
        else:
            source = sources[0]
        usable, _ = usable_sentences(source.paper.abstract)
        used = {e.text for item in verified for e in item.cited}
        quotes = []
        title_words = set(content_words(source.title))
        for part in parts:
            best = usable[best_sentence_for(self.embedder, part, usable, self.settings.answering.evidence_word_weight)]
            if best in used:
                continue
            if not verified and not (set(content_words(part)) - title_words) & set(content_words(best)):
                continue  # it holds nothing the part asks beyond the paper's name: not an answer to it
            used.add(best)
            known = next((e for e in evidence if e.paper_number == source.number and e.text == best), None)
            if known is None:
                known = EvidenceSentence(max(e.id for e in evidence) + 1, source.number, best)
                evidence.append(known)
                source.sentences.append(best)
            quotes.append(VerifiedSentence(best, [known]))
        return quotes

    def _unstated_evidence(
        self, question: str, verified: list[VerifiedSentence], sources: list[Source], evidence: list[EvidenceSentence]
    ) -> list[VerifiedSentence]:
        """Each compared paper's evidence sentence closest to the question, unless an answer
        sentence rests on it: a comparison must say what each paper states about what is
        compared, and the small model often writes one vague line per paper, or none."""
        used = {e.id for item in verified for e in item.cited}
        quotes = []
        for source in sources:
            own = [e for e in evidence if e.paper_number == source.number]
            if not own:
                continue
            best = own[best_sentence_for(self.embedder, question, [e.text for e in own], self.settings.answering.evidence_word_weight)]
            if best.id not in used:
                quotes.append(VerifiedSentence(best.text, [best]))
        return quotes

    @staticmethod
    def _cited_first(sources: list[Source], verified: list[VerifiedSentence], renumber: dict[int, int]) -> list[Source]:
        """Sources renumbered as the answer cites them (cited papers first, in order of first
        citation; then the others), each marking the sentences an answer sentence cites."""
        supporting = {(e.paper_number, e.text) for item in verified for e in item.cited}
        order = sorted(sources, key=lambda s: renumber.get(s.number, len(sources) + s.number))
        return [
            Source(
                position,
                source.paper,
                source.sentences,
                supporting=[i for i, text in enumerate(source.sentences) if (source.number, text) in supporting],
                withheld=source.withheld,
            )
            for position, source in enumerate(order, start=1)
        ]

    @staticmethod
    def _line(kind: str, item: VerifiedSentence, renumber: dict[int, int], titles: dict[int, str]) -> str:
        """One sentence of the answer with its [n]; for a multi-paper question, a line led by the paper's short name."""
        markers = "".join(f"[{renumber[n]}]" for n in item.paper_numbers)
        text = item.text.rstrip()
        end = text[-1] if text[-1] in ".!?" else "."
        sentence = f"{text.rstrip('.!?')} {markers}{end}"
        if kind == "multi":
            return f"- **{short_name(titles[item.paper_numbers[0]])}**: {sentence}"
        return sentence

    @staticmethod
    def _separator(kind: str) -> str:
        return "\n" if kind == "multi" else "\n\n" if kind == "comparison" else " "

    def _refuse(
        self,
        answer: Answer,
        absent_words: Sequence[str] = (),
        paper_filter: PaperFilter | None = None,
        absent_title: str | None = None,
    ) -> None:
        answer.refused = True
        answer.cited_numbers = []
        answer.closest = answer.retrieved[:CLOSEST_PAPERS_SHOWN]
        # Under a filter, only the papers it lets through were searched: say so, not "this collection".
        searched = f"searched ({paper_filter.describe()})" if paper_filter else "in this collection"
        answer.notice = self.prompts.render("refusal", searched=searched)
        if absent_words:  # say why: the words no abstract contains
            quoted = " or ".join(f"\u201c{w}\u201d" for w in absent_words)
            topic = topic_of(answer.query) or answer.query
            answer.notice = self.prompts.render(
                "refusal_absent_words", searched=searched, words=quoted, topic=f"\u201c{topic}\u201d"
            )
        if absent_title:  # the paper asked about is not in the collection: say so, not what is near it
            answer.notice = self.prompts.render(
                "refusal_absent_title", searched=searched, title=f"\u201c{absent_title}\u201d"
            )
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


def _paper_names(text: str, titles: dict[int, str]) -> str:
    """"Paper [2] proposes ..." -> "SetCSE proposes ...": the model names papers by number."""
    def name(match: re.Match) -> str:
        number = int(match.group(1))
        return short_name(titles[number]) if number in titles else match.group(0)

    return PAPER_BY_NUMBER.sub(name, text)


def _evidence_lines(source: Source) -> str:
    lines = [f"[{source.number}] {short_name(source.title)}"]
    lines += [
        f"  > **{sentence}**" if i in source.supporting else f"  > {sentence}"
        for i, sentence in enumerate(source.sentences)
    ]
    lines += [f"  > ({note})" for note in source.withheld]
    return "\n".join(lines)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
