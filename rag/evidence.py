"""The evidence step: does one candidate paper answer the question, and in which sentences.

Each candidate paper gets its own short prompt: the question, then the paper's
sentences closest to the question, numbered; the model returns the numbers of
those that answer it, or none (constrained to a JSON schema where the endpoint
supports it). A paper with none is left out of the answer rather than padded in.
A paper with some is quoted: the sentences it was shown, in the paper's order,
so the evidence is faithful to the paper by construction and its citation is
that paper's and no other. (Quoting only the sentences the 1.5B model picked
was measured and lost facts: it tends to pick the sentence that restates the
question, not the one with the result.)

The question comes before the paper in the prompt, so an OpenAI-compatible
llama.cpp server reuses the shared prefix (system prompt and question) from
its cache for every paper after the first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from rag.citations import add_marker
from rag.corpus import Paper
from rag.llm import ChatLLM
from rag.prompts import PromptLibrary

SELECTION_SCHEMA = {
    "type": "object",
    "properties": {"sentences": {"type": "array", "items": {"type": "integer"}}},
    "required": ["sentences"],
}
NUMBER = re.compile(r"\d+")

# A question asking for a value: "how many GPUs", "what F1 score", "which temperature value".
# The measures must be stated next to a number; "number" and "value" name no measure.
MEASURES = (
    "score accuracy f1 bleu rouge map error rate size rank percentage correlation kappa agreement recall "
    "precision length parameters temperature speedup latency throughput perplexity"
).split()
ASKS_FOR_VALUE = re.compile(
    r"\bhow (?:many|much|long|large|big|fast|old)\b"
    r"|\b(?:what|which)\b(?:\s+[\w'@/.()-]+){0,5}?\s+\(?(?:number|value|" + "|".join(MEASURES) + r")\b",
    re.I,
)
STATED_NUMBER = re.compile(
    r"(?<![\w.@/-])\d+(?:[.,]\d+)*%?(?![\w-])"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundreds?"
    r"|thousands?|millions?|billions?|trillions?|dozens?|twice|double|triple|half|percent)\b",
    re.I,
)
WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Evidence:
    """What one paper contributes: the sentences shown, and those the model said answer."""

    paper: Paper
    shown: list[str]
    chosen: list[int] = field(default_factory=list)  # indexes into shown, in the paper's order
    well_formed: bool = True  # False: the reply could not be read as a selection

    @property
    def relevant(self) -> bool:
        return bool(self.chosen)

    @property
    def sentences(self) -> list[str]:
        """What the answer quotes: every sentence shown, when the paper answers at all."""
        return list(self.shown) if self.relevant else []


def parse_selection(reply: str, count: int) -> tuple[list[int], bool]:
    """(chosen 0-based indexes, whether the reply was well formed), from a JSON
    object {"sentences": [numbers]} or, for endpoints without constrained output,
    plain text such as "2, 4" or "none". Numbers outside 1..count are ignored."""
    text = reply.strip()
    numbers: list[int] | None = None
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            value = json.loads(match.group(0)).get("sentences")
            if isinstance(value, list):
                numbers = [int(n) for n in value if isinstance(n, (int, float)) or str(n).isdigit()]
        except (ValueError, AttributeError):
            numbers = None
    well_formed = numbers is not None
    if numbers is None:  # plain text, or JSON cut off: read the numbers it did give
        numbers = [int(n) for n in NUMBER.findall(text)]
        plain = not text.startswith("{")  # JSON that did not parse was cut off or garbled
        well_formed = plain and (bool(numbers) or text.casefold().strip(" .\"'") in ("none", "no", ""))
    chosen = sorted({n - 1 for n in numbers if 1 <= n <= count})
    return chosen, well_formed


def select_evidence(
    llm: ChatLLM,
    prompts: PromptLibrary,
    question: str,
    paper: Paper,
    sentences: list[str],
    max_tokens: int,
) -> Evidence:
    """Ask the model which of the paper's sentences answer the question (LLMError if it fails)."""
    evidence = Evidence(paper, sentences)
    listing = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, start=1))
    messages = [
        {"role": "system", "content": prompts.render("evidence_system")},
        {"role": "user", "content": prompts.render("evidence", question=question, title=paper.title, sentences=listing)},
    ]
    reply = llm.complete(messages, max_tokens=max_tokens, json_schema=SELECTION_SCHEMA)
    evidence.chosen, evidence.well_formed = parse_selection(reply, len(sentences))
    return evidence


def asked_measures(question: str) -> list[str] | None:
    """None when the question does not ask for a value; otherwise the measures it
    names ("f1", "kappa"); empty when any stated number would answer ("how many")."""
    if not ASKS_FOR_VALUE.search(question):
        return None
    return [w for w in WORD.findall(question.casefold()) if w in MEASURES]


def states_asked_value(question: str, sentences: list[str]) -> bool:
    """Whether a sentence states a number the question does not already contain,
    next to a measure the question names. A paper on the right topic that gives no
    such number does not answer "what F1 score..." (its sentences would only restate
    the topic), which is how a question the abstracts cannot answer gets refused."""
    measures = asked_measures(question)
    if measures is None:
        return True
    given = {n.casefold() for n in STATED_NUMBER.findall(question)}
    for sentence in sentences:
        if not {n.casefold() for n in STATED_NUMBER.findall(sentence)} - given:
            continue
        if not measures or set(measures) & set(WORD.findall(sentence.casefold())):
            return True
    return False


def short_name(title: str) -> str:
    """"DiffCSE" for "DiffCSE: Difference-based ...": how the answer names a paper."""
    head = title.split(":", 1)[0].strip()
    return head if ":" in title and 0 < len(head) <= 60 else title


def paragraph(evidence: Evidence, number: int) -> str:
    """One paper's evidence as a paragraph of the answer: its name, then its sentences, each cited."""
    body = " ".join(add_marker(s, number) for s in evidence.sentences)
    return f"**{short_name(evidence.paper.title)}**: {body}"
