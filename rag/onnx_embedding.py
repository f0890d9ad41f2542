"""The embedding model run by ONNX Runtime instead of torch (setting ``embedding_backend``).

sentence-transformers' own ONNX backend needs optimum-onnx, which requires
transformers<4.58 while sentence-transformers 6 requires transformers 5, so the
model's transformer is exported here with torch.onnx, once, at first use, into
the model cache (int8: then quantised by onnxruntime). Tokenising, truncation
and pooling follow the model's own sentence-transformers config; a model whose
pipeline is not Transformer -> mean pooling -> normalise is refused rather than
approximated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import warnings
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.model_files import resolve_model_path
from rag.errors import EmbeddingModelError

log = logging.getLogger(__name__)

# ONNX input -> the tokenizers Encoding attribute that feeds it
INPUTS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
MEAN_PIPELINES = (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX (fp32, or int8 when ``quantized``).

    The name carries the backend, so an index built with another backend is
    rebuilt rather than mixed with these vectors.
    """

    def __init__(self, name: str, cache_dir: Path, quantized: bool = False):
        self.path = resolve_model_path(name)
        self.quantized = quantized
        self.name = f"{name}+{'onnx-int8' if quantized else 'onnx'}"
        self.cache_dir = cache_dir
        self.cache_stem = Path(name).name
        self.max_tokens, self.dimension = _read_pipeline(self.path)
        self._counting = _load_tokenizer(self.path, truncate_at=None)
        self._truncating = _load_tokenizer(self.path, truncate_at=self.max_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self._counting.encode(text).ids)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # One text per run: without padding, mean pooling over the attention mask is
        # the plain mean, a text's vector never depends on its batch (int8 scales
        # activations per run), and it measured faster here than padded batches.
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        encoding = self._truncating.encode(text)
        feed = {name: np.array([getattr(encoding, attr)], dtype=np.int64) for name, attr in INPUTS.items()}
        vector = self._session.run(["last_hidden_state"], feed)[0][0].mean(axis=0)
        return (vector / np.linalg.norm(vector)).tolist()

    @cached_property
    def _session(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads()
        return onnxruntime.InferenceSession(str(self._model_file()), options, providers=["CPUExecutionProvider"])

    def _model_file(self) -> Path:
        """The cached ONNX model, exported (and quantised) first if it is not there yet."""
        root = self.cache_dir / f"{self.cache_stem}-{_weights_digest(self.path)[:12]}"
        fp32 = _build_once(root, lambda folder: _export(self.path, folder / "model.onnx"))
        if not self.quantized:
            return fp32
        int8 = root.with_name(root.name + "-int8")
        return _build_once(int8, lambda folder: _quantize(fp32, folder / "model.onnx"))


def _read_pipeline(path: Path) -> tuple[int, int]:
    """(max tokens, dimension) of a Transformer -> mean Pooling [-> Normalize] model; anything else is refused."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
        transformer = json.loads((path / "sentence_bert_config.json").read_text())
        max_tokens = int(transformer["max_seq_length"])
        dimension = int(pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise EmbeddingModelError(
            f"{path} is not a sentence-transformers model folder the onnx backend can read ({err})"
        ) from None
    if kinds not in MEAN_PIPELINES or not _is_mean_pooling(pooling) or transformer.get("do_lower_case"):
        raise EmbeddingModelError(
            f"the onnx backends compute Transformer -> mean pooling -> normalise only, but {path} has "
            f"{' -> '.join(kinds)} with pooling {pooling} and {transformer}: use embedding_backend 'torch'"
        )
    return max_tokens, dimension


def _is_mean_pooling(config: dict) -> bool:
    """Whether a Pooling config means plain mean pooling, in its current or its legacy keys
    (sentence-transformers reads legacy keys that are all false as mean pooling too)."""
    if "pooling_mode" in config:
        return config["pooling_mode"] in ("mean", ["mean"])
    legacy = [key for key, on in config.items() if key.startswith("pooling_mode_") and on]
    return legacy in ([], ["pooling_mode_mean_tokens"])


def _load_tokenizer(path: Path, truncate_at: int | None):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as err:  # tokenizers raises a bare Exception for a missing or bad file
        raise EmbeddingModelError(f"cannot load {path / 'tokenizer.json'} for the onnx backend: {err}") from None
    tokenizer.no_padding()
    if truncate_at is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(truncate_at)
    return tokenizer


def _threads() -> int:
    """torch's thread count when torch is loaded (it follows torch.set_num_threads), else
    onnxruntime's default (0: one per physical core, as torch's default)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch else 0


def _weights_digest(path: Path) -> str:
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not weights:
        raise EmbeddingModelError(f"no weights (*.safetensors or pytorch_model*.bin) in {path}")
    digest = hashlib.sha256()
    for file in weights:
        with file.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """target/model.onnx, first built into a temp folder renamed into place, so a
    crash never leaves half a model where a later run would load it."""
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            staged = Path(tmp) / target.name
            staged.mkdir()
            build(staged)
            try:
                staged.rename(target)
            except OSError:
                if not target.is_dir():
                    raise  # else another process built it meanwhile: same input, same model
    return target / "model.onnx"


def _export(model_path: Path, out: Path) -> None:
    """The transformer as ONNX: input_ids, attention_mask and token_type_ids with
    dynamic batch and sequence axes in, last_hidden_state out."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    log.info("exporting %s to ONNX in %s (once; takes seconds)", model_path, out.parent.name)

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Eager attention traces to plain ops; SDPA's Python-side branches only warn when traced.
    model = AutoModel.from_pretrained(model_path, local_files_only=True, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    # Two lengths, so the traced graph applies the padding mask.
    sample = tokenizer(["a short text", "a longer text, so the first is padded"], padding=True, return_tensors="pt")
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated but needs no onnxscript; its
        # tracer warnings concern shape checks that the tests' torch comparison covers.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            tuple(sample[name] for name in INPUTS),
            str(out),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*INPUTS, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8 (once)", fp32)
    # The quantiser logs a line per tensor to the root logger, and advises a pre-processing
    # step whose shape inference fails on this model: keep that out of the user's log.
    root, silence = logging.getLogger(), lambda record: False
    root.addFilter(silence)
    try:
        # Per-channel weight scales: per-tensor ones left MiniLM's vectors at cosine ~0.94
        # to fp32's, per-channel at ~0.99. The embedding table stays fp32 (a look-up: nothing to speed up).
        quantize_dynamic(fp32, out, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        root.removeFilter(silence)
