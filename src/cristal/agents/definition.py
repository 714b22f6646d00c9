"""Agent files: the YAML format of a custom agent, its pydantic model, and validation with FILE:LINE errors.

``load_agent(path)`` (or ``load_agent_text`` for text from an API call) reads a
definition through ``cristal.yamlfile`` and returns an ``AgentDefinition``, or
raises ``InvalidInput`` naming ``FILE:LINE: FIELD: problem``. Unknown fields and
unknown tools are errors. ``AgentDefinition.spec()`` is the plain JSON that
storage keeps for drafts and versions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from cristal import yamlfile
from cristal.actions import Spec
from cristal.actions.fields import approver_rules
from cristal.errors import InvalidInput
from cristal.identity.validation import check_email, check_group

__all__ = ["TOOL_KINDS", "AgentDefinition", "check_grantee", "load_agent", "load_agent_text", "parse_agent"]

MAX_FILE_BYTES = 256 * 1024
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Approvers named by role rather than by name (see ``agents.approvals``).
APPROVER_WORDS = ("admins", "caller")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


# ---------------------------------------------------------------------------
# Tools: a bare name, or a one-key mapping from the tool kind to its settings


class SearchKnowledgeTool(Spec):
    """Search the company's knowledge within the agent's scope (and the caller's access)."""


class ResearchTool(Spec):
    """Deep Research over the knowledge within the agent's scope."""


class SqlTool(Spec):
    """Read-only SQL on a named source, optionally limited to named queries (``:name`` parameters)."""

    source: str = Field(min_length=1, max_length=200)
    queries: dict[str, str] = Field(default_factory=dict)

    @field_validator("queries")
    @classmethod
    def _queries(cls, v: dict[str, str]) -> dict[str, str]:
        for name, query in v.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$", name):
                raise ValueError(f"invalid query name {name!r}: letters, digits, '_' and '-'")
            if not query.strip():
                raise ValueError(f"query {name!r} is empty")
        return v


class HttpEndpoint(Spec):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v


class HttpTool(Spec):
    """Calls to the declared endpoints only."""

    endpoints: list[HttpEndpoint] = Field(min_length=1)


class RunWorkflowTool(Spec):
    """Start a deployed workflow by its deployment name."""

    workflow: str = Field(min_length=1, max_length=200)


class OperateTool(Spec):
    """The Operator, within these web domains (and the organization's allow-list); ``approvers`` decide its
    irreversible actions (default: the person who asked)."""

    allow_domains: list[str] = Field(min_length=1)
    approvers: list[str] = Field(default_factory=list)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, v: list[str]) -> list[str]:
        return approver_rules(v)


class McpTool(Spec):
    """Tools of an MCP server that an org admin registered."""

    server: str = Field(min_length=1, max_length=100)
    tools: list[str] = Field(min_length=1)


TOOL_KINDS: dict[str, type[Spec]] = {
    "search_knowledge": SearchKnowledgeTool,
    "research": ResearchTool,
    "sql": SqlTool,
    "http": HttpTool,
    "run_workflow": RunWorkflowTool,
    "operate": OperateTool,
    "mcp": McpTool,
}


def _tool_kind(item: Any) -> str:
    return item if isinstance(item, str) else next(iter(item))


def _check_tool(item: Any) -> dict[str, Any]:
    """One entry of ``tools`` as ``{KIND: settings}``; ``ValueError`` for anything else."""
    if isinstance(item, str):
        kind, settings = item, None
    elif isinstance(item, dict) and len(item) == 1:
        kind, settings = next(iter(item.items()))
    else:
        raise ValueError("a tool is a name (search_knowledge) or one mapping (sql: {source: erp})")
    model = TOOL_KINDS.get(kind)
    if model is None:
        raise ValueError(f"unknown tool {kind!r} (known: {', '.join(TOOL_KINDS)})")
    return {kind: model.model_validate(settings or {}).model_dump(exclude_defaults=False)}


# ---------------------------------------------------------------------------
# The rest of the file


def check_grantee(grantee: str) -> tuple[str, str]:
    """``user:EMAIL``, ``group:NAME`` or ``org``, optionally with ``:edit``: the grantee and its level."""
    text, level = str(grantee).strip(), "use"
    if text.endswith(":edit"):
        text, level = text[: -len(":edit")], "edit"
    elif text.endswith(":use"):
        text = text[: -len(":use")]
    try:
        if text == "org":
            return text, level
        if text.startswith("user:"):
            return f"user:{check_email(text[5:])}", level
        if text.startswith("group:"):
            return f"group:{check_group(text[6:])}", level
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"invalid grantee {grantee!r}: use user:EMAIL, group:NAME or org (add :edit to let them edit)")


class Budgets(Spec):
    steps: int | None = Field(default=None, gt=0, le=1000)
    tokens: int | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, ge=0)


class Knowledge(Spec):
    sources: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class AgentTest(Spec):
    ask: str = Field(min_length=1, max_length=10_000)
    expect: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class Policy(Spec):
    # "untrusted": a write or destructive call waits for an approval when its arguments carry untrusted content;
    # "always": every such call waits.
    approve: Literal["untrusted", "always"] = "untrusted"
    # Who decides those approvals: group:NAME, user:EMAIL, "admins" (the organization's admins when the call is
    # made) or "caller" (the person talking to the agent). Empty: the admins.
    approvers: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for item in v:
            text = str(item).strip()
            if text not in APPROVER_WORDS:
                grantee, level = check_grantee(text)
                if grantee == "org" or level != "use":
                    raise ValueError(f"invalid approver {item!r}: use group:NAME, user:EMAIL, admins or caller")
                text = grantee
            if text not in out:
                out.append(text)
        return out
    # `cristal agent publish` runs the draft's test cases first and refuses a draft whose tests fail.
    tests_must_pass: bool = False


class AgentDefinition(Spec):
    """An agent file, validated."""

    name: str
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(min_length=1, max_length=100_000)
    language: str | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    budgets: Budgets = Field(default_factory=Budgets)
    knowledge: Knowledge = Field(default_factory=Knowledge)
    tools: list[Any] = Field(default_factory=list)
    starters: list[str] = Field(default_factory=list, max_length=20)
    sharing: list[str] = Field(default_factory=list)
    tests: list[AgentTest] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"invalid agent name {v!r}: 1-63 lowercase letters, digits and hyphens")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is not None and not LANGUAGE.match(v):
            raise ValueError(f"invalid language {v!r}: a language code such as en, de, ja or pt-BR")
        return v

    @field_validator("sharing")
    @classmethod
    def _sharing(cls, v: list[str]) -> list[str]:
        grants: dict[str, str] = {}
        for item in v:
            grantee, level = check_grantee(item)
            grants[grantee] = "edit" if "edit" in (level, grants.get(grantee)) else "use"  # edit includes use
        return [g if level == "use" else f"{g}:edit" for g, level in grants.items()]

    @model_validator(mode="after")
    def _tests_name_tools(self) -> AgentDefinition:
        kinds = {_tool_kind(t) for t in self.tools}
        for i, case in enumerate(self.tests):
            for name in case.tools:
                if name not in kinds:
                    raise _Located(("tests", i, "tools"), f"test expects tool {name!r}, which the agent does not have")
        if self.policy.tests_must_pass and not self.tests:
            raise _Located(("policy", "tests_must_pass"), "the agent asks its tests to pass but has no tests")
        return self

    def spec(self) -> dict[str, Any]:
        """The plain JSON that drafts and versions keep."""
        return self.model_dump(mode="json")

    @property
    def grants(self) -> list[tuple[str, str]]:
        return [check_grantee(g) for g in self.sharing]


class _Located(ValueError):
    """A check across fields, with the location it is about."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def parse_agent(root: Any, origin: str) -> AgentDefinition:
    """Validate parsed YAML (``yamlfile.parse``'s result, lines kept) as an agent file."""
    if not isinstance(root, dict):
        raise InvalidInput(f"{origin}:1: an agent file is a mapping (name:, instructions:, ...)")
    tools = root.get("tools")
    checked = dict(root)
    if isinstance(tools, list):
        # Each tool is checked on its own so the error names the line of that tool (and of its field).
        checked_tools = []
        for i, item in enumerate(tools):
            try:
                checked_tools.append(_check_tool(item))
            except ValidationError as exc:
                raise yamlfile.validation_error(origin, root, exc, ("tools", i, _tool_kind(item))) from None
            except ValueError as exc:
                raise yamlfile.error_at(origin, root, ("tools", i), str(exc)) from None
        kinds = [k for t in checked_tools for k in t if not t[k]]
        duplicate = next((k for k in kinds if kinds.count(k) > 1), None)
        if duplicate:
            raise yamlfile.error_at(origin, root, ("tools",), f"tool {duplicate!r} is listed twice")
        checked["tools"] = checked_tools
    try:
        return AgentDefinition.model_validate(yamlfile.plain(checked))
    except ValidationError as exc:
        cause = exc.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, _Located):
            raise yamlfile.error_at(origin, root, cause.loc, str(cause)) from None
        raise yamlfile.validation_error(origin, root, exc) from None


def load_agent(path: str | Path) -> AgentDefinition:
    """Read and validate an agent file."""
    path = Path(path).expanduser()
    return parse_agent(yamlfile.read(path, what="agent file", max_bytes=MAX_FILE_BYTES), str(path))


def load_agent_text(text: str | bytes, origin: str = "<agent>") -> AgentDefinition:
    """Validate an agent definition given as text (an API call)."""
    return parse_agent(yamlfile.parse(text, origin, what="agent file", max_bytes=MAX_FILE_BYTES), origin)
