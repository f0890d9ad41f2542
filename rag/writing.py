"""The write stage: the model writes a short answer from a few selected sentences.

The prompt holds the question and the evidence sentences, each with an id
(S1, S2, ...) and the number of its paper; the model replies with JSON
(constrained by a schema where the endpoint supports it): a list of short
sentences, each naming the ids of the evidence sentences it restates. Those ids
are what the verify stage checks each sentence against, and what cites the
sentence's paper: a citation comes from the evidence, never from the model's
prose. An endpoint that ignores the format gets its prose read sentence by
sentence, each naming the papers of its [n] markers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from rag.citations import MARKER
from rag.llm import ChatLLM
from rag.prompts import PromptLibrary
from rag.text import split_sentences

MAX_WRITTEN_SENTENCES = 6  # the longest form: a comparison of three papers plus their difference


def write_schema(max_sentences: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "sentences": {
                "type": "array",
                "maxItems": max_sentences,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "from": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                    },
                    "required": ["text", "from"],
                },
            }
        },
        "required": ["sentences"],
    }


@dataclass(frozen=True)
class EvidenceSentence:
    id: int  # S<id> in the prompt
    paper_number: int  # the [n] of its paper
    text: str


@dataclass
class WrittenSentence:
    text: str
    from_ids: list[int] = field(default_factory=list)


def evidence_listing(evidence: list[EvidenceSentence], titles: dict[int, str]) -> str:
    """The evidence as the prompt shows it, grouped by paper."""
    lines, current = [], None
    for sentence in evidence:
        if sentence.paper_number != current:
            current = sentence.paper_number
            lines.append(f"Paper [{current}]: {titles[current]}")
        lines.append(f"  S{sentence.id}: {sentence.text}")
    return "\n".join(lines)


def _sentence(item: object, valid_ids: set[int]) -> WrittenSentence | None:
    if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
        return None
    ids = item.get("from") if isinstance(item.get("from"), list) else []
    kept = [int(i) for i in ids if isinstance(i, (int, float)) and int(i) in valid_ids]
    return WrittenSentence(" ".join(item["text"].split()), list(dict.fromkeys(kept)))


def parse_written(reply: str, valid_ids: set[int]) -> tuple[list[WrittenSentence], bool]:
    """(sentences, well formed) from the model's whole JSON reply; ids outside the evidence are
    dropped, and a sentence left with none is kept for the verify stage to attribute."""
    match = re.search(r"\{.*\}", reply, re.S)
    try:
        items = json.loads(match.group(0))["sentences"] if match else None
    except (ValueError, KeyError, TypeError):
        items = None
    if not isinstance(items, list):
        return [], False
    written = [_sentence(item, valid_ids) for item in items]
    return [w for w in written if w is not None], True


def plain_sentences(reply: str, evidence: list[EvidenceSentence]) -> list[WrittenSentence]:
    """An endpoint that ignored the JSON format wrote prose: each of its sentences, naming the
    evidence of the papers its [n] markers point at (the verify stage decides what it rests on)."""
    written = []
    for sentence in split_sentences(reply.strip()):
        numbers = {int(n) for group in MARKER.findall(sentence) for n in re.findall(r"\d+", group)}
        ids = [e.id for e in evidence if e.paper_number in numbers]
        written.append(WrittenSentence(" ".join(sentence.split()), ids))
    return written


class StreamedObjects:
    """The objects inside a JSON reply's top-level arrays ({"key": [{...}, {...}]}), each with its
    array's key as soon as its closing brace arrives in the stream; ``reply`` is the whole reply
    once iteration ends."""

    def __init__(self, pieces: Iterable[str]):
        self.pieces = pieces
        self.reply = ""

    def __iter__(self) -> Iterator[tuple[str | None, object]]:
        reply, scanned, depth, in_string, escaped, start = "", 0, 0, False, False, -1
        key, string_start, last_string = None, -1, None
        for piece in self.pieces:
            reply += piece
            for position in range(scanned, len(reply)):
                char = reply[position]
                if in_string:
                    if escaped:
                        escaped = False
                    elif char == "\\":
                        escaped = True
                    elif char == '"':
                        in_string = False
                        last_string = reply[string_start + 1 : position]
                    continue
                if char == '"':
                    in_string, escaped, string_start = True, False, position
                elif char == ":" and depth == 1:
                    key = last_string  # the top-level key whose value follows
                elif char == "{":
                    depth += 1
                    start = position if depth == 2 else start
                elif char == "}":
                    if depth == 2 and start >= 0:
                        try:
                            yield key, json.loads(reply[start : position + 1])
                        except ValueError:
                            pass
                    depth -= 1
            scanned = len(reply)
        self.reply = reply


class WrittenSentences:
    """The model's sentences, each as soon as its JSON object is complete in the stream (a reply
    in prose, from an endpoint without constrained output, once it is whole); ``well_formed``
    (the JSON asked for) is known once iteration ends."""

    def __init__(self, pieces: Iterable[str], evidence: list[EvidenceSentence]):
        self.pieces = pieces
        self.evidence = evidence
        self.valid_ids = {e.id for e in evidence}
        self.well_formed = False

    def __iter__(self) -> Iterator[WrittenSentence]:
        objects = StreamedObjects(self.pieces)
        for _, item in objects:
            sentence = _sentence(item, self.valid_ids)
            if sentence is not None:
                yield sentence
        reply = objects.reply
        self.well_formed = parse_written(reply, self.valid_ids)[1]
        if not self.well_formed and not reply.lstrip().startswith("{"):
            yield from plain_sentences(reply, self.evidence)


class WrittenProse:
    """The model's sentences in prose (write_format "prose"), each as soon as the next one has
    begun in the stream, the last when the reply ends."""

    well_formed = True  # prose has no format to break

    def __init__(self, pieces: Iterable[str], evidence: list[EvidenceSentence]):
        self.pieces = pieces
        self.evidence = evidence

    def __iter__(self) -> Iterator[WrittenSentence]:
        reply = ""
        for piece in self.pieces:
            reply += piece
            *complete, rest = split_sentences(reply) or [""]
            for sentence in complete:
                yield from plain_sentences(sentence, self.evidence)
            reply = reply[reply.rindex(rest) :] if rest and complete else reply
        yield from plain_sentences(reply, self.evidence)


def write_answer(
    llm: ChatLLM,
    prompts: PromptLibrary,
    kind: str,
    question: str,
    evidence: list[EvidenceSentence],
    titles: dict[int, str],
    max_tokens: int,
    form: str = "json",
) -> WrittenSentences | WrittenProse:
    """The model's answer sentences, streamed where the LLM streams (LLMError if the call fails):
    JSON constrained by a schema, or prose with [n] markers (``form``)."""
    prose = form == "prose"
    messages = [
        {"role": "system", "content": prompts.render("write_system_prose" if prose else "write_system")},
        {
            "role": "user",
            "content": prompts.render(f"write_{kind}", question=question, evidence=evidence_listing(evidence, titles)),
        },
    ]
    schema = None if prose else write_schema(MAX_WRITTEN_SENTENCES)
    stream = getattr(llm, "stream_complete", None)  # an LLM that cannot stream answers whole
    pieces = stream(messages, max_tokens, schema) if stream else [llm.complete(messages, max_tokens, schema)]
    return WrittenProse(pieces, evidence) if prose else WrittenSentences(pieces, evidence)
