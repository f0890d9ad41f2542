"""Which vector store an index belongs to.

A catalog holds papers and BM25 for vectors that live elsewhere: in the
embedded Chroma of the data folder, or on a Chroma server. Each committed
generation records its store (``store`` in the catalog's state), and every
reader, writer and check compares it with the store the settings name, so a
catalog is never read against another store's vectors.

Each store also has its own folder of catalogs (``Settings.store_dir``): the
embedded store's indexes in the data folder, a server's under
``data_dir/stores/<server>``. Indexes on several stores share one data folder
without touching each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from rag.settings import Settings

# Chroma's own defaults; the product always uses them.
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
STATE_KEY = "store"


@dataclass(frozen=True)
class StoreIdentity:
    kind: str  # "embedded" or "server"
    location: str  # the embedded Chroma folder, or the server's URL
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE

    @classmethod
    def of(cls, settings: Settings) -> StoreIdentity:
        if settings.storage.chroma_url:
            return cls("server", settings.storage.chroma_url.strip())
        return cls("embedded", str(settings.chroma_path.resolve()))

    @classmethod
    def recorded(cls, state: dict[str, str]) -> StoreIdentity | None:
        """The store a committed state names (None for a catalog written before stores were recorded)."""
        text = state.get(STATE_KEY)
        if not text:
            return None
        fields = json.loads(text)
        return cls(**{k: fields[k] for k in ("kind", "location", "tenant", "database") if k in fields})

    def to_state(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def same_store(self, other: StoreIdentity) -> bool:
        """Whether both name one store. The embedded store is always the data folder's own
        `chroma/`, beside the catalog: they move together, so its path is not compared."""
        if self.kind != other.kind:
            return False
        if self.kind == "embedded":
            return True
        return (_server_key(self.location), self.tenant, self.database) == (
            _server_key(other.location),
            other.tenant,
            other.database,
        )

    def describe(self) -> str:
        if self.kind == "embedded":
            return f"the embedded Chroma store in {self.location}"
        extra = "" if (self.tenant, self.database) == (DEFAULT_TENANT, DEFAULT_DATABASE) else (
            f" (tenant {self.tenant}, database {self.database})"
        )
        return f"the Chroma server at {self.location}{extra}"


def _server_key(url: str) -> tuple[str, str, int | None]:
    parsed = urlparse(url)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    except ValueError:  # a port that is not a number: compare the text
        return (url, "", None)
    return (parsed.scheme.lower(), (parsed.hostname or "").lower(), port)


def mismatch_message(recorded: StoreIdentity, current: StoreIdentity, where: str, collection_option: str) -> str:
    """The one-line error for an index opened against another store: both stores, both fixes."""
    if recorded.kind == "server":
        point = f"point chroma_url at that server (--chroma-url {recorded.location} or RAG_STORAGE__CHROMA_URL)"
    else:
        point = "use the embedded store (unset chroma_url / RAG_STORAGE__CHROMA_URL, no --chroma-url)"
    return (
        f"the index of {where} was built on {recorded.describe()}, but the settings name "
        f"{current.describe()}: {point}, or run `rag ingest{collection_option}` to rebuild it on this store"
    )
