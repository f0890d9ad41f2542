"""Who may call /v1: API keys as bearer tokens, and when keys are required.

Keys come from the api_keys / api_keys_file settings. They are compared in
constant time (hmac.compare_digest against every key, so the time does not
tell which one nearly matched) and never logged or echoed. With no keys, /v1
is open. `rag serve` listens on a non-loopback address only with keys and a
login for the page (ui_username, ui_password), unless api_allow_unauthenticated
says otherwise.
"""

from __future__ import annotations

import hmac

from rag.errors import SettingsError
from rag.net import is_loopback
from rag.settings import Settings


def check_bind(settings: Settings, host: str, keys: list[str]) -> None:
    """Refuse to serve a non-loopback address unless both the API (keys) and the page
    (its login) are protected, or told to: either one open lets anyone ask."""
    if is_loopback(host) or settings.api_allow_unauthenticated:
        return
    missing = []
    if not keys:
        missing.append("API keys (set RAG_API_KEYS or RAG_API_KEYS_FILE)")
    if not (settings.ui_username and settings.ui_password is not None):
        missing.append("a login for the page (set RAG_UI_USERNAME and RAG_UI_PASSWORD)")
    if missing:
        raise SettingsError(
            f"refusing to listen on {host} without {' or '.join(missing)}: anyone who can reach it could use it. "
            "RAG_API_ALLOW_UNAUTHENTICATED=true accepts that."
        )


class KeyCheck:
    """Whether a request's Authorization header carries one of the keys."""

    def __init__(self, keys: list[str]):
        self._keys = [key.encode() for key in keys]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def allows(self, authorization: str | None) -> bool:
        if not self._keys:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        offered = token.strip().encode()
        matched = False
        for key in self._keys:  # no early exit: every key is compared
            matched |= hmac.compare_digest(offered, key)
        return matched
