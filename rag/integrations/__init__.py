"""The product as components of other frameworks (llama_index.py: a LlamaIndex retriever and
query engine). Integrations import the library; the library never imports them (an
import-linter contract in pyproject.toml)."""
