"""Settings of a source beyond its URI, and the mapping from the source's principals to Cristal's rules.

``cristal source add --config FILE`` reads a YAML (or JSON) file; the kind's
settings model checks it and the checked form is stored in the source's
options. It never holds a secret: credentials are named by the environment
variables that hold them, read when a sync runs.

Every kind with settings accepts ``principals``: who the source says may read
an item (a mailbox owner, an IMAP ACL identifier, a group named in a page's
header, an object tag) is looked up there and becomes Cristal rules
(``user:EMAIL``, ``group:NAME``, ``org``). A principal that is not in the
mapping grants nothing, and an item whose principals all are unmapped is for
org admins only: the source's ``--acl`` is only used for items the source says
nothing about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cristal.config import secret_from_env
from cristal.errors import InvalidInput
from cristal.knowledge.access import parse_rule
from cristal.knowledge.connectors.base import ScanProblem, ScanScope

MAX_CONFIG_BYTES = 1024 * 1024


class SourceSettings(BaseModel):
    """Fields every kind with settings shares."""

    model_config = ConfigDict(extra="forbid")

    principals: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("principals", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        checked: dict[str, list[str]] = {}
        for principal, rules in value.items():
            items = [rules] if isinstance(rules, str) else rules
            if not isinstance(items, list) or not all(isinstance(r, str) for r in items):
                raise ValueError(f"{principal!r}: give a rule or a list of rules")
            try:
                checked[str(principal)] = sorted({parse_rule(r) for r in items})
            except InvalidInput as exc:
                raise ValueError(f"{principal!r}: {exc}") from None
        return checked


class SettingsFile(dict):
    """A settings file's mapping that remembers where each field was written, for errors that name the line."""

    def __init__(self, data: dict, origin: str, lines: dict[tuple, int]) -> None:
        super().__init__(data)
        self.origin = origin
        self.lines = lines

    def where(self, loc: tuple) -> str:
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(str(p) for p in loc[:end]))
            if line is not None:
                return f"{self.origin}:{line}: "
        return f"{self.origin}: "


def _lines(node: yaml.Node, path: tuple, found: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                here = (*path, str(key.value))
                found[here] = key.start_mark.line + 1
                _lines(value, here, found)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            found[(*path, str(index))] = value.start_mark.line + 1
            _lines(value, (*path, str(index)), found)


def read_config_file(path: Path) -> dict:
    """The mapping in a YAML or JSON settings file, or ``InvalidInput`` with the line that is wrong."""
    try:
        raw = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                # An alias can multiply a small file into a huge settings object once expanded.
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise InvalidInput(f"{path}:{line}: YAML aliases are not allowed in settings files")
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{path}{where}: invalid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: invalid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    lines: dict[tuple, int] = {}
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None:
        _lines(node, (), lines)
    return SettingsFile(data, str(path), lines)


def check_settings(kind: str, model: type[SourceSettings], raw: dict | None) -> dict:
    """The settings in their checked, storable form, or one line saying which field is wrong."""
    try:
        return model.model_validate(raw or {}).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        line = raw.where(first["loc"]) if isinstance(raw, SettingsFile) else ""
        raise InvalidInput(f"{line}{kind} source settings: {where}: {message}{more}") from None


def from_env(variable: str, what: str) -> str:
    """A credential from the environment; ``MissingCredential`` when it is not set."""
    value = secret_from_env(variable)
    if not value:
        raise MissingCredential(f"environment variable {variable} ({what}) is not set")
    return value


def env_headers(names: dict[str, str]) -> dict[str, str]:
    """Request headers whose values are read from the named environment variables (``MissingCredential`` if unset)."""
    return {header: from_env(variable, f"header {header}") for header, variable in names.items()}


class MissingCredential(Exception):
    """A credential's environment variable is unset; the sync reports it and deletes nothing."""


def unreachable(scope: ScanScope, where: str, reason: str) -> ScanProblem:
    """The problem for a source that could not be listed at all; its scan is incomplete, so nothing is deleted."""
    scope.complete = False
    return ScanProblem(where, reason)


@dataclass
class PrincipalMap:
    """Turns the principals a source names into Cristal rules; unmapped ones are collected for the summary."""

    mapping: dict[str, list[str]]
    unmapped: set[str] = field(default_factory=set)

    def rules(self, principals: Iterable[str]) -> tuple[str, ...] | None:
        found: set[str] = set()
        for principal in principals:
            rules = self.mapping.get(principal)
            if rules is None:
                self.unmapped.add(principal)
            else:
                found.update(rules)
        return tuple(sorted(found)) or None

    def problems(self) -> list[ScanProblem]:
        if not self.unmapped:
            return []
        names = sorted(self.unmapped)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return [ScanProblem("(principals)", f"source principals without a mapping grant nothing: {shown}")]
