#!/usr/bin/env bash
# Sets up (idempotent), indexes the bundled corpus if needed, and starts the product.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/rag ingest
exec .venv/bin/rag "${@:-ui}"
