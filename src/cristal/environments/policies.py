"""Policies that act in an environment: scripted ones (``scripted:NAME``) and any OpenAI-compatible endpoint (URL).

A policy is started per episode (``start(env, observation, info)``) and then
asked for one action per observation (``act(observation)``). The scripted
policies read the episode's instance (its reference actions and facts): they
are oracles for testing the environments and the scoring, not agents.

* ``scripted:solve`` runs the reference actions, tells the employee the facts and ends: reward 1.
* ``scripted:wrong`` tells the employee it cannot help and ends: reward 0 (every task asks for a change or a fact).
* ``scripted:silent`` runs the reference actions but tells nothing: reward 0 wherever a fact is required.
* a URL is an OpenAI-compatible endpoint (``$CRISTAL_LLM_MODEL`` names the model, ``$CRISTAL_LLM_API_KEY`` the key):
  it gets the conversation as chat messages with the tools' schemas, and its tool calls are the actions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cristal.environments.tools import ToolsEnv
from cristal.errors import InvalidInput, LLMError

SCRIPTED = ("solve", "wrong", "silent")


class Policy(Protocol):
    name: str

    def start(self, env: ToolsEnv, observation: str, info: dict[str, Any]) -> None: ...
    def act(self, observation: str) -> Any: ...


class Scripted:
    """One of the scripted policies (see the module docstring)."""

    def __init__(self, kind: str) -> None:
        if kind not in SCRIPTED:
            raise InvalidInput(f"unknown scripted policy {kind!r}; one of: {', '.join(SCRIPTED)}")
        self.kind = kind
        self.name = f"scripted:{kind}"
        self._plan: deque[Any] = deque()

    def start(self, env: ToolsEnv, observation: str, info: dict[str, Any]) -> None:
        instance = env.instance
        assert instance is not None
        plan: list[Any] = []
        if self.kind == "wrong":
            plan.append({"message": "Sorry, I cannot help with that."})
        else:
            plan += [{"name": name, "arguments": arguments} for name, arguments in instance.reference]
            if self.kind == "solve":
                plan.append({"message": "All done. " + "; ".join(instance.facts)})
        plan.append({"name": "done", "arguments": {}})
        self._plan = deque(plan)

    def act(self, observation: str) -> Any:
        return self._plan.popleft() if self._plan else {"name": "done", "arguments": {}}


class Endpoint:
    """A model behind an OpenAI-compatible chat-completions endpoint, acting through tool calls."""

    def __init__(self, base_url: str, model: str, api_key: str, timeout: float = 60.0) -> None:
        from openai import OpenAI

        self.name = base_url
        self.model = model
        self._client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=1)
        self._env: ToolsEnv | None = None
        self._queued: deque[Any] = deque()
        self.tokens = 0

    def start(self, env: ToolsEnv, observation: str, info: dict[str, Any]) -> None:
        self._env, self._queued = env, deque()

    def act(self, observation: str) -> Any:
        from openai.types.chat import ChatCompletionMessageFunctionToolCall

        if self._queued:
            return self._queued.popleft()
        assert self._env is not None
        messages: Any = self._env.messages  # OpenAI chat messages and tool schemas, as plain dicts
        tools: Any = self._env.tool_schemas
        try:
            reply = self._client.chat.completions.create(model=self.model, messages=messages, tools=tools)
        except Exception as exc:  # noqa: BLE001 - any client failure ends the episode with a clear reason
            raise LLMError(f"policy endpoint {self.name}: {type(exc).__name__}: {exc}") from None
        if reply.usage is not None:
            self.tokens += reply.usage.total_tokens
        message = reply.choices[0].message
        calls = [{"name": c.function.name, "arguments": c.function.arguments, "id": c.id}
                 for c in (message.tool_calls or []) if isinstance(c, ChatCompletionMessageFunctionToolCall)]
        if not calls:
            return {"message": message.content or ""}
        self._queued.extend(calls[1:])
        return calls[0]


@dataclass(frozen=True)
class PolicySpec:
    """What ``--policy`` names, with the endpoint's model and key: a value that can travel to a worker process."""

    spec: str
    model: str = ""
    api_key: str = field(default="", repr=False)

    def factory(self) -> Callable[[], Policy]:
        return make_policy(self.spec, model=self.model, api_key=self.api_key)


def make_policy(spec: str, *, model: str = "", api_key: str = "") -> Callable[[], Policy]:
    """A factory of fresh policies for ``spec`` (``scripted:NAME`` or an http(s) URL); ``agent:SLUG`` is not yet supported."""
    if spec.startswith("scripted:"):
        kind = spec.removeprefix("scripted:")
        Scripted(kind)  # refuses an unknown name now, before any rollout
        return lambda: Scripted(kind)
    if spec.startswith(("http://", "https://")):
        if not model:
            raise InvalidInput("a policy endpoint needs a model: set CRISTAL_LLM_MODEL or pass --model")
        return lambda: Endpoint(spec, model, api_key)
    if spec.startswith("agent:"):
        raise InvalidInput("agent:SLUG policies are not supported yet; use scripted:NAME or an OpenAI-compatible URL")
    raise InvalidInput(f"unknown policy {spec!r}: scripted:NAME ({', '.join(SCRIPTED)}) or an http(s) URL")
