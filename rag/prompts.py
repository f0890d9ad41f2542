"""Prompt templates, one file each in the prompts folder, filled by name.

Templates use ``${name}`` placeholders (string.Template), so braces in paper
text or questions never break formatting. A missing template or placeholder
is an error at once, not a silently empty prompt.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

TEMPLATE_NAMES = (
    "write_system",
    "write_system_prose",
    "write_single",
    "write_multi",
    "write_comparison",
    "write_differences",
    "table_aspects",
    "rewrite_followup",
    "refusal",
    "refusal_absent_words",
    "refusal_absent_title",
    "closest_papers",
    "llm_unavailable",
)


class PromptLibrary:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        missing = [n for n in TEMPLATE_NAMES if not (self.folder / f"{n}.txt").is_file()]
        if missing:
            raise FileNotFoundError(f"prompt template(s) missing in {self.folder}: {', '.join(missing)}")

    @cache
    def _template(self, name: str) -> Template:
        return Template((self.folder / f"{name}.txt").read_text(encoding="utf-8").strip())

    def render(self, name: str, **values: object) -> str:
        return self._template(name).substitute({k: str(v) for k, v in values.items()})
