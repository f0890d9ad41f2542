"""The LLM, always through the `openai` client against an OpenAI-compatible
endpoint (OpenAI, Ollama, vLLM, llama.cpp's server, the embedded model).

Every failure becomes an :class:`LLMError` whose message a person can act
on; callers never see a raw HTTP or socket exception.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

import httpx
import openai

from rag.settings import Settings


class LLMError(RuntimeError):
    """The LLM could not produce an answer; str() is meant for the user."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # unreachable | timeout | http | stream_cut | bad_response | not_ready


class ChatLLM(Protocol):
    description: str

    def stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply's text piece by piece."""

    def complete(self, messages: list[dict], max_tokens: int | None = None) -> str:
        """The whole reply."""


class OpenAIChatLLM:
    """Chat completions over the openai client, with timeouts and retries from settings.

    ``wait_until_ready`` runs before each request (the embedded server uses it
    to block until its model is loaded, or to raise why it failed).
    """

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        model: str,
        wait_until_ready: Callable[[], None] | None = None,
        description: str | None = None,
    ):
        self.settings = settings
        self.base_url = base_url
        self.model = model
        self.wait_until_ready = wait_until_ready
        self.description = description or f"{model} at {base_url}"
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    def _request(self, messages: list[dict], max_tokens: int | None, stream: bool):
        if self.wait_until_ready is not None:
            self.wait_until_ready()
        return self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            temperature=self.settings.llm_temperature,
            max_tokens=max_tokens or self.settings.llm_max_tokens,
            stream=stream,
        )

    def stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        received = False
        try:
            for chunk in self._request(messages, max_tokens, stream=True):
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content
                if piece:
                    received = True
                    yield piece
        except Exception as err:
            raise self._explain(err, during_stream=received) from err

    def complete(self, messages: list[dict], max_tokens: int | None = None) -> str:
        try:
            response = self._request(messages, max_tokens, stream=False)
            return response.choices[0].message.content or ""
        except Exception as err:
            raise self._explain(err, during_stream=False) from err

    def _explain(self, err: Exception, during_stream: bool) -> LLMError:
        where = self.description
        if isinstance(err, LLMError):
            return err
        if isinstance(err, openai.APITimeoutError):
            return LLMError(
                f"the language model ({where}) did not answer within {self.settings.llm_timeout:g} s",
                "timeout",
            )
        if isinstance(err, openai.APIConnectionError):
            if during_stream:
                return LLMError(f"the answer from {where} was cut off mid-stream", "stream_cut")
            return LLMError(f"cannot reach the language model at {self.base_url}", "unreachable")
        if isinstance(err, openai.APIStatusError):
            detail = " ".join(str(getattr(err, "message", "") or err).split())[:200]
            return LLMError(
                f"the language model ({where}) returned HTTP {err.status_code}: {detail}", "http"
            )
        if isinstance(err, (httpx.HTTPError, openai.APIError)):
            if during_stream:
                return LLMError(f"the answer from {where} was cut off mid-stream", "stream_cut")
            return LLMError(f"the language model ({where}) failed: {err}", "bad_response")
        if isinstance(err, (ValueError, KeyError, AttributeError, IndexError, TypeError)):
            return LLMError(f"the language model ({where}) sent a reply that could not be read", "bad_response")
        return LLMError(f"the language model ({where}) failed: {type(err).__name__}: {err}", "bad_response")
