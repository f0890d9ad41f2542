"""Write docs/settings.md from the Settings fields' descriptions (or, with --check, exit 1
if the file is not what they say now: the test suite runs that).

    .venv/bin/python scripts/settings_doc.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import SecretStr

from rag.settings import PROJECT_ROOT, SECTIONS, Settings, env_name

DOC = PROJECT_ROOT / "docs" / "settings.md"
HEADER = """# Settings

One settings object (`rag/settings.py`), nested by concern. Each field can be
set as an environment variable `RAG_<SECTION>__<FIELD>` or in a TOML file, one
table per section: `./rag.toml`, or the file named by `RAG_CONFIG`.
Environment variables win over the file. A setting written the old flat way
(`RAG_TOP_K`, a top-level `top_k = 8`) is refused with its new name.

```toml
# rag.toml
[retrieval]
top_k = 8

[storage]
chroma_url = "http://127.0.0.1:8000"
```

In Python, `load_settings(top_k=8)` and `settings.changed(top_k=8)` take a
field's flat name (the name in the last column) or a section
(`retrieval={"top_k": 8}`).

This page is generated from the fields' descriptions by
`scripts/settings_doc.py`; the tests check it is current.
"""


def shown_default(value: object) -> str:
    """A default as a reader would write it: paths relative to the project or home, no secrets."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        if value.is_relative_to(PROJECT_ROOT):
            relative = value.relative_to(PROJECT_ROOT).as_posix()
            return relative + "/" if value.is_dir() else relative
        if value.is_relative_to(Path.home()):
            return "~/" + value.relative_to(Path.home()).as_posix()
        return value.as_posix()
    if isinstance(value, list) and all(isinstance(item, Path) for item in value):
        return json.dumps([shown_default(item) for item in value])
    return str(value)


def render() -> str:
    parts = [HEADER]
    for section, model in SECTIONS.items():
        parts.append(f"## `[{section}]`: {Settings.model_fields[section].description}\n")
        parts.append("| variable | default | meaning | flat name |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            default = shown_default(field.get_default(call_default_factory=True))
            flat = model.flat_names.get(name, name)
            parts.append(f"| `{env_name(section, name)}` | `{default}` | {field.description} | `{flat}` |")
        parts.append("")
    return "\n".join(parts)


def main(argv: list[str], doc: Path = DOC) -> int:
    if "--check" in argv:
        if not doc.is_file() or doc.read_text() != render():
            print(f"{doc} is out of date: run .venv/bin/python scripts/settings_doc.py", file=sys.stderr)
            return 1
        return 0
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(render())
    print(f"written {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
