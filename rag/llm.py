"""The LLM, always through the `openai` client against an OpenAI-compatible
endpoint (OpenAI, Ollama, vLLM, llama.cpp's server, the embedded model).

Every failure becomes an :class:`LLMError` whose message a person can act
on; callers never see a raw HTTP or socket exception.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator, Protocol

import httpx
import openai

from rag.errors import LLMError, UserError
from rag.settings import Settings

__all__ = ["ChatLLM", "LLMError", "ModelServer", "OpenAIChatLLM"]

log = logging.getLogger(__name__)


class ModelServer(Protocol):
    """What the LLM needs of a server it runs on (the embedded model's)."""

    base_url: str

    @property
    def status(self) -> str: ...

    def wait_ready(self, timeout: float | None = None) -> str: ...

    def restart_if_crashed(self) -> bool: ...


class ChatLLM(Protocol):
    """What the pipeline and front-ends may use of an LLM."""

    description: str  # for people: "qwen2.5-coder-1.5b (embedded)" or "gpt-4o-mini at https://..."
    model: str  # the name sent to the endpoint
    base_url: str  # the OpenAI-compatible endpoint
    embedded: bool  # True when this product started the model itself

    def status(self) -> str:
        """"ready", "starting", "failed: <reason>", "stopped", or "external" (not monitored)."""

    def busy(self) -> bool:
        """True while another request holds a model that serves one at a time."""

    def wait_until_ready(self) -> None:
        """Block until the model can answer; raise LLMError if it cannot."""

    def complete(self, messages: list[dict], max_tokens: int | None = None, json_schema: dict | None = None) -> str:
        """The whole reply; with json_schema, constrained to JSON of that shape where the endpoint can."""

    def stream_complete(
        self, messages: list[dict], max_tokens: int | None = None, json_schema: dict | None = None
    ) -> Iterator[str]:
        """The reply as it is written, piece by piece (optional: an LLM without it answers whole)."""


class OpenAIChatLLM:
    """Chat completions over the openai client, with timeouts and retries from settings.

    With ``server`` (the embedded model's), each request first waits until the
    server is ready, and requests go one at a time: llama.cpp's server answers
    one at a time, and a request queued inside it would use up its own timeout
    while waiting. Others wait here, at most ``llm_timeout`` seconds.
    """

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        model: str,
        *,
        server: ModelServer | None = None,
        display_name: str | None = None,
    ):
        self.settings = settings
        self.base_url = base_url
        self.model = model
        self.server = server
        self.embedded = server is not None
        name = display_name or model
        self.description = f"{name} (embedded)" if self.embedded else f"{name} at {base_url}"
        self._one_at_a_time = threading.Lock() if self.embedded else None
        self._structured_ok = True  # False once the endpoint refused a response_format
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=settings.llm.api_key.get_secret_value(),
            timeout=settings.llm.timeout,
            max_retries=settings.llm.max_retries,
        )

    def status(self) -> str:
        return self.server.status if self.server is not None else "external"

    def busy(self) -> bool:
        return self._one_at_a_time is not None and self._one_at_a_time.locked()

    def wait_until_ready(self) -> None:
        """Also restarts a server that died since the last request (at most once per death)."""
        if self.server is None:
            return
        try:
            self.server.restart_if_crashed()
            self.server.wait_ready()
        except UserError as err:
            raise LLMError(f"the embedded model is not available: {err}", "not_ready") from None

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the model for one request (embedded server only)."""
        if self._one_at_a_time is None:
            yield
            return
        if not self._one_at_a_time.acquire(timeout=self.settings.llm.timeout):
            raise LLMError(
                f"the language model ({self.description}) was busy with other answers for "
                f"{self.settings.llm.timeout:g} s; please ask again",
                "timeout",
            )
        try:
            yield
        finally:
            self._one_at_a_time.release()

    def _request(
        self, messages: list[dict], max_tokens: int | None, response_format: dict | None = None, stream: bool = False
    ):
        self.wait_until_ready()
        extra = {"response_format": response_format} if response_format else {}
        return self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            temperature=self.settings.llm.temperature,
            max_tokens=max_tokens or self.settings.llm.max_tokens,
            stream=stream,
            **extra,
        )

    def _request_structured(
        self, messages: list[dict], max_tokens: int | None, response_format: dict | None, stream: bool = False
    ):
        try:
            return self._request(messages, max_tokens, response_format=response_format, stream=stream)
        except openai.BadRequestError as err:
            if response_format is None:
                raise
            # The endpoint does not take this response_format: plain text from now on.
            log.info("%s refused structured output (%s); asking for plain text", self.description, err)
            self._structured_ok = False
            return self._request(messages, max_tokens, stream=stream)

    def _response_format(self, json_schema: dict | None) -> dict | None:
        """How this endpoint is asked for JSON of a shape: llama.cpp's server takes
        {"type": "json_object", "schema": ...}, OpenAI-style ones {"type": "json_schema", ...}."""
        mode = self.settings.llm.structured_output
        if json_schema is None or mode == "off" or not self._structured_ok:
            return None
        if mode == "json_object" or (mode == "auto" and self.embedded):
            return {"type": "json_object", "schema": json_schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": json_schema}}

    def complete(self, messages: list[dict], max_tokens: int | None = None, json_schema: dict | None = None) -> str:
        response_format = self._response_format(json_schema)
        with self._turn():
            try:
                response = self._request_structured(messages, max_tokens, response_format)
                return response.choices[0].message.content or ""
            except Exception as err:
                raise self._explain(err) from err

    def stream_complete(
        self, messages: list[dict], max_tokens: int | None = None, json_schema: dict | None = None
    ) -> Iterator[str]:
        """The reply piece by piece; the model is held until the reply ends or the caller stops reading."""
        response_format = self._response_format(json_schema)
        with self._turn():
            stream = None
            try:
                stream = self._request_structured(messages, max_tokens, response_format, stream=True)
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            except GeneratorExit:
                raise
            except Exception as err:
                raise self._explain(err) from err
            finally:
                if stream is not None:
                    stream.close()  # a reader that stopped early stops the generation too

    def _explain(self, err: Exception) -> LLMError:
        where = self.description
        if isinstance(err, LLMError):
            return err
        if isinstance(err, openai.APITimeoutError):
            return LLMError(
                f"the language model ({where}) did not answer within {self.settings.llm.timeout:g} s",
                "timeout",
            )
        cut = isinstance(err, (httpx.RemoteProtocolError, httpx.ReadError))  # a stream cut mid-reply
        if isinstance(err, openai.APIConnectionError) or cut:
            status = self.status()
            if status.startswith("failed: "):  # the embedded model's server died under the request
                reason = status[len("failed: ") :].split(";")[0]  # without the log's last lines
                return LLMError(
                    f"the language model ({where}) stopped: {reason}; it starts again for the next question",
                    "unreachable",
                )
            if cut or isinstance(err.__cause__, (httpx.RemoteProtocolError, httpx.ReadError)):
                return LLMError(f"the reply from {where} was cut off", "cut_off")
            return LLMError(f"cannot reach the language model at {self.base_url}", "unreachable")
        if isinstance(err, openai.APIStatusError):
            # Some endpoints echo the key they refused ("Incorrect API key provided: sk-..."): mask it.
            detail = " ".join(str(getattr(err, "message", "") or err).replace(self.client.api_key, "***").split())[:200]
            return LLMError(
                f"the language model ({where}) returned HTTP {err.status_code}: {detail}", "http"
            )
        if isinstance(err, (httpx.HTTPError, openai.APIError)):
            return LLMError(f"the language model ({where}) failed: {err}", "bad_response")
        if isinstance(err, (ValueError, KeyError, AttributeError, IndexError, TypeError)):
            return LLMError(f"the language model ({where}) sent a reply that could not be read", "bad_response")
        return LLMError(f"the language model ({where}) failed: {type(err).__name__}: {err}", "bad_response")
