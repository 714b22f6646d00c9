"""Simulated employees: the scripted one (the task's ``answers``) and one played by a model behind an endpoint.

A simulated user is called with the episode's instance and the conversation so
far (OpenAI chat messages, the agent as ``assistant``) and returns the
employee's next message. ``scripted_user`` says the first answer whose keyword
the agent's last message contains. ``EndpointUser`` gives a model the hidden
goal (the instruction and everything the employee knows, from the answers) and
the conversation with the roles swapped, and asks for a short reply; it is
never shown the goal state or the required facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cristal.environments.task import TaskInstance
from cristal.errors import LLMError

SimulatedUser = Callable[[TaskInstance, list[dict[str, Any]]], str]

PROMPT = """You play {email}, an employee talking to the company's expense assistant. Your request: {instruction}
What you know, to be told only when the assistant asks for it: {known}
Answer in one or two short sentences, as the employee. Never invent facts you were not given; say you don't know."""


def scripted_user(instance: TaskInstance, messages: list[dict[str, Any]]) -> str:
    return instance.reply(str(messages[-1].get("content") or ""))


class EndpointUser:
    """The employee played by a model at an OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 60.0) -> None:
        from openai import OpenAI

        self.model = model
        self.base_url = base_url
        self._client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=1)

    def __call__(self, instance: TaskInstance, messages: list[dict[str, Any]]) -> str:
        known = " ".join(say for _keywords, say in instance.answers) or "nothing beyond your request"
        chat: Any = [{"role": "system", "content": PROMPT.format(email=instance.email, instruction=instance.instruction,
                                                                 known=known)}]
        for m in messages[1:]:  # the assistant's system prompt is not the employee's to see
            if m["role"] == "user":
                chat.append({"role": "assistant", "content": m["content"]})
            elif m["role"] == "assistant" and m.get("content"):
                chat.append({"role": "user", "content": m["content"]})
        try:
            reply = self._client.chat.completions.create(model=self.model, messages=chat)
        except Exception as exc:  # noqa: BLE001 - any client failure ends the episode with a clear reason
            raise LLMError(f"simulated user endpoint {self.base_url}: {type(exc).__name__}: {exc}") from None
        return reply.choices[0].message.content or ""


@dataclass(frozen=True)
class UserSpec:
    """Which simulated user: scripted (no ``base_url``) or a model at ``base_url`` (a value a worker process can get)."""

    base_url: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)

    def make(self) -> SimulatedUser:
        return EndpointUser(self.base_url, self.model, self.api_key) if self.base_url else scripted_user
