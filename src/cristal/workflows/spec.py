"""Workflow files: the YAML format, its Pydantic models, and validation before anything runs.

``load_workflow(path)`` reads a file (and, recursively, its sub-workflows),
and either returns a ``Compiled`` workflow — a plain, JSON-able definition that
a run carries with it, so a later edit of the file never changes a run already
under way — or raises ``InvalidInput`` with ``FILE:LINE: step 'ID': problem``.

Checked up front: YAML syntax and duplicate keys, unknown fields, step kinds
(exactly one per step),
duplicate ids, template syntax, references to unknown or later steps and
undeclared inputs, ``item`` outside ``for_each``, durations, sub-workflow
files and cycles between them, approver rules and python call paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cristal import yamlfile
from cristal.config import Settings, load_settings
from cristal.durable.durations import parse_duration
from cristal.errors import InvalidInput
from cristal.workflows import templates

KINDS = ("sql", "http", "python", "llm", "research", "operate", "approval", "workflow")
NOT_YET: tuple[str, ...] = ()
COMMON = ("id", "when", "for_each", "concurrency", "retry", "timeout", "name")
STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
CALL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
MAX_FILE_BYTES = 1024 * 1024


# ---------------------------------------------------------------------------
# Pydantic models of the format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Retry(_Strict):
    attempts: int = Field(3, ge=1, le=100)
    backoff: float = 1.0
    factor: float = Field(2.0, ge=1.0, le=10.0)

    @field_validator("backoff", mode="before")
    @classmethod
    def _backoff(cls, v: Any) -> float:
        return parse_duration(v)


class SqlSpec(_Strict):
    source: str
    query: str
    params: dict[str, Any] = Field(default_factory=dict)
    max_rows: int = Field(10_000, ge=1, le=1_000_000)

    @field_validator("query")
    @classmethod
    def _no_templates(cls, v: str) -> str:
        if templates.is_template(v):
            raise ValueError("a query cannot contain templates (they would allow SQL injection): use :name placeholders and params")
        return v


class HttpSpec(_Strict):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    expect: list[int] | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class PythonSpec(_Strict):
    call: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("call")
    @classmethod
    def _call(cls, v: str) -> str:
        if not CALL.match(v):
            raise ValueError(f"invalid call {v!r}: use 'package.module:function'")
        return v


class LlmSpec(_Strict):
    prompt: str
    system: str | None = None
    output_schema: dict[str, Any] = Field(alias="schema")
    model: str | None = None


# The most one research step may spend (`cristal research` enforces the same limits on its options).
RESEARCH_MAX_TOKENS = 1_000_000
RESEARCH_MAX_SECONDS = 3600.0


class ResearchSpec(_Strict):
    question: str
    mode: Literal["auto", "extractive", "llm"] = "auto"
    lang: Literal["en", "de", "ja"] | None = None
    max_steps: int = Field(30, ge=1, le=500)
    max_tokens: int = Field(60_000, ge=1)
    max_seconds: float = Field(300.0, gt=0)
    # No ``checkpoint`` field: checkpoint ids are derived from (organization, run, step) by the step itself,
    # and `cristal research` pins one only programmatically, after validation. Text from outside (the REST
    # API takes workflow YAML from any employee) must not choose whose notes a step resumes.

    @model_validator(mode="before")
    @classmethod
    def _no_checkpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and "checkpoint" in data:
            raise ValueError("checkpoint: research checkpoints are chosen by Cristal (per organization, run and step), "
                             "not by workflow files; remove it")
        return data

    @field_validator("max_tokens")
    @classmethod
    def _tokens_cap(cls, v: int) -> int:
        # A step spends the organization's model budget on behalf of whoever submitted the file.
        if v > RESEARCH_MAX_TOKENS:
            raise ValueError(f"at most {RESEARCH_MAX_TOKENS} tokens per research step, not {v}")
        return v

    @field_validator("max_seconds")
    @classmethod
    def _seconds_cap(cls, v: float) -> float:
        if v > RESEARCH_MAX_SECONDS:
            raise ValueError(f"at most {RESEARCH_MAX_SECONDS:g} seconds per research step, not {v:g}")
        return v


def approver_rules(v: list[str]) -> list[str]:
    """``group:NAME`` / ``user:EMAIL`` rules, normalised (e-mail addresses in lower case)."""
    out = []
    for rule in v:
        rule = rule.strip()
        kind, _, name = rule.partition(":")
        if kind not in ("group", "user") or not name:
            raise ValueError(f"invalid approver {rule!r}: use group:NAME or user:EMAIL")
        out.append(f"{kind}:{name.lower() if kind == 'user' else name}")
    return out


# Secret variables of the worker a workflow may read: CRISTAL_SECRET_<ORG>_<NAME> (see cristal.operator.workflow).
SECRET_ENV_PREFIX = "CRISTAL_SECRET_"
SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # the placeholder the model writes, {{NAME}}
SECRET_VAR = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,199}$")
# A record's file name inside the organization's records folder: no separators, no "..", no hidden files.
RECORD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.json$")


class OperateSpec(_Strict):
    """An Operator task in a real browser (see ``cristal.operator.workflow``).

    ``secrets`` names the organization's secrets, read from environment variables of the
    executing process named ``CRISTAL_SECRET_<ORG>_<NAME>`` (``[PASSWORD]`` reads
    ``CRISTAL_SECRET_ACME_PASSWORD`` in organization ``acme``; ``{PASSWORD: CRISTAL_SECRET_ACME_ERP}``
    gives the model a different placeholder), so no secret value is ever stored with the run and
    a workflow file can never name another variable of the worker (its LLM key, say). The
    organization part is checked when the step runs. ``record`` is a plain file name ending in
    ``.json`` (or ``true``): the record is written under ``$CRISTAL_HOME/records/<org>/``.
    ``approvers`` decide irreversible-looking actions (default: the run's owner); an action
    waits at most ``approval_timeout``.
    """

    task: str = Field(min_length=1)
    start_url: str = Field(min_length=1)
    allow_domains: list[str] = Field(default_factory=list)
    secrets: list[str] | dict[str, str] = Field(default_factory=list)
    max_steps: int = Field(30, ge=1, le=1000)
    max_seconds: float = Field(300.0, gt=0, le=86_400)
    model: str | None = None
    approvers: list[str] = Field(default_factory=list)
    approval_timeout: float = Field(3600.0, gt=0, le=30 * 86_400)
    allow_irreversible: bool = False
    record: bool | str | None = None
    screenshots: bool = False
    vision: bool = False

    @field_validator("max_seconds", "approval_timeout", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, v: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        # Only the organization's own secret variables: the org part is checked at run time (see operator.workflow).
        for name in v:
            if not SECRET_NAME.match(name):
                raise ValueError(f"invalid secret name {name!r}: use letters, digits and _ (for example PASSWORD)")
        if isinstance(v, dict):
            for name, env in v.items():
                if not env.startswith(SECRET_ENV_PREFIX) or not SECRET_VAR.match(env):
                    raise ValueError(f"secret {name}: {env!r} is not a secret variable; the organization's secrets are "
                                     f"environment variables named {SECRET_ENV_PREFIX}<ORG>_<NAME>")
        return v

    @field_validator("record")
    @classmethod
    def _record_name(cls, v: bool | str | None) -> bool | str | None:
        # A file name only: records of workflow steps live under $CRISTAL_HOME/records/<org>/ (templates are checked when rendered).
        if isinstance(v, str) and not templates.is_template(v) and not RECORD_NAME.match(v):
            raise ValueError(f"invalid record {v!r}: give a plain file name ending in .json (no folders), or true; "
                             "records are kept in $CRISTAL_HOME/records/<org>/")
        return v or None

    @field_validator("approvers")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        return approver_rules(v)


class ApprovalSpec(_Strict):
    approvers: list[str] = Field(min_length=1)
    message: str = ""
    on_timeout: Literal["reject", "approve", "fail"] = "fail"
    on_reject: Literal["stop", "continue"] = "stop"

    @field_validator("approvers")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        return approver_rules(v)


class SubWorkflowSpec(_Strict):
    file: str
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _literal(cls, v: str) -> str:
        if templates.is_template(v):
            raise ValueError("the sub-workflow file must be a literal path (it is checked before the run starts)")
        return v


SPECS: dict[str, type[BaseModel]] = {
    "sql": SqlSpec, "http": HttpSpec, "python": PythonSpec, "llm": LlmSpec, "research": ResearchSpec,
    "operate": OperateSpec, "approval": ApprovalSpec, "workflow": SubWorkflowSpec,
}


class Step(_Strict):
    id: str
    name: str | None = None
    when: Any = None
    for_each: Any = None
    concurrency: int = Field(1, ge=1, le=64)
    retry: Retry | None = None
    timeout: float | None = None
    kind: str
    spec: dict[str, Any]

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class WorkflowFile(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1)
    outputs: dict[str, Any] | None = None


# ---------------------------------------------------------------------------
# YAML with line numbers (cristal.yamlfile: aliases, deep nesting, huge integers and non-JSON values refused)


def read_yaml(path: Path) -> Any:
    return yamlfile.read(path, what="workflow file", max_bytes=MAX_FILE_BYTES)


def parse_yaml(raw: bytes | str, origin: str) -> Any:
    """Parse workflow YAML (bytes from a file or text from an API call); errors name ``origin`` and the line."""
    return yamlfile.parse(raw, origin, what="workflow file", max_bytes=MAX_FILE_BYTES)


# ---------------------------------------------------------------------------
# Validation


@dataclass
class Compiled:
    """A validated workflow: ``definition`` is plain JSON (it travels with the run)."""

    path: Path
    definition: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition["name"]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.definition["steps"]

    @property
    def inputs(self) -> dict[str, Any]:
        return self.definition["inputs"]


class _Checker:
    def __init__(self, path: Path, root: Any) -> None:
        self.path = path
        self.root = root

    def fail(self, loc: tuple[Any, ...], message: str, step: str | None = None) -> InvalidInput:
        where = f"step {step!r}: " if step else ""
        return InvalidInput(f"{self.path}:{yamlfile.line_at(self.root, loc)}: {where}{message}")

    def pydantic(self, exc: ValidationError, prefix: tuple[Any, ...], step: str | None) -> InvalidInput:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc)
        kind = first["type"]
        if kind == "extra_forbidden":
            message = f"unknown field {field!r}"
        elif kind == "missing":
            message = f"missing field {field!r}"
        else:
            msg = first["msg"].removeprefix("Value error, ")
            message = f"{field}: {msg}" if field else msg
        return self.fail(prefix + loc, message, step)


def load_workflow(path: str | Path, *, settings: Settings | None = None, _stack: tuple[Path, ...] = ()) -> Compiled:
    """Read and validate a workflow file and its sub-workflows (against ``settings``: default, this process's)."""
    path = Path(path).expanduser().resolve()
    if path in _stack:
        chain = " -> ".join(p.name for p in (*_stack, path))
        raise InvalidInput(f"{_stack[-1]}: cycle in sub-workflows: {chain}")
    return _compile(path, read_yaml(path), _stack, allow_files=True, settings=settings or load_settings())


def load_workflow_text(text: str | bytes, *, origin: str = "<workflow>", settings: Settings | None = None) -> Compiled:
    """Validate a workflow given as text (an API call, a stored definition).

    Sub-workflow steps name files on the server's disk, so they are refused
    here: text from outside must not make the server read files.
    """
    return _compile(Path(origin), parse_yaml(text, origin), (), allow_files=False, settings=settings or load_settings())


def _compile(path: Path, root: Any, _stack: tuple[Path, ...], *, allow_files: bool, settings: Settings) -> Compiled:
    checker = _Checker(path, root)
    if not isinstance(root, dict):
        raise InvalidInput(f"{path}:1: a workflow file is a mapping with name, inputs and steps")
    try:
        wf = WorkflowFile.model_validate(yamlfile.plain(root))
    except ValidationError as exc:
        raise checker.pydantic(exc, (), None) from None
    for key in wf.inputs:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise checker.fail(("inputs", key), f"invalid input name {key!r}: use letters, digits and _")

    seen: dict[str, int] = {}
    steps: list[dict[str, Any]] = []
    all_ids = {raw.get("id") for raw in root["steps"] if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
    for index, raw in enumerate(root["steps"]):
        loc = ("steps", index)
        if not isinstance(raw, dict):
            raise checker.fail(loc, "a step is a mapping with an id and one kind")
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id):
            if step_id is None:
                raise checker.fail(loc, f"step {index + 1} has no id")
            raise checker.fail((*loc, "id"), f"invalid step id {step_id!r}: start with a letter; letters, digits, '_' and '-'")
        if step_id in seen:
            raise checker.fail((*loc, "id"), f"duplicate step id (first used on line {seen[step_id]})", step_id)
        seen[step_id] = yamlfile.line_at(root, loc)
        for kind in NOT_YET:
            if kind in raw:
                raise checker.fail((*loc, kind), f"step kind {kind!r} is not available yet in workflows", step_id)
        kinds = [k for k in raw if k in KINDS]
        if not kinds:
            unknown = [k for k in raw if k not in COMMON]
            hint = f" (unknown kind {unknown[0]!r})" if unknown else ""
            raise checker.fail(loc, f"no step kind{hint}: give exactly one of {', '.join(KINDS)}", step_id)
        if len(kinds) > 1:
            raise checker.fail((*loc, kinds[1]), f"two kinds in one step ({', '.join(kinds)}): give exactly one", step_id)
        kind = kinds[0]
        extra = [k for k in raw if k not in COMMON and k != kind]
        if extra:
            raise checker.fail((*loc, extra[0]), f"unknown field {extra[0]!r}", step_id)
        body = raw[kind]
        if not isinstance(body, dict):
            raise checker.fail((*loc, kind), f"{kind}: expected a mapping", step_id)
        try:
            spec = SPECS[kind].model_validate(yamlfile.plain(body))
        except ValidationError as exc:
            raise checker.pydantic(exc, (*loc, kind), step_id) from None
        common = {k: yamlfile.plain(raw[k]) for k in COMMON if k in raw and k != "id"}
        try:
            step = Step.model_validate({"id": step_id, "kind": kind, "spec": spec.model_dump(by_alias=True), **common})
        except ValidationError as exc:
            raise checker.pydantic(exc, loc, step_id) from None
        if step.concurrency > 1 and step.for_each is None:
            raise checker.fail((*loc, "concurrency"), "concurrency needs for_each", step_id)
        if kind == "approval" and step.for_each is not None:
            raise checker.fail((*loc, "for_each"), "an approval step cannot fan out", step_id)
        if kind == "approval" and step.retry is not None:
            raise checker.fail((*loc, "retry"), "an approval step cannot be retried", step_id)
        if kind == "operate" and step.retry is not None:  # a browser session cannot be resumed; a retry would redo actions
            raise checker.fail((*loc, "retry"), "an operate step cannot be retried (it would repeat its actions)", step_id)
        if kind == "python":
            module = spec.call.partition(":")[0]  # type: ignore[attr-defined]
            from cristal.workflows.steps import python_refusal

            refusal = python_refusal(settings, module)
            if refusal is not None:
                raise checker.fail((*loc, kind, "call"), refusal, step_id)
        earlier = [s["id"] for s in steps]
        _check_templates(checker, wf, raw, loc, step, earlier, all_ids - set(earlier) - {step_id}, steps)
        compiled = step.model_dump()
        if kind == "workflow":
            if not allow_files:
                raise checker.fail((*loc, kind), "sub-workflow steps need a workflow file on disk, not text", step_id)
            child_path = (path.parent / spec.file).resolve()  # type: ignore[attr-defined]
            try:
                child = load_workflow(child_path, settings=settings, _stack=(*_stack, path))
            except InvalidInput as exc:
                if "cycle in sub-workflows" in str(exc) or not child_path.exists():
                    raise checker.fail((*loc, kind, "file"), str(exc).split(": ", 1)[1] if child_path.exists() else
                                       f"sub-workflow file {spec.file!r} not found", step_id) from None  # type: ignore[attr-defined]
                raise
            for key in spec.inputs:  # type: ignore[attr-defined]
                if key not in child.inputs:
                    raise checker.fail((*loc, kind, "inputs", key), f"sub-workflow {child.name!r} has no input {key!r}", step_id)
            missing = [k for k, v in child.inputs.items() if v is None and k not in spec.inputs]  # type: ignore[attr-defined]
            if missing:
                raise checker.fail((*loc, kind), f"sub-workflow {child.name!r} needs input {missing[0]!r}", step_id)
            compiled["spec"]["definition"] = child.definition
        compiled["line"] = seen[step_id]
        steps.append(compiled)
    if wf.outputs:
        for value in templates.strings(wf.outputs):
            _check_one(checker, ("outputs",), None, value, wf, [s["id"] for s in steps], set(), steps, allow_item=False)
    definition = {
        "name": wf.name, "description": wf.description, "inputs": dict(wf.inputs),
        "steps": steps, "outputs": wf.outputs, "file": str(path),
    }
    return Compiled(path, definition)


def _check_templates(checker: _Checker, wf: WorkflowFile, raw: dict, loc: tuple, step: Step, earlier: list[str],
                     later: set[str], steps: list[dict]) -> None:
    if step.for_each is not None:
        for value in templates.strings(step.for_each):
            _check_one(checker, (*loc, "for_each"), step.id, value, wf, earlier, later, steps, allow_item=False)
    for field in ("when",):
        for value in templates.strings(raw.get(field)):
            _check_one(checker, (*loc, field), step.id, value, wf, earlier, later, steps, allow_item=step.for_each is not None)
    for value in templates.strings(step.spec):
        _check_one(checker, (*loc, step.kind), step.id, value, wf, earlier, later, steps, allow_item=step.for_each is not None)


def _check_one(checker: _Checker, loc: tuple, step_id: str | None, value: str, wf: WorkflowFile, earlier: list[str],
               later: set[str], steps: list[dict], *, allow_item: bool) -> None:
    if not templates.is_template(value):
        return
    try:
        tree = templates.parse(value)
    except templates.TemplateSyntaxError as exc:
        raise checker.fail(loc, f"template syntax error in {value.strip()!r}: {exc.message}", step_id) from None
    roots, step_refs, input_refs = templates.references(tree)
    for name in sorted(roots):
        if name not in templates.ROOT_NAMES:
            raise checker.fail(loc, f"unknown name {name!r} in template {value.strip()!r} (use inputs, steps, item, run)", step_id)
    if "item" in roots and not allow_item:
        raise checker.fail(loc, f"'item' is only defined in a step with for_each (template {value.strip()!r})", step_id)
    for key in sorted(input_refs):
        if key not in wf.inputs:
            raise checker.fail(loc, f"unknown input {key!r} in template {value.strip()!r}", step_id)
    kinds = {s["id"]: s["kind"] for s in steps}
    for ref, attr in sorted(step_refs, key=lambda r: (r[0], r[1] or "")):
        if ref == step_id:
            raise checker.fail(loc, f"step refers to its own output (template {value.strip()!r})", step_id)
        if ref in later:
            raise checker.fail(loc, f"refers to step {ref!r}, which runs later", step_id)
        if ref not in earlier:
            raise checker.fail(loc, f"refers to unknown step {ref!r}", step_id)
        if attr not in (None, "output", "rows", "status"):
            raise checker.fail(loc, f"steps.{ref}.{attr}: use steps.{ref}.output (or .rows for sql, .status)", step_id)
        if attr == "rows" and kinds.get(ref) != "sql":
            raise checker.fail(loc, f"steps.{ref}.rows: only sql steps have rows; use steps.{ref}.output", step_id)


def parse_inputs(compiled: Compiled, given: dict[str, Any]) -> dict[str, Any]:
    """The run's inputs: the file's defaults overridden by ``given``; unknown or missing names are errors."""
    values = dict(compiled.inputs)
    for key, value in given.items():
        if key not in values:
            known = ", ".join(sorted(values)) or "none"
            raise InvalidInput(f"workflow {compiled.name!r} has no input {key!r} (inputs: {known})")
        values[key] = value
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise InvalidInput(f"workflow {compiled.name!r} needs input {missing[0]!r}: pass --input {missing[0]}=VALUE")
    return values


def parse_cli_inputs(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as YAML scalars (``250`` is a number, ``true`` a boolean, a date is text)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"invalid --input {pair!r}: use KEY=VALUE")
        result[key] = yamlfile.scalar(raw)
    return result
