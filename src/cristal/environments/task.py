"""Task files: the YAML format of an environment task, its pydantic model, and a seeded instance of it.

``load_task(path)`` reads a task through ``cristal.yamlfile`` and returns a
``TaskDefinition`` or raises ``InvalidInput`` naming ``FILE:LINE: FIELD: problem``.
``TaskDefinition.instance(seed, state)`` draws the parameters (``choices``,
``range``, ``query`` over the start state, derived ``value`` templates) with a
``random.Random(seed)`` and renders the instruction, the reference actions, the
facts and the simulated employee's answers: the same seed gives the same instance.

Templates are rendered by the workflows' sandbox (``cristal.workflows.templates``:
Jinja2's immutable sandbox, undefined names refused, integers, sizes, loops and
time bounded), so a task and a workflow file accept the same templates. A
template that is one expression (``"{{ miles * 0.7 }}"``) keeps its value's type;
anything else renders to text. Task files are written by the installation's
administrators; what an agent or the simulated user writes is never rendered.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cristal import yamlfile
from cristal.environments.erp import TOOLS
from cristal.errors import InvalidInput
from cristal.workflows.templates import TemplateFailure, render

MAX_FILE_BYTES = 256 * 1024
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parameter(_Model):
    """One parameter: exactly one of ``choices`` (a list), ``range`` (two integers, inclusive),
    ``query`` (SQL over the start state: one row is drawn) or ``value`` (a template over the earlier ones)."""

    choices: list[Any] | None = None
    range: tuple[int, int] | None = None
    query: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one_kind(self) -> Parameter:
        given = [k for k in ("choices", "range", "query", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a parameter has exactly one of choices, range, query, value")
        if self.choices is not None and not self.choices:
            raise ValueError("choices is empty")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError("range: the first bound is above the second")
        return self


class StartState(_Model):
    """The fixture a rollout starts from: the sample company's ERP for ``org``, then ``sql`` statements
    (``:name`` placeholders bound from the parameters; a row parameter ``expense`` binds ``expense_id`` ...)."""

    fixture: Literal["sample-erp"] = "sample-erp"
    org: str = "aozora-us"
    sql: list[str] = Field(default_factory=list)


class Answer(_Model):
    """The simulated employee says ``say`` when the agent's message contains any of ``when`` (case-insensitive)."""

    when: list[str] = Field(min_length=1)
    say: str


class User(_Model):
    """The simulated employee: who they are, and what they reveal only when asked (their hidden goal)."""

    email: str
    answers: list[Answer] = Field(default_factory=list)
    otherwise: str = "I don't know more than that. Is there anything else you need from me?"


class ToolCall(_Model):
    """A reference action; ``when`` (a template) leaves it out of the instances where it is false."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None


class Check(_Model):
    """SQL over the resulting state whose first column of the first row must be true (non-zero)."""

    sql: str
    says: str = ""


class TaskDefinition(_Model):
    name: str
    family: Literal["tools"] = "tools"
    description: str
    policy: str  # a document of the sample company, relative to its documents folder
    instruction: str  # the employee's first message (a template)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    start_state: StartState = Field(default_factory=StartState)
    user: User
    tools: list[str] = Field(min_length=1)
    reference: list[ToolCall] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    checker: list[Check] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list, description="TABLE.COLUMN left out of the goal-state comparison "
                              "(free text such as a description the agent words itself)")
    max_steps: int = Field(30, ge=1, le=500)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("lower-case letters, digits and '-' (at most 63)")
        return v

    @field_validator("ignore")
    @classmethod
    def _columns(cls, v: list[str]) -> list[str]:
        for column in v:
            if not re.match(r"^[a-z_]+\.[a-z_]+$", column):
                raise ValueError(f"{column!r} is not TABLE.COLUMN")
        return v

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in TOOLS:
                raise ValueError(f"unknown tool {name!r}; one of: {', '.join(TOOLS)}")
        if "done" not in v:
            raise ValueError("tools must include 'done' (how the agent ends the conversation)")
        return v

    @model_validator(mode="after")
    def _reference_uses_tools(self) -> TaskDefinition:
        for call in self.reference:
            if call.tool not in self.tools:
                raise ValueError(f"reference calls {call.tool!r}, which is not in tools")
        if not self.reference and not self.facts:
            raise ValueError("a task needs reference actions or facts (else nothing can be checked)")
        return self

    @property
    def env_id(self) -> str:
        return f"cristal/{self.family}-{self.name}-v0"

    def instance(self, seed: int, query: QueryRows) -> TaskInstance:
        """The instance for ``seed``: ``query(sql, params)`` reads the start state (for ``query`` parameters)."""
        rng = random.Random(seed)
        values: dict[str, Any] = {}
        for name, p in self.parameters.items():
            try:
                if p.choices is not None:
                    values[name] = rng.choice(p.choices)
                elif p.range is not None:
                    values[name] = rng.randint(p.range[0], p.range[1])
                elif p.query is not None:
                    rows = query(p.query, bindings(values))
                    if not rows:
                        raise InvalidInput(f"task {self.name}: parameter {name}: the query found no rows")
                    values[name] = rng.choice(rows)
                else:
                    values[name] = render(p.value, values)
            except TemplateFailure as exc:
                raise InvalidInput(f"task {self.name}: parameter {name}: {exc}") from None
        try:
            return TaskInstance(
                task=self, seed=seed, values=values,
                instruction=str(render(self.instruction, values)),
                email=str(render(self.user.email, values)),
                answers=tuple((tuple(w.lower() for w in a.when), str(render(a.say, values))) for a in self.user.answers),
                otherwise=str(render(self.user.otherwise, values)),
                reference=tuple((c.tool, render(c.arguments, values)) for c in self.reference
                                if c.when is None or render(c.when, values)),
                facts=tuple(str(render(f, values)) for f in self.facts),
            )
        except TemplateFailure as exc:
            raise InvalidInput(f"task {self.name}: {exc}") from None


QueryRows = Callable[[str, dict[str, Any]], list[dict[str, Any]]]
"""Reads rows of the start state: ``query(sql, bindings)``."""


@dataclass(frozen=True)
class TaskInstance:
    """One seeded instance: the parameters' values and everything rendered from them."""

    task: TaskDefinition
    seed: int
    values: dict[str, Any]
    instruction: str
    email: str
    answers: tuple[tuple[tuple[str, ...], str], ...]
    otherwise: str
    reference: tuple[tuple[str, Any], ...]
    facts: tuple[str, ...]

    def reply(self, message: str) -> str:
        """The scripted employee's reply to the agent's ``message``: the first answer whose keyword it contains."""
        lowered = message.lower()
        for keywords, say in self.answers:
            if any(k in lowered for k in keywords):
                return say
        return self.otherwise


def bindings(values: dict[str, Any]) -> dict[str, Any]:
    """SQL ``:name`` bindings: scalar parameters by name, a row parameter's columns as ``name_column``."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out.update({f"{name}_{k}": v for k, v in value.items() if not isinstance(v, (dict, list))})
        elif not isinstance(value, list):
            out[name] = value
    return out


def parse_task(root: Any, origin: str) -> TaskDefinition:
    """Validate parsed YAML (``yamlfile.parse``'s result, lines kept) as a task file."""
    if not isinstance(root, dict):
        raise InvalidInput(f"{origin}:1: a task file is a mapping (name, description, instruction, ...)")
    try:
        return TaskDefinition.model_validate(yamlfile.plain(root))
    except ValidationError as exc:
        raise yamlfile.validation_error(origin, root, exc) from None


def load_task(path: str | Path) -> TaskDefinition:
    """Read and validate the task file at ``path``."""
    path = Path(path)
    return parse_task(yamlfile.read(path, what="task file", max_bytes=MAX_FILE_BYTES), str(path))
