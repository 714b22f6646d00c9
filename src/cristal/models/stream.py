"""A streamed chat answer: an iterator of text deltas, metered once at its end.

Usage comes from the server's final chunk (requested with
``stream_options.include_usage``); servers that send none get an estimate,
marked as such. A stream the caller abandons half-way is metered for what was
received, so spend is never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cristal.models.call import Call, CallMeter
from cristal.models.failures import CALL_FAILURES, BadResponse
from cristal.models.metering import estimate_tokens
from cristal.models.shapes import ChatResult, ToolCall, parse_tool_call


@dataclass
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatStream:
    """Iterate for text deltas; after the last one, ``result`` holds the whole ``ChatResult``.

    Tool calls arrive in pieces and are only usable whole, so they appear in
    ``result.tool_calls``, not in the deltas. Errors while reading raise
    ``LLMError`` from the iteration.
    """

    def __init__(self, meter: CallMeter, call: Call, chunks: Any, prompt_estimate: int, started: float, *,
                 lenient: bool = False) -> None:
        self._meter = meter
        self._lenient = lenient  # tool arguments that are not a JSON object: a call with ``malformed`` set
        self._call = call
        self._chunks = chunks
        self._prompt_estimate = prompt_estimate
        self._started = started
        self._text: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._usage: tuple[int, int] | None = None
        self._done = False
        # close() may run on another thread than the iteration (a server's clean-up task after the client
        # left): deciding who meters is one check-and-set under this lock, so a call is metered once.
        self._ending = threading.Lock()
        self._iterating = False
        self.result: ChatResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iterating or self._done:
            raise RuntimeError("a ChatStream can be iterated only once")
        self._iterating = True
        return self._deltas()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Read the whole stream (unless already iterating) and return the text received."""
        if not self._iterating:
            for _ in self:
                pass
        return "".join(self._text)

    def close(self) -> None:
        """Stop reading (meters what was received, once)."""
        if self._end():
            self._chunks.close()
            self._meter_partial()

    # -- internals

    def _deltas(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
                delta = self._absorb(chunk)
                if delta:
                    self._text.append(delta)
                    yield delta
            self._complete()
        except CALL_FAILURES as exc:
            self._end()
            tokens_in, tokens_out, _ = self._tokens()
            raise self._meter.meter_failure(self._call, exc, self._elapsed_ms(), tokens_in, tokens_out) from None
        finally:
            # Reached on early ``break`` too (GeneratorExit): meter what was streamed.
            if self._end():
                self._chunks.close()
                self._meter_partial()

    def _absorb(self, chunk: Any) -> str:
        self._model = getattr(chunk, "model", None) or self._model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = (int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))
        choices = getattr(chunk, "choices", None)
        if not choices:
            return ""
        choice = choices[0]
        self._finish_reason = choice.finish_reason or self._finish_reason
        delta = choice.delta
        if delta is None:
            return ""
        for piece in delta.tool_calls or []:
            partial = self._calls.setdefault(piece.index, _PartialCall())
            partial.id = piece.id or partial.id
            if piece.function is not None:
                partial.name += piece.function.name or ""
                partial.arguments.append(piece.function.arguments or "")
        return delta.content or ""

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000

    def _tokens(self) -> tuple[int, int, bool]:
        if self._usage is not None:
            return self._usage[0], self._usage[1], False
        streamed = "".join(self._text) + "".join(p.name + "".join(p.arguments) for p in self._calls.values())
        return self._prompt_estimate, estimate_tokens(streamed), True

    def _complete(self) -> None:
        tokens_in, tokens_out, estimated = self._tokens()
        if self._finish_reason is None:
            # Not SSE, or cut off: nothing says the answer is whole.
            raise BadResponse("the stream ended without a finish reason", tokens_in=tokens_in, tokens_out=tokens_out)
        calls: list[ToolCall] = [
            parse_tool_call(p.id, p.name, "".join(p.arguments), lenient=self._lenient) for _, p in sorted(self._calls.items())
        ]
        if not self._end():
            return  # closed meanwhile, and metered as a partial answer
        usage = self._meter.meter(
            self._call, "ok", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=self._elapsed_ms(), estimated=estimated
        )
        self.result = ChatResult(
            text="".join(self._text),
            tool_calls=calls,
            usage=usage,
            model=self._model or self._call.model,
            finish_reason=self._finish_reason,
            request_id=self._call.request_id,
        )

    def _end(self) -> bool:
        """Mark the stream ended; ``True`` for the one caller that does so first (and meters it)."""
        with self._ending:
            if self._done:
                return False
            self._done = True
            return True

    def _meter_partial(self) -> None:
        tokens_in, tokens_out, estimated = self._tokens()
        self._meter.meter(
            self._call, "ok", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=self._elapsed_ms(),
            estimated=estimated, error="stream closed by the caller before its end",
        )
