"""paper-rag: grounded question answering over paper abstracts.

Pipeline stages, one module each: corpus (load) -> chunking -> embedding ->
index (Chroma store) -> retrieval. Settings live in settings.py.
"""

import os
from pathlib import Path

# Offline by default: a hub look-up should fail at once instead of retrying for
# a minute, and tiktoken (used by llama-index) must find its bundled BPE files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _bundled_tiktoken_cache() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    cache = Path(spec.submodule_search_locations[0]) / "_static" / "tiktoken_cache"
    return str(cache) if cache.is_dir() else None


if "TIKTOKEN_CACHE_DIR" not in os.environ and (_cache := _bundled_tiktoken_cache()):
    os.environ["TIKTOKEN_CACHE_DIR"] = _cache
