"""YAML files that people and API callers write: parsed into plain JSON-able values, with lines.

Every YAML document Cristal reads from a person (workflow files, over HTTP too, and
``KEY=VALUE`` values on the command line) goes through ``parse``; what it returns
is what JSON can hold, and anything else is refused with ``InvalidInput`` naming
``ORIGIN:LINE`` (the CLI exits 2, the HTTP API answers 400):

* mappings and sequences remember their line (``Lined``, ``LinedList``) so a later
  check can name the line of a field (``line_at``, ``error_at``);
* aliases (``*name``, merge keys ``<<: *name`` included) are refused while composing,
  before anything is expanded: a few hundred bytes of nested aliases expand into
  terabytes;
* nesting deeper than ``MAX_DEPTH`` levels is refused while composing, so 20,000
  nested ``[`` never reach Python's recursion limit;
* timestamps stay the text they were written as (``2025-02-30`` is the string
  ``"2025-02-30"``, not a date or an error); integers with more than
  ``MAX_INT_DIGITS`` digits, non-finite floats (``.inf``, ``.nan``, ``1e999``),
  ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs`` are refused;
* keys are plain scalars (text, numbers, booleans; kept as text), each at most once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor

from cristal.errors import InvalidInput

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 100
MAX_INT_DIGITS = 300
_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))


class Lined(dict):
    """A mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class LinedList(list):
    """A sequence that remembers its line and the line of each item (scalars have no line of their own)."""

    line: int = 0
    item_lines: list[int]


class _Refused(yaml.YAMLError):
    """Something the loader refuses (``parse`` turns it into ``InvalidInput`` with the line)."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.line = message, (mark.line + 1 if mark is not None else 1)


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str, what: str) -> None:
        super().__init__(stream)
        self.what = what
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"YAML aliases (*name) are not allowed in {self.what}s", event.start_mark)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        # The composer (and the constructor after it) recurse once per level: count before descending.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Lined:
    loader.flatten_mapping(node)
    result = Lined()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise ConstructorError(None, None, "keys must be plain names", key_node.start_mark)
        key = str(key)
        if key in result:
            raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LinedList:
    result = LinedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    # A date is text to a workflow (JSON has no dates), and 2025-02-30 is no reason to fail.
    return loader.construct_scalar(node)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).lstrip("+-").replace("_", "")
    digits = len(text) - (2 if text[:2].lower() in ("0x", "0o", "0b") else 0)
    if digits > 4 * MAX_INT_DIGITS:  # refused before converting: int() of thousands of digits is the slow part
        raise _Refused(f"an integer with {digits:,} digits (at most {MAX_INT_DIGITS})", node.start_mark)
    value = SafeConstructor.construct_yaml_int(loader, node)
    if value.bit_length() > _MAX_INT_BITS:
        raise _Refused(f"an integer with more than {MAX_INT_DIGITS} digits", node.start_mark)
    return value


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = SafeConstructor.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise _Refused(f"{loader.construct_scalar(node)!r} is not a finite number", node.start_mark)
    return value


def _refuse(kind: str) -> Any:
    def construct(loader: _Loader, node: yaml.Node) -> Any:
        raise _Refused(f"{kind} values are not allowed (only text, numbers, booleans, null, lists and mappings)",
                       node.start_mark)

    return construct


_TAG = "tag:yaml.org,2002:"
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor(_TAG + "timestamp", _construct_timestamp)
_Loader.add_constructor(_TAG + "int", _construct_int)
_Loader.add_constructor(_TAG + "float", _construct_float)
for _kind in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(_TAG + _kind, _refuse(f"!!{_kind}"))


def parse(raw: bytes | str, origin: str, *, what: str = "YAML file", max_bytes: int = MAX_BYTES) -> Any:
    """Parse YAML (bytes from a file or text from an API call); errors name ``origin`` and the line.

    ``what`` names the kind of file in messages ("workflow file").
    """
    if len(raw) > max_bytes:
        size = f"{max_bytes // 2**20} MB" if max_bytes % 2**20 == 0 else f"{max_bytes:,} bytes"
        raise InvalidInput(f"{origin}: {what} larger than {size}")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{origin}: not UTF-8 text") from None
    else:
        text = raw
    loader: _Loader | None = None
    try:
        # The reader checks for unprintable characters while it is built: inside the try.
        loader = _Loader(text, what)
        return loader.get_single_data()
    except _Refused as exc:
        raise InvalidInput(f"{origin}:{exc.line}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise InvalidInput(f"{origin}:{line}: malformed YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        raise InvalidInput(f"{origin}: {what} holds a character YAML does not allow (#x{exc.character:04x})") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{origin}: malformed YAML: {exc}") from None
    except RecursionError:  # not expected past the depth limit; a clear refusal all the same
        raise InvalidInput(f"{origin}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read(path: Path, *, what: str = "YAML file", max_bytes: int = MAX_BYTES) -> Any:
    """``parse`` the file at ``path`` (reading at most one byte past ``max_bytes``)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
    return parse(raw, str(path), what=what, max_bytes=max_bytes)


def scalar(text: str) -> Any:
    """A value typed on a command line (``250`` is a number, ``true`` a boolean, ``2025-01-31`` text).

    Lists and mappings only when written as ``[...]`` or ``{...}``; anything that does not parse
    (or is refused) is the text itself.
    """
    if not text.strip():
        return ""
    try:
        value = parse(text, "<value>")
    except InvalidInput:
        return text
    if isinstance(value, (dict, list)) and not text.strip().startswith(("{", "[")):
        return text
    return plain(value)


def plain(value: Any) -> Any:
    """``value`` with ``Lined``/``LinedList`` turned into plain dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def line_at(root: Any, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node along ``loc`` (keys and indexes from ``root``) that has one."""
    line = getattr(root, "line", 1)
    node = root
    for part in loc:
        if isinstance(node, Lined) and isinstance(part, str) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            item_lines = getattr(node, "item_lines", None)
            line = item_lines[part] if item_lines else line
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def _first_problem(exc: ValidationError) -> tuple[tuple[Any, ...], str, str]:
    first = exc.errors()[0]
    return tuple(first["loc"]), first["type"], first["msg"].removeprefix("Value error, ")


def describe_validation(exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    """The location and a one-line message of the first problem pydantic found in a parsed file."""
    loc, kind, msg = _first_problem(exc)
    field = ".".join(str(p) for p in loc)
    if kind == "extra_forbidden":
        return loc, f"unknown field {field!r}"
    if kind == "missing":
        return loc, f"missing field {field!r}"
    return loc, f"{field}: {msg}" if field else msg


def validation_error(origin: str, root: Any, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> InvalidInput:
    """``InvalidInput("ORIGIN:LINE: FIELD: problem")`` for pydantic's first problem with ``root`` (at ``prefix``)."""
    loc, kind, msg = _first_problem(exc)
    problem = {"extra_forbidden": "unknown field", "missing": "missing field"}.get(kind, msg)
    return error_at(origin, root, prefix + loc, problem)


def error_at(origin: str, root: Any, loc: tuple[Any, ...], message: str) -> InvalidInput:
    """``InvalidInput("ORIGIN:LINE: FIELD: message")`` for the field at ``loc``."""
    field = ".".join(str(p) for p in loc)
    return InvalidInput(f"{origin}:{line_at(root, loc)}: {field + ': ' if field else ''}{message}")


__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "Lined", "LinedList", "describe_validation", "error_at", "line_at", "parse", "plain",
           "read", "scalar", "validation_error"]
