#!/usr/bin/env bash
# Sets up (idempotent), guards retrieval quality, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Regression guard: retrieval on the project's question set must not fall more
# than the tolerance below the committed summary (no LLM; about a minute).
guard=$(mktemp -d)
trap 'rm -rf "$guard"' EXIT
.venv/bin/rag ingest --quiet --data-dir "$guard/data"
.venv/bin/rag eval --mode retrieval --data-dir "$guard/data" --out "$guard/eval" \
    --check eval/results/retrieval/summary.json 2> "$guard/eval.log" || { cat "$guard/eval.log"; exit 1; }
# ... and on the outsider-worded set (issue 23), both halves: a guard, not a tuning run.
.venv/bin/rag eval --mode retrieval --data-dir "$guard/data" --out "$guard/outsider" \
    --questions eval/questions-outsider.jsonl \
    --check eval/results/retrieval-outsider/summary.json 2> "$guard/outsider.log" || { cat "$guard/outsider.log"; exit 1; }

# The layers: the library imports no front-end; front-ends use its public modules only.
.venv/bin/lint-imports --no-cache

.venv/bin/python -m pytest "$@"
