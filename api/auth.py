"""Who may call /v1: API keys as bearer tokens, and when keys are required.

Keys come from the api_keys / api_keys_file settings. They are compared in
constant time (hmac.compare_digest against every key, so the time does not
tell which one nearly matched) and never logged or echoed. With no keys, /v1
is open. `rag serve` listens on a non-loopback address only with keys and a
login for the page (ui_username, ui_password), unless api_allow_unauthenticated
says otherwise (serve/startup.py).
"""

from __future__ import annotations

import hmac

from rag.errors import SettingsError
from rag.settings import ServingSettings


def configured_keys(serving: ServingSettings) -> list[str]:
    """Every configured API key (from api_keys and api_keys_file)."""
    keys = [k.strip() for k in (serving.api_keys.get_secret_value() if serving.api_keys else "").split(",")]
    if serving.api_keys_file is not None:
        try:
            lines = serving.api_keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise SettingsError(f"api_keys_file {serving.api_keys_file}: cannot be read ({err.strerror})") from None
        keys += [line.strip() for line in lines if not line.strip().startswith("#")]
    return [key for key in keys if key]


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
