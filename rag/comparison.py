"""The compare stage: papers side by side on the aspects a reader compares, every cell cited.

A table has the papers as columns and the aspects as rows (problem, approach,
data / benchmarks, main result, limitation, or the user's own). Each cell is
one sentence of that paper's abstract, cut to the clauses it is mainly about
(at most ``cell_words`` words), or "not stated in the abstract":
- the sentence is the one closest to the aspect by embedding, plus what an
  abstract's structure says (the problem comes first, the approach is what "we
  propose", results come late with numbers; aspect_prior);
- it must state the aspect: a default aspect abstracts are often silent on
  (data, result, limitation) needs its cue words or a dataset's name, a
  limitation must not be one of earlier work nor the opening sentence, and a
  user-named aspect needs the sentence's embedding close to the aspect's;
- the cut must restate the sentence (its terms and content words occur there).
Problem and approach, which every abstract states, always get a sentence.

No model chooses the cells: on the dev tables the embedded 1.5B model, asked
for each aspect's sentence number, chose worse than these rules (cell
correctness 0.20 against 0.49) and took 28 s for a table. The model writes the
one to three key differences from the cells' sentences, each verified like an
answer sentence (the engine's check, passed in) and dropped when it fails.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from rag.embedding import Embedder
from rag.errors import InvalidRequestError
from rag.evidence import Source, usable_sentences
from rag.paper import Paper, normalise_title, short_name
from rag.prompts import PromptLibrary
from rag.retrieval import ASKS_TO_COMPARE, Retriever
from rag.settings import ComparisonSettings
from rag.verification import content_words, restates
from rag.writing import EvidenceSentence, WrittenSentence

NOT_STATED = "not stated in the abstract"
MAX_DIFFERENCES = 3
# A cue a sentence must hold to state the aspect, for the default aspects abstracts are often silent on.
CUES = {
    "data / benchmarks": re.compile(
        r"\b(datasets?|data ?sets?|benchmarks?|corpus|corpora|suites?|treebanks?|leaderboards?|collections? of|tasks)\b"
        r"|\b(?:experiments?|evaluat\w*|tested|trained|pre-?trained|results?|fine-?tun\w*)\s+(?:\w+\s+){0,3}?on\b"
        r"|\b\d[\d,.]*\s*(?:k|m|b|million|billion|thousand)?\s*(?:\w+\s+)?(?:images|videos|hours|sentences|documents|examples|"
        r"samples|languages|questions|pairs|words|tokens|molecules|participants|subjects|tasks|domains)\b",
        re.I,
    ),
    "main result": re.compile(
        r"\d|\b(outperform\w*|improv\w*|achiev\w*|surpass\w*|state[- ]of[- ]the[- ]art|better|gains?|reduc\w*|"
        r"increas\w*|show\w*|find|finds|found|reveal\w*|demonstrat\w*|results?|accura\w*|effective\w*|competitive|"
        r"match\w*|comparable|significant\w*|superior|faster|robust\w*|consistent\w*|leads? to|enables?)\b",
        re.I,
    ),
    "limitation": re.compile(
        r"\b(limitations?|limited|fails?|failed|failures?|struggles?|struggled|cannot|can't|unable|drawbacks?|"
        r"weakness\w*|shortcomings?|future work|room for improvement|margin (?:of|for) improvement|not yet|"
        r"leaves? (?:\w+ ){0,3}(?:room|margin|gap)|still (?:lag|fall|fail|struggle|below|behind|limited)\w*|falls? short|"
        r"degrad\w*|worse than|lower than|at the cost of|trade-?offs?|remains? (?:challenging|difficult|open|unclear|limited)|"
        r"counterexamples?|caveats?)\b",
        re.I,
    ),
}
# A dataset's or benchmark's name: capitals inside a word (SQuAD, ImageNet-1K, GLUE), not a citation's "Dangovski et al.".
DATA_NAME = re.compile(r"\b[A-Z][A-Za-z]*[A-Z0-9][A-Za-z0-9-]*\b")
# A "however" about earlier work motivates the paper: that is its problem, not its limitation.
EARLIER_WORK = re.compile(
    r"\b(existing|previous|prior|current|conventional|traditional|standard|most|many|recent|popular|these|"
    r"such|other|state-of-the-art) (?:\w+ ){0,2}(methods?|models?|approaches|works?|systems?|techniques|studies|"
    r"research|benchmarks?|datasets?|metrics?|solutions?|algorithms?|frameworks?)\b",
    re.I,
)
ALWAYS_STATED = frozenset({"problem", "approach", "main result"})
# Where an abstract says what: the problem first, the approach with "we propose", results late.
PROPOSES = re.compile(
    r"\b(?:we|this (?:paper|work|study)|our (?:work|paper))\s+(?:\w+\s+)?(?:propose|present|introduce|develop|design|"
    r"describe|build|construct|create|release|formulate|devise)\w*\b|\bour (?:method|approach|model|framework|algorithm|system)\b",
    re.I,
)
RESULTS = re.compile(
    r"\d|\b(outperform\w*|state[- ]of[- ]the[- ]art|improv\w*|achiev\w*|surpass\w*|results? (?:show|demonstrate|indicate|suggest)\w*|"
    r"(?:we |experiments? |analys[ie]s )(?:show|find|demonstrate|reveal|observe)\w*)\b",
    re.I,
)
# "We propose that ...", "In this paper, we show ...": the frame before what the sentence states.
LEAD_IN = re.compile(
    r"^(?:(?:in this (?:paper|work|study|article)|here|to this end|specifically|finally|moreover|furthermore|"
    r"additionally|in addition|overall|instead|thus|therefore|in particular|"
    r"to (?:help )?(?:address|solve|tackle|overcome|fill|bridge|mitigate|remedy|answer|study|investigate) [^,]{0,80}),?\s+)*"
    r"(?:(?:we|the authors|this (?:paper|work|study|article))\s+(?:also\s+|further\s+|then\s+)?"
    r"(?:propose|present|introduce|develop|describe|show|find|demonstrate|report|observe|argue|investigate|"
    r"study|explore|evaluate|conduct|perform|release|provide|design|build|use|apply|address|focus on|"
    r"consider|examine|analy[sz]e|offer|contribute)[sd]?\s+(?:that\s+)?)?",
    re.I,
)
CONNECTIVE = re.compile(r"^(?:which|while|whereas|but|where|thereby|and thus|and|or|so)\s+", re.I)
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+(?=(?:which|while|whereas|but|thereby|where|and thus)\b)|\s+[—–]\s+")


@dataclass(frozen=True)
class Aspect:
    name: str
    description: str  # what the model and the sentence matching read

    @property
    def always_stated(self) -> bool:
        return self.name in ALWAYS_STATED

    @property
    def text(self) -> str:
        """What the aspect's embedding is made from."""
        return f"{self.name}: {self.description}"


def known_aspects(prompts: PromptLibrary) -> dict[str, str]:
    """The aspects the prompts folder describes (table_aspects.txt: "name: description" lines)."""
    described = {}
    for line in prompts.render("table_aspects").splitlines():
        name, _, description = line.partition(":")
        if name.strip() and description.strip():
            described[name.strip().casefold()] = description.strip()
    return described


def aspects_named(names: Sequence[str], prompts: PromptLibrary) -> list[Aspect]:
    """Aspects by name: a known one with its description, another as the user wrote it."""
    known = known_aspects(prompts)
    return [Aspect(name, known.get(name.casefold(), name)) for name in dict.fromkeys(n.strip() for n in names) if name]


# "Compare X and Y on their training data", "... in terms of speed and memory".
ASPECTS_ASKED = re.compile(
    r"\b(?:on|in terms of|regarding|with respect to|with regard to|as to)\s+(?:their|its|the)?\s*(.+?)\s*[?.!]*$",
    re.I,
)
TOPIC_FRAME = re.compile(r"\b(?:papers|works|studies|articles|methods|approaches|models)\s+(?:on|about|for|regarding|that|which)\b", re.I)


NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "both": 2}
PAPERS_COUNTED = re.compile(
    r"\b(two|three|four|five|six|both|[2-6])\s+(?:[\w-]+\s+){0,3}?(?:papers|works|studies|articles|methods|models|approaches|benchmarks|systems)\b"
    r"|\b(?:these|those) (two|three|four|five|six)\b",
    re.I,
)


# "..., the study testing X, and the work on Y": one more paper described.
ANOTHER_DESCRIBED = re.compile(
    r"(?:,\s*(?:and\s+)?|\s+and\s+|\s+with\s+|\s+to\s+)(?:the|a|an)\s+(?:[\w-]+\s+){0,3}?"
    r"(?:paper|study|work|one|method|model|benchmark|approach|article)\b",
    re.I,
)


# "How does X differ from Y", "X versus Y": papers side by side when one of them is a paper the
# question names, else two things inside one paper ("rule-based versus similarity-based
# generalization", "how did the LSTM's recall differ from the transformers'").
CONTRASTS = re.compile(
    r"\bhow (?:do|does|did)\b.{0,200}\b(?:compare|differ)\b|\b(?:differ|differs|difference|differences)\b"
    r"|\bvs\.?\b|\bversus\b|\bhow (?:are|is)\b.{0,200}\bdifferent\b",
    re.I,
)


def asks_for_a_table(question: str, named: int) -> bool:
    """Whether a question that names ``named`` (< 2) papers asks for papers side by side: it says
    so ("compare", "side by side", "in a table", "the two papers"), or it contrasts a paper it
    names with something else."""
    return bool(ASKS_TO_COMPARE.search(question) or papers_asked_for(question) or (named and CONTRASTS.search(question)))


def papers_asked_for(question: str) -> int | None:
    """How many papers a question says it compares ("the four benchmark papers"), or describes
    one after another ("the paper on X, the study of Y and the work on Z"), if it says."""
    match = PAPERS_COUNTED.search(question)
    if match:
        word = (match.group(1) or match.group(2)).casefold()
        return NUMBER_WORDS.get(word) or int(word)
    described = len(ANOTHER_DESCRIBED.findall(question))
    return described + 1 if described >= 2 else None


def asks_about_a_topic(question: str) -> bool:
    """"Compare the papers on X", "... the papers that use X", "What do I have on X? Compare those
    papers": the papers of a topic, not two described ones."""
    return bool(TOPIC_FRAME.search(question) or re.search(r"\b(?:those|these|all|my|the)\s+papers\b", question, re.I))


def aspects_in_question(question: str, after: int) -> list[str]:
    """The aspects a comparison question names after its last paper name (``after`` is the
    character where that name ends): "Compare X and Y on their training data and languages" ->
    ["training data", "languages"]. [] when it names none, or when "on" introduces a topic
    ("compare the papers on contrastive learning")."""
    rest = question[after:]
    match = ASPECTS_ASKED.search(rest)
    before = question[: after + match.start()] if match else ""
    # "... the paper on feature suppression" names a paper by its topic; "papers on X" is a topic.
    if not match or TOPIC_FRAME.search(before + " on") or re.search(r"\b(?:paper|work|study|one|method|approach)\s*$", before, re.I):
        return []
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+|;\s*", match.group(1))
    return [p.strip(" .") for p in parts if p.strip(" .") and len(p.split()) <= 6][:8]


def resolve_papers(retriever: Retriever, names: Sequence[str], max_papers: int) -> list[Paper]:
    """The papers a user chose, each by its id, its title, a name only it carries ("DiffCSE"),
    or a part of one title; InvalidRequestError on "papers" for one that matches no paper or
    several, for a paper chosen twice, and for fewer than two or more than max_papers."""
    names = checked_paper_names(names, max_papers)
    titles = retriever.titles
    by_title = {normalise_title(t): pid for pid, t in titles.items()}
    chosen: list[str] = []
    for name in names:
        paper_id = name if name in titles else by_title.get(normalise_title(name))
        if paper_id is None:
            mentions = retriever.names.named_papers(name)
            longest = max(mentions.values(), default=0)
            named = [pid for pid, length in mentions.items() if length == longest]
            within = [pid for pid, t in titles.items() if name.casefold() in t.casefold()]
            candidates = named if len(named) == 1 else within
            if len(candidates) != 1:
                problem = "matches several papers" if len(candidates) > 1 else "matches no paper"
                raise InvalidRequestError("papers", f"{name!r} {problem} in this collection: give more of its title")
            paper_id = candidates[0]
        if paper_id in chosen:
            raise InvalidRequestError("papers", f"{titles[paper_id]!r} is chosen twice")
        chosen.append(paper_id)
    return [retriever.papers[pid] for pid in chosen]


def checked_paper_names(names: Sequence[str], max_papers: int) -> list[str]:
    """The papers a user named, stripped; InvalidRequestError on "papers" for fewer than two or
    more than max_papers."""
    names = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if not 2 <= len(names) <= max_papers:
        raise InvalidRequestError("papers", f"a comparison needs 2 to {max_papers} papers, not {len(names)}")
    return names


def checked_aspects(names: Sequence[str] | str | None) -> list[str]:
    """Aspects a user named (a list, or one comma-separated string): InvalidRequestError on
    "aspects" for more than eight or one over 60 characters."""
    if isinstance(names, str):
        names = names.split(",")
    names = [" ".join(n.split()) for n in names or [] if n and n.strip()]
    if len(names) > 8:
        raise InvalidRequestError("aspects", f"a table has at most 8 aspects, not {len(names)}")
    long = next((n for n in names if len(n) > 60), None)
    if long:
        raise InvalidRequestError("aspects", f"an aspect is a few words, not {len(long)} characters")
    return list(dict.fromkeys(names))


def comparison_question(names: Sequence[str], aspects: Sequence[str] = ()) -> str:
    """"Compare A, B and C [on x and y]": the question a table of chosen papers answers ("" for fewer than two)."""
    names = [n for n in names if n]
    if len(names) < 2:
        return ""
    joined = ", ".join(names[:-1]) + f" and {names[-1]}"
    on = f" on {', '.join(aspects[:-1])} and {aspects[-1]}" if len(aspects) > 1 else f" on {aspects[0]}" if aspects else ""
    return f"Compare {joined}{on}"


@dataclass
class Cell:
    paper: int  # the column: the number of its paper
    aspect: str
    text: str  # the phrase, or NOT_STATED
    sentence: str | None = None  # the abstract sentence it is cut from
    supported: bool = False  # the phrase restates its sentence

    @property
    def stated(self) -> bool:
        return self.sentence is not None

    def to_dict(self) -> dict:
        return {
            "paper": self.paper, "aspect": self.aspect, "text": self.text, "stated": self.stated,
            "sentence": self.sentence, "supported": self.supported,
        }


@dataclass
class Difference:
    text: str
    papers: list[int]  # the columns it cites
    sentences: list[str]  # the abstract sentences it rests on

    def to_dict(self) -> dict:
        return {"text": self.text, "papers": self.papers, "sentences": self.sentences}


@dataclass
class Comparison:
    """A table: ``sources`` are the columns, numbered from 1; a cell per column and aspect."""

    aspects: list[str]
    sources: list[Source]
    cells: list[Cell] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    def cell(self, paper: int, aspect: str) -> Cell | None:
        return next((c for c in self.cells if c.paper == paper and c.aspect == aspect), None)

    def rows(self) -> Iterator[tuple[str, list[Cell | None]]]:
        """Each aspect with its cells, one per column in order (None: not made yet)."""
        for aspect in self.aspects:
            yield aspect, [self.cell(source.number, aspect) for source in self.sources]

    @property
    def complete(self) -> bool:
        return len(self.cells) == len(self.aspects) * len(self.sources)

    def markdown(self) -> str:
        """The table in Markdown (each stated cell with its [n]), then the key differences."""
        header = "| aspect | " + " | ".join(f"[{s.number}] {_escaped(short_name(s.title))}" for s in self.sources) + " |"
        lines = [header, "|" + " --- |" * (len(self.sources) + 1)]
        for aspect, cells in self.rows():
            shown = [
                "…" if cell is None else f"{_escaped(cell.text)} [{cell.paper}]" if cell.stated else f"_{NOT_STATED}_"
                for cell in cells
            ]
            lines.append(f"| **{_escaped(aspect)}** | " + " | ".join(shown) + " |")
        if self.differences:
            lines += ["", "Key differences:"]
            lines += [f"- {d.text.rstrip('.')} {''.join(f'[{n}]' for n in d.papers)}." for d in self.differences]
        return "\n".join(lines)

    def csv(self) -> str:
        """The table for a spreadsheet: a row per aspect, a column per paper (its full title)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["aspect", *(s.title for s in self.sources)])
        for aspect, cells in self.rows():
            writer.writerow([aspect, *("" if cell is None else cell.text for cell in cells)])
        for difference in self.differences:
            writer.writerow(["key difference", difference.text])
        return out.getvalue()

    def to_dict(self) -> dict:
        return {
            "aspects": self.aspects,
            "papers": [{"number": s.number, "id": s.paper.id, **s.paper.citation()} for s in self.sources],
            "cells": [c.to_dict() for c in self.cells],
            "differences": [d.to_dict() for d in self.differences],
        }


def _escaped(text: str) -> str:
    """Text that stays inside its Markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


# What the engine's sentence check gives back for a difference: its text and the evidence it rests on.
VerifyDifference = Callable[[WrittenSentence, list[EvidenceSentence], dict[int, str]], "tuple[str, list[EvidenceSentence]] | None"]
# The model's reply: the sentences it wrote from the evidence (rag.writing.write_answer, bound to an LLM).
WriteDifferences = Callable[[list[EvidenceSentence], dict[int, str]], Iterable[WrittenSentence]]


class TableBuilder:
    """Builds one table (``table``, filled as it is built): each cell chosen, cut and checked;
    then the differences, written by the model from the cells' sentences and verified."""

    def __init__(self, settings: ComparisonSettings, embedder: Embedder, aspects: Sequence[Aspect]):
        self.settings = settings
        self.embedder = embedder
        self.aspects = list(aspects)
        self.table = Comparison([a.name for a in aspects], [])

    def build(self, papers: Sequence[Paper], write: WriteDifferences, verify: VerifyDifference) -> Iterator[Cell | Difference]:
        """Each cell, column by column (its paper's column is in ``table`` from its first cell),
        then each verified difference. Raises LLMError when the model cannot be reached."""
        table, aspects = self.table, self.aspects
        aspect_vectors = np.asarray(self.embedder.embed([a.text for a in aspects]))
        for number, paper in enumerate(papers, start=1):
            sentences, notes = usable_sentences(paper.abstract)
            if not sentences:  # an abstract of fragments: its text is the one sentence
                sentences = [paper.abstract.strip() or paper.title]
            table.sources.append(Source(number, paper, sentences, withheld=notes))
            for cell in self._column(number, paper.title, sentences, aspects, aspect_vectors):
                table.cells.append(cell)
                yield cell
        # The model compares what the cells state: their sentences are its evidence.
        evidence: list[EvidenceSentence] = []
        for source in table.sources:
            stated = dict.fromkeys(c.sentence for c in table.cells if c.paper == source.number and c.sentence)
            evidence += [EvidenceSentence(len(evidence) + 1, source.number, text) for text in stated]
        titles = {s.number: s.title for s in table.sources}
        if len({e.paper_number for e in evidence}) > 1:
            for sentence in write(evidence, titles):
                checked = verify(sentence, evidence, titles)
                if checked is None or len(table.differences) == MAX_DIFFERENCES:
                    continue
                text, cited = checked
                numbers = sorted({e.paper_number for e in cited})
                if len(numbers) > 1 and all(text != d.text for d in table.differences):
                    table.differences.append(Difference(text, numbers, [e.text for e in cited]))
                    yield table.differences[-1]
        _mark_supporting(table)

    def _column(
        self, number: int, title: str, sentences: list[str], aspects: Sequence[Aspect], aspect_vectors: np.ndarray
    ) -> list[Cell]:
        """A paper's cells: for each aspect, the sentence closest to it (embedding similarity plus
        what the abstract's structure says, aspect_prior), if it states the aspect."""
        vectors = np.asarray(self.embedder.embed(sentences))
        cells = []
        for aspect, aspect_vector in zip(aspects, aspect_vectors):
            similarity = vectors @ aspect_vector
            score = similarity + aspect_prior(aspect, sentences, title)
            best = int(np.argmax(score))
            if states(aspect, sentences[best], best, float(similarity[best]), self.settings, title):
                cells.append(self.cell(number, aspect, sentences[best]))
            else:
                cells.append(Cell(number, aspect.name, NOT_STATED))
        return cells

    def cell(self, number: int, aspect: Aspect, sentence: str) -> Cell:
        """The cell cut from ``sentence`` for ``aspect``, checked against it."""
        text = cell_phrase(sentence, self.settings.cell_words, self.embedder.embed)
        if not restates(text.rstrip("…"), sentence):
            return Cell(number, aspect.name, NOT_STATED)
        return Cell(number, aspect.name, text, sentence, supported=True)


def aspect_prior(aspect: Aspect, sentences: Sequence[str], title: str = "") -> np.ndarray:
    """What an abstract's structure says of each sentence for a default aspect (added to its
    embedding similarity to the aspect): the problem comes first and proposes nothing, the
    approach is what "we propose", results come late and carry numbers or "outperforms", data
    is named. Zero for a user's aspect."""
    count = len(sentences)
    place = np.arange(count) / max(1, count - 1)  # 0: the first sentence, 1: the last
    proposes = np.array([bool(PROPOSES.search(s)) for s in sentences], dtype=float)
    results = np.array([bool(RESULTS.search(s)) for s in sentences], dtype=float)
    if aspect.name == "problem":
        return 0.3 * (1 - place) - 0.2 * proposes - 0.2 * results
    if aspect.name == "approach":
        return 0.3 * proposes - 0.1 * results
    if aspect.name == "main result":
        return 0.25 * results + 0.15 * place - 0.1 * proposes
    if aspect.name == "data / benchmarks":
        title_names = {w.casefold() for w in DATA_NAME.findall(title)}
        named = np.array([len({n.casefold() for n in DATA_NAME.findall(s)} - title_names) for s in sentences], dtype=float)
        cued = np.array([len(CUES[aspect.name].findall(s)) for s in sentences], dtype=float)
        return 0.1 * np.minimum(named, 3) + 0.1 * np.minimum(cued, 3)
    if aspect.name == "limitation":
        admits = np.array([bool(CUES["limitation"].search(s)) and not EARLIER_WORK.search(s) for s in sentences], dtype=float)
        return 0.2 * place + 0.2 * admits
    return np.zeros(count)


def states(aspect: Aspect, sentence: str, position: int, similarity: float, settings: ComparisonSettings, title: str = "") -> bool:
    """Whether a sentence can state the aspect: its cue words (data: or a name like GLUE or
    ImageNet-1K that the paper's title does not hold; a limitation: not one of earlier work,
    and not the abstract's opening); a user-named aspect: embeddings close enough."""
    if aspect.always_stated:
        return True
    cue = CUES.get(aspect.name)
    if cue is None:
        return similarity >= settings.min_aspect_similarity
    names = {n.casefold() for n in DATA_NAME.findall(sentence)} - {w.casefold() for w in DATA_NAME.findall(title)}
    if not cue.search(sentence) and not (aspect.name == "data / benchmarks" and names):
        return False
    return aspect.name != "limitation" or (position > 0 and not EARLIER_WORK.search(sentence))


def cell_phrase(sentence: str, max_words: int, embed: Callable[[list[str]], Sequence]) -> str:
    """The part of a sentence a cell shows: without its frame ("In this paper, we propose"), and
    when longer than ``max_words``, the run of whole clauses that fits and is closest to the
    whole sentence (what it is mainly about; ``embed`` gives unit vectors), else the closest
    clause cut at max_words with "…". (Closest to the aspect instead lost the gold keywords of
    28 of 108 dev cells, closest to the sentence 17.)"""
    text = sentence.strip().rstrip(".")
    stripped = LEAD_IN.sub("", text, count=1)
    if len(stripped.split()) >= 3:
        text = stripped
    if len(text.split()) <= max_words:
        return _capitalised(text)
    clauses = _clauses(text)
    runs = [
        " ".join(clauses[i:j])
        for i in range(len(clauses))
        for j in range(i + 1, len(clauses) + 1)
        if len(" ".join(clauses[i:j]).split()) <= max_words
    ]
    runs = [r for r in runs if len(content_words(r)) >= 2]
    candidates = runs or clauses
    vectors = np.asarray(embed([text, *candidates]))
    # A run that starts the sentence reads on its own; one that starts "which ..." or "but ..." does not.
    bonus = np.array([0.1 * text.startswith(c) - 0.1 * bool(CONNECTIVE.match(c)) for c in candidates])
    best = candidates[int(np.argmax(vectors[1:] @ vectors[0] + bonus))]
    if runs:
        return _capitalised(CONNECTIVE.sub("", best.strip(" ,;:"), count=1) if len(best.split()) > 4 else best.strip(" ,;:"))
    return _capitalised(" ".join(best.split()[:max_words]).rstrip(" ,;:") + "…")


def _clauses(text: str) -> list[str]:
    """The sentence split at clause boundaries, never inside parentheses or brackets."""
    clauses: list[str] = []
    for part in (p for p in CLAUSE_BREAK.split(text) if p.strip()):
        if clauses and clauses[-1].count("(") + clauses[-1].count("[") > clauses[-1].count(")") + clauses[-1].count("]"):
            clauses[-1] += " " + part
        else:
            clauses.append(part)
    return clauses


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def _mark_supporting(table: Comparison) -> None:
    """Each column's sentences that a cell or a difference rests on, for the evidence under it."""
    used = {(c.paper, c.sentence) for c in table.cells if c.stated}
    for difference in table.differences:
        for source in table.sources:
            used |= {(source.number, s) for s in difference.sentences if s in source.sentences}
    for source in table.sources:
        source.supporting = [i for i, s in enumerate(source.sentences) if (source.number, s) in used]
