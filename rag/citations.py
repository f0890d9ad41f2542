"""Checking the citations in a generated answer.

Only ``[n]`` markers (and the prose forms small models produce, "Source 2")
count as citations, and only when n is the number of a source that was
actually sent to the model; any other marker is removed and counted. A title
that merely appears in the model's text is never treated as a citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:[-–,;]|and)\s*\d+)*)\s*\]")
PROSE_MARKER = re.compile(r"\(?\b[Ss]ources?\s+(\d+(?:\s*(?:,|and|&)\s*\d+)*)\)?")
# A "Sources:" / "References:" block the model writes itself; the product adds its own.
MODEL_SOURCE_LIST = re.compile(r"\n\s*(?:\*\*)?(?:Sources|References|Citations)(?:\*\*)?\s*:?.*\Z", re.S | re.I)


@dataclass
class CheckedText:
    text: str  # with only valid [n] markers, normalised to one number each
    cited_numbers: list[int] = field(default_factory=list)  # in order of first citation
    dropped: int = 0  # markers that pointed at no source


def _numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|and|&)\s*", group.strip()):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            low, high = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            numbers.extend(range(low, high + 1) if 0 < high - low < 20 else [low, high])
        elif part.strip().isdigit():
            numbers.append(int(part))
    return numbers


def check_citations(text: str, valid_numbers: set[int]) -> CheckedText:
    """Keep markers that name a sent source; drop and count the rest."""
    text = MODEL_SOURCE_LIST.sub("", text.strip())
    text = PROSE_MARKER.sub(lambda m: "[" + ",".join(str(n) for n in _numbers(m.group(1))) + "]", text)
    result = CheckedText(text="")
    order: list[int] = []

    def replace(match: re.Match) -> str:
        kept = []
        for number in _numbers(match.group(1)):
            if number in valid_numbers:
                if number not in kept:
                    kept.append(number)
            else:
                result.dropped += 1
        for number in kept:
            if number not in order:
                order.append(number)
        return "".join(f"[{n}]" for n in kept)

    cleaned = MARKER.sub(replace, text)
    cleaned = re.sub(r"(\[(\d+)\])(?:\s*\[\2\])+", r"\1", cleaned)  # [2][2] -> [2]
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned)  # space left where a marker was removed
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    result.text = cleaned.strip()
    result.cited_numbers = order
    return result


def markers_in(sentence: str) -> list[int]:
    return [n for group in MARKER.findall(sentence) for n in _numbers(group)]


def add_marker(sentence: str, number: int) -> str:
    """Put [n] before the sentence's final punctuation."""
    stripped = sentence.rstrip()
    if stripped and stripped[-1] in ".!?":
        return f"{stripped[:-1]} [{number}]{stripped[-1]}"
    return f"{stripped} [{number}]"
