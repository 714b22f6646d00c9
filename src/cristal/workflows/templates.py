"""Templates in workflow files: ``{{ ... }}`` over ``inputs``, ``steps``, ``item`` and ``run``.

Rendering uses Jinja2's ``SandboxedEnvironment`` with ``StrictUndefined``: a
template can read values and call safe filters, never reach Python internals,
and a misspelt name is an error rather than an empty string. A value that is a
single ``{{ expression }}`` evaluates to the expression's native value (a list,
a number, a boolean), so ``for_each: "{{ steps.pending.rows }}"`` yields a list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

ROOT_NAMES = ("inputs", "steps", "item", "run")
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateFailure(Exception):
    """A template that cannot be evaluated (the engine turns it into a step error)."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _single_expression(text: str) -> str | None:
    match = _SINGLE.match(text)
    if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
        return match.group("expr")
    return None


def parse(text: str) -> nodes.Template:
    """The template's syntax tree (``TemplateSyntaxError`` when malformed)."""
    expr = _single_expression(text)
    if expr is not None:
        return ENV.parse("{{ " + expr + " }}")
    return ENV.parse(text)


def strings(value: Any) -> Iterator[str]:
    """Every string inside a (nested) value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def references(tree: nodes.Template) -> tuple[set[str], set[tuple[str, str | None]], set[str]]:
    """Root names used, ``(step id, attribute)`` pairs read from ``steps``, and ``inputs`` keys read."""
    roots: set[str] = set()
    assigned: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx == "store":
            assigned.add(node.name)
        else:
            roots.add(node.name)
    roots -= assigned
    step_refs: set[tuple[str, str | None]] = set()
    input_refs: set[str] = set()

    def key_of(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Getattr):
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return node.arg.value
        return None

    parents: dict[int, nodes.Node] = {}
    for parent in tree.find_all((nodes.Getattr, nodes.Getitem)):
        parents[id(parent.node)] = parent
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = access.node
        if isinstance(base, nodes.Name) and base.name in ("steps", "inputs") and base.name not in assigned:
            key = key_of(access)
            if key is None:
                continue
            if base.name == "inputs":
                input_refs.add(key)
            else:
                outer = parents.get(id(access))
                step_refs.add((key, key_of(outer) if outer is not None else None))
    return roots, step_refs, input_refs


@lru_cache(maxsize=4096)
def _compiled(text: str) -> tuple[str, Any]:
    expr = _single_expression(text)
    if expr is not None:
        return "expr", ENV.compile_expression(expr, undefined_to_none=False)
    return "text", ENV.from_string(text)


def render(value: Any, context: dict[str, Any]) -> Any:
    """``value`` with every template evaluated against ``context`` (nested dicts and lists too)."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if not is_template(value):
        return value
    try:
        kind, compiled = _compiled(value)
        if kind == "expr":
            result = compiled(**context)
            if isinstance(result, StrictUndefined):
                str(result)  # raises UndefinedError with the name
            return result
        return compiled.render(**context)
    except UndefinedError as exc:
        raise TemplateFailure(f"template {value.strip()!r}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateFailure(f"template {value.strip()!r} is not allowed: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"template {value.strip()!r}: {exc}") from None
    except (TypeError, ValueError, ZeroDivisionError, KeyError, AttributeError, IndexError) as exc:
        raise TemplateFailure(f"template {value.strip()!r}: {type(exc).__name__}: {exc}") from None


__all__ = ["ROOT_NAMES", "TemplateFailure", "TemplateSyntaxError", "is_template", "parse", "references", "render", "strings"]
