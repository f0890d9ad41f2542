"""The `rag` command: a thin layer over the `rag` library, `ui` and `eval`.

It lives outside the library so that the library never imports a front-end
(an import-linter contract enforces this; see pyproject.toml).
"""
