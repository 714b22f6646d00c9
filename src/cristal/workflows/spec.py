"""Workflow files: the YAML format, its Pydantic models, and validation before anything runs.

``load_workflow(path)`` reads a file (and, recursively, its sub-workflows),
and either returns a ``Compiled`` workflow — a plain, JSON-able definition that
a run carries with it, so a later edit of the file never changes a run already
under way — or raises ``InvalidInput`` with ``FILE:LINE: step 'ID': problem``.

Checked up front: YAML syntax and duplicate keys, unknown fields, step kinds
(exactly one per step, from the action registry: ``cristal.actions``), each
kind's spec against its action's pydantic model and settings-dependent checks
(the python module allow-list), retries and fan-out the action allows,
duplicate ids, template syntax, references to unknown or later steps and
undeclared inputs, ``item`` outside ``for_each``, durations, sub-workflow
files and cycles between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from cristal import yamlfile
from cristal.actions import Registry, Spec, build_registry
from cristal.actions.fields import approver_rules
from cristal.config import Settings, load_settings
from cristal.durable.durations import parse_duration
from cristal.errors import InvalidInput
from cristal.workflows import templates
from cristal.workflows.actions import SubWorkflowSpec

__all__ = ["COMMON", "Compiled", "Retry", "Step", "WorkflowFile", "approver_rules", "load_workflow", "load_workflow_text",
           "parse_cli_inputs", "parse_duration", "parse_inputs"]

COMMON = ("id", "when", "for_each", "concurrency", "retry", "timeout", "name")
STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
MAX_FILE_BYTES = 1024 * 1024


# ---------------------------------------------------------------------------
# Pydantic models of the format


class Retry(Spec):
    attempts: int = Field(3, ge=1, le=100)
    backoff: float = 1.0
    factor: float = Field(2.0, ge=1.0, le=10.0)

    @field_validator("backoff", mode="before")
    @classmethod
    def _backoff(cls, v: Any) -> float:
        return parse_duration(v)


class Step(Spec):
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


class WorkflowFile(Spec):
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
        return str(self.definition["name"])

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.definition["steps"]
        return steps

    @property
    def inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = self.definition["inputs"]
        return inputs


class _Checker:
    def __init__(self, path: Path, root: Any) -> None:
        self.path = path
        self.root = root

    def fail(self, loc: tuple[Any, ...], message: str, step: str | None = None) -> InvalidInput:
        where = f"step {step!r}: " if step else ""
        return InvalidInput(f"{self.path}:{yamlfile.line_at(self.root, loc)}: {where}{message}")

    def pydantic(self, exc: ValidationError, prefix: tuple[Any, ...], step: str | None) -> InvalidInput:
        loc, message = yamlfile.describe_validation(exc)
        return self.fail(prefix + loc, message, step)


def load_workflow(path: str | Path, *, settings: Settings | None = None, actions: Registry | None = None,
                  _stack: tuple[Path, ...] = ()) -> Compiled:
    """Read and validate a workflow file and its sub-workflows.

    Against ``settings`` and the action kinds of ``actions`` (defaults: this
    process's settings, the default registry).
    """
    path = Path(path).expanduser().resolve()
    if path in _stack:
        chain = " -> ".join(p.name for p in (*_stack, path))
        raise InvalidInput(f"{_stack[-1]}: cycle in sub-workflows: {chain}")
    return _compile(path, read_yaml(path), _stack, allow_files=True, settings=settings or load_settings(),
                    actions=actions or build_registry())


def load_workflow_text(text: str | bytes, *, origin: str = "<workflow>", settings: Settings | None = None,
                       actions: Registry | None = None) -> Compiled:
    """Validate a workflow given as text (an API call, a stored definition).

    Sub-workflow steps name files on the server's disk, so they are refused
    here: text from outside must not make the server read files.
    """
    return _compile(Path(origin), parse_yaml(text, origin), (), allow_files=False, settings=settings or load_settings(),
                    actions=actions or build_registry())


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def _compile(path: Path, root: Any, _stack: tuple[Path, ...], *, allow_files: bool, settings: Settings,
             actions: Registry) -> Compiled:
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
    all_ids = {str(raw["id"]) for raw in root["steps"] if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
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
        kinds = [k for k in raw if k in actions]
        if not kinds:
            unknown = [k for k in raw if k not in COMMON]
            hint = f" (unknown kind {unknown[0]!r})" if unknown else ""
            raise checker.fail(loc, f"no step kind{hint}: give exactly one of {', '.join(actions.names)}", step_id)
        if len(kinds) > 1:
            raise checker.fail((*loc, kinds[1]), f"two kinds in one step ({', '.join(kinds)}): give exactly one", step_id)
        kind = kinds[0]
        action = actions[kind]
        extra = [k for k in raw if k not in COMMON and k != kind]
        if extra:
            raise checker.fail((*loc, extra[0]), f"unknown field {extra[0]!r}", step_id)
        body = raw[kind]
        if not isinstance(body, dict):
            raise checker.fail((*loc, kind), f"{kind}: expected a mapping", step_id)
        try:
            spec = action.spec.model_validate(yamlfile.plain(body))
        except ValidationError as exc:
            raise checker.pydantic(exc, (*loc, kind), step_id) from None
        common = {k: yamlfile.plain(raw[k]) for k in COMMON if k in raw and k != "id"}
        try:
            step = Step.model_validate({"id": step_id, "kind": kind, "spec": spec.model_dump(by_alias=True), **common})
        except ValidationError as exc:
            raise checker.pydantic(exc, loc, step_id) from None
        if step.concurrency > 1 and step.for_each is None:
            raise checker.fail((*loc, "concurrency"), "concurrency needs for_each", step_id)
        if not action.fans_out and step.for_each is not None:
            raise checker.fail((*loc, "for_each"), f"{_article(kind)} {kind} step cannot fan out", step_id)
        if not action.retriable and step.retry is not None:
            reason = f" ({action.no_retry_reason})" if action.no_retry_reason else ""
            raise checker.fail((*loc, "retry"), f"{_article(kind)} {kind} step cannot be retried{reason}", step_id)
        problem = action.check(spec, settings) if action.check is not None else None
        if problem is not None:  # e.g. a python module the installation does not allow
            field, message = problem
            raise checker.fail((*loc, kind, field), message, step_id)
        earlier = [s["id"] for s in steps]
        _check_templates(checker, wf, raw, loc, step, earlier, all_ids - set(earlier) - {step_id}, steps)
        compiled = step.model_dump()
        if kind == "workflow":  # the engine's own kind: the child file is compiled into the definition now
            assert isinstance(spec, SubWorkflowSpec)
            if not allow_files:
                raise checker.fail((*loc, kind), "sub-workflow steps need a workflow file on disk, not text", step_id)
            child_path = (path.parent / spec.file).resolve()
            try:
                child = load_workflow(child_path, settings=settings, actions=actions, _stack=(*_stack, path))
            except InvalidInput as exc:
                if "cycle in sub-workflows" in str(exc) or not child_path.exists():
                    raise checker.fail((*loc, kind, "file"), str(exc).split(": ", 1)[1] if child_path.exists() else
                                       f"sub-workflow file {spec.file!r} not found", step_id) from None
                raise
            for key in spec.inputs:
                if key not in child.inputs:
                    raise checker.fail((*loc, kind, "inputs", key), f"sub-workflow {child.name!r} has no input {key!r}", step_id)
            missing = [k for k, v in child.inputs.items() if v is None and k not in spec.inputs]
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
