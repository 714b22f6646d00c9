"""Turning whatever a model call raised into one readable ``LLMError`` line.

The ``openai`` client has already retried what deserves a retry (429, 5xx,
timeouts, dropped connections) by the time an exception gets here; this
module only says what finally went wrong, and where.
"""

from __future__ import annotations

import httpx2
import openai

from cristal.errors import LLMError
from cristal.models.shapes import BadResponse

__all__ = ["CALL_FAILURES", "BadResponse", "describe_failure"]

_DETAIL_CHARS = 200


# Failures the client retries, so the message can say it tried more than once.
_RETRIED = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, httpx2.TransportError)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _status_detail(exc: openai.APIStatusError) -> str:
    # The client unwraps ``{"error": {...}}`` into ``body``; some servers send a bare ``{"message"}``.
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if isinstance(message, str) and message.strip():
            return _short(message)
    try:
        return _short(exc.response.text) or exc.response.reason_phrase
    except (httpx2.HTTPError, UnicodeDecodeError, AttributeError):
        return exc.response.reason_phrase


_HINTS = {
    401: "check the API key",
    403: "the key may not use this model",
    404: "check the base URL and the model name",
    429: "rate limited",
}


def describe_failure(exc: BaseException, *, base_url: str, model: str, timeout: float, retries: int) -> LLMError:
    """The ``LLMError`` for ``exc`` raised by a call to ``model`` at ``base_url``."""
    where = f"model endpoint {base_url}"
    after = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries and isinstance(exc, _RETRIED) else ""
    if isinstance(exc, BadResponse):
        return LLMError(f"{where} sent an unusable answer for {model}: {exc}")
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return LLMError(f"{where} did not answer within {timeout:g}s{after}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return LLMError(f"cannot reach {where}{after}: {_short(str(cause)) or type(cause).__name__}")
    if isinstance(exc, httpx2.TransportError):
        return LLMError(f"lost the connection to {where}: {_short(str(exc)) or type(exc).__name__}")
    if isinstance(exc, openai.APIStatusError):
        hint = _HINTS.get(exc.status_code)
        hint_text = f"; {hint}" if hint else ""
        return LLMError(f"{where} answered HTTP {exc.status_code} for {model}{after}{hint_text}: {_status_detail(exc)}")
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError(f"{where} sent an unusable answer for {model}: {_short(str(exc))}")
    return LLMError(f"call to {where} failed: {_short(str(exc)) or type(exc).__name__}")


# What a model call may raise that ``describe_failure`` understands.
CALL_FAILURES: tuple[type[BaseException], ...] = (openai.OpenAIError, httpx2.HTTPError, BadResponse)
