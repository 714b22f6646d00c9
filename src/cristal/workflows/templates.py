"""Templates in workflow files: ``{{ ... }}`` over ``inputs``, ``steps``, ``item`` and ``run``.

Rendering uses a Jinja2 ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``:
a template can read values and call safe filters, never reach Python internals
or change a value in place, and a misspelt name is an error rather than an empty
string. A value that is a single ``{{ expression }}`` evaluates to the
expression's native value (a list, a number, a boolean), so
``for_each: "{{ steps.pending.rows }}"`` yields a list.

Workflow files come from any member (over HTTP too) and are rendered inside a
worker that runs every organization's work, so rendering is bounded before it
computes, not after (a big-integer power holds the interpreter lock: a thread
computing ``9 ** (9 ** 9)`` stops every thread of the process):

* integers: ``**`` and ``*`` are refused when the result would have more than
  ``MAX_INT_DIGITS`` digits, and no operation may return a larger one;
* sizes: a string, list or other collection built by ``*``, ``+``, ``~``, a
  filter or a method (``center``, ``replace``, ``join``, ``format`` widths, …)
  may hold at most ``MAX_SIZE`` characters or items, and one rendering may
  write at most ``MAX_SIZE`` characters;
* work: all loops of one rendering together run at most ``MAX_LOOP_ITERATIONS``
  times (``range`` alone is capped by the sandbox), recursive loops are refused,
  and a rendering stops after ``MAX_RENDER_SECONDS`` (checked at every loop
  iteration, operator, call and output).

Each refusal is a ``TemplateFailure`` naming the template and the limit; the
engine fails the step (or, for ``outputs``, the run) with it. The training
environments' task files (``cristal.environments.task``) render through the
same ``render``, so one sandbox serves both.
"""

from __future__ import annotations

import math
import re
import string
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cristal.actions.base import is_template

ROOT_NAMES = ("inputs", "steps", "item", "run")
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

MAX_INT_DIGITS = 300
MAX_SIZE = 1_000_000  # characters of a string or rendering, items of a list (a step's output is at most 1 MB of JSON)
MAX_LOOP_ITERATIONS = 200_000
MAX_RENDER_SECONDS = 5.0
MAX_FORMAT_WIDTH = 10_000  # "%10000d", "{:>10000}", center(10000): padding beyond this is refused
_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))
_BUDGET = "__cristal_budget__"  # the render context's budget (not a name templates can use: see ROOT_NAMES)
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_NUMBERS = re.compile(r"\d+")


class TemplateFailure(Exception):
    """A template that cannot be evaluated (the engine turns it into a step error)."""


class _Refused(SecurityError):
    """A limit of the rendering (turned into ``TemplateFailure`` with the template's text)."""


@dataclass
class _Budget:
    """What one rendering may still spend."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_RENDER_SECONDS)
    iterations: int = 0
    written: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Refused(f"rendering took longer than {MAX_RENDER_SECONDS:g}s")

    def loop(self, cost: int) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise _Refused(f"loops ran more than {MAX_LOOP_ITERATIONS:,} times")
        self.write(cost)
        self.tick()

    def write(self, chars: int) -> None:
        self.written += chars
        if self.written > MAX_SIZE:
            raise _Refused(f"the rendering would be longer than {MAX_SIZE:,} characters")


def _budget(context: Context) -> _Budget:
    found = context.get(_BUDGET)
    return found if isinstance(found, _Budget) else _Budget()


def _digits(bits: float) -> str:
    return f"about {max(1, int(bits / math.log2(10))):,} digits"


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sized(value: Any) -> bool:
    return isinstance(value, (str, list, tuple, dict, set, frozenset))


def _checked(value: Any) -> Any:
    """``value``, unless it is an integer or collection beyond the limits."""
    if _int(value) and value.bit_length() > _MAX_INT_BITS:
        raise _Refused(f"an integer with {_digits(value.bit_length())} (at most {MAX_INT_DIGITS})")
    if _sized(value) and len(value) > MAX_SIZE:
        raise _Refused(f"a {type(value).__name__} of {len(value):,} items or characters (at most {MAX_SIZE:,})")
    return value


def _check_size(what: str, size: float) -> None:
    if size > MAX_SIZE:
        raise _Refused(f"{what} would build {int(size):,} characters or items (at most {MAX_SIZE:,})")


def _check_width(what: str, width: Any) -> None:
    if _int(width) and width > MAX_FORMAT_WIDTH:
        raise _Refused(f"{what} width {width:,} (at most {MAX_FORMAT_WIDTH:,})")


def _check_printf(fmt: str) -> None:
    for match in _PRINTF_FIELD.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise _Refused("'*' widths in % formatting are not allowed")
            if number is not None:
                _check_width("% formatting", int(number))


def _check_format_string(fmt: str) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _name, spec, _conversion in fields:
        if spec and "{" in spec:
            raise _Refused("nested fields in a format specification are not allowed")
        for number in _SPEC_NUMBERS.findall(spec or ""):
            _check_width("format", int(number))


def _binop_checks(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and _int(left) and _int(right) and right > 0 and abs(left) > 1:
        bits = math.log2(abs(left)) * right
        if bits > _MAX_INT_BITS:
            raise _Refused(f"{left} ** {right} would have {_digits(bits)} (at most {MAX_INT_DIGITS})")
    elif operator == "*":
        if _int(left) and _int(right):
            bits = left.bit_length() + right.bit_length()
            if bits > _MAX_INT_BITS + 1:
                raise _Refused(f"a product with {_digits(bits)} (at most {MAX_INT_DIGITS})")
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and _int(times):
                _check_size("repeating", len(seq) * max(times, 0))
    elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _check_size("joining", len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _check_printf(left)


def _str_method_checks(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse calls of ``str`` methods whose result would be beyond the limits; returns the (materialized) args."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(name, args[0])
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _int(size):
            _check_size("expandtabs", len(owner) + owner.count("\t") * size)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = len(owner) + 1 if args[0] == "" else owner.count(args[0])
        _check_size("replace", len(owner) + hits * max(0, len(args[1]) - len(args[0])))
    elif name == "join" and args:
        items = list(args[0])
        _check_size("join", sum(len(str(i)) for i in items) + len(owner) * max(0, len(items) - 1))
        return (items, *args[1:])
    return args


class _Generator(CodeGenerator):
    """Jinja's code generator, with every loop and every ``~`` going through the rendering's budget."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before the base class collects the filters the code needs: wrap each loop's iterable.
        for loop in node.find_all(nodes.For):
            if loop.recursive:
                self.fail("recursive loops are not allowed in workflow templates", loop.lineno)
            # Each iteration also writes the body's literal text: charge it with the iteration.
            literal = sum(len(d.data) for part in loop.body for d in part.find_all(nodes.TemplateData))
            loop.iter = nodes.Filter(loop.iter, "_cristal_loop", [nodes.Const(literal)], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat(context, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


@pass_context
def _loop(context: Context, iterable: Iterable[Any], literal: int) -> Iterator[Any]:
    budget = _budget(context)
    for item in iterable:
        budget.loop(literal)
        yield item


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    # Every ``{{ ... }}`` a text template writes, inside macros and blocks too.
    budget = _budget(context)
    budget.write(len(value) if isinstance(value, str) else len(str(value)))
    budget.tick()
    return value


def _guarded_filter(name: str, original: Any) -> Any:
    """A built-in filter that checks its arguments first (for those that can build large results)."""

    def check(value: Any, *args: Any, **kwargs: Any) -> tuple[Any, tuple[Any, ...]]:
        if name == "center":
            _check_width("center", args[0] if args else kwargs.get("width", 80))
        elif name == "indent":
            width = args[0] if args else kwargs.get("width", 4)
            pad = len(width) if isinstance(width, str) else width if _int(width) else 0
            text_ = str(value)
            _check_size("indent", len(text_) + (text_.count("\n") + 1) * pad)
        elif name == "wordwrap":
            text_ = str(value)
            width = args[0] if args else kwargs.get("width", 79)
            wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
            if _int(width) and width > 0:
                _check_size("wordwrap", len(text_) + (len(text_) // width + 1) * len(str(wrap)))
        elif name == "replace" and len(args) >= 2:
            text_, old, new = str(value), str(args[0]), str(args[1])
            hits = len(text_) + 1 if old == "" else text_.count(old)
            _check_size("replace", len(text_) + hits * max(0, len(new) - len(old)))
        elif name == "format":
            _check_printf(str(value))
        elif name == "slice":
            _check_width("slice", args[0] if args else kwargs.get("slices", 1))
        elif name == "tojson":
            indent = args[0] if args else kwargs.get("indent")
            if isinstance(indent, int) and _int(indent) and indent > 16:
                raise _Refused(f"tojson indent {indent} (at most 16)")
        elif name == "join":
            items = list(value)
            sep = str(args[0] if args else kwargs.get("d", ""))
            _check_size("join", sum(len(str(i)) for i in items) + len(sep) * max(0, len(items) - 1))
            value = items
        return value, args

    def guarded(*call_args: Any, **kwargs: Any) -> Any:
        # Filters marked pass_context/pass_eval_context/pass_environment get that object first.
        lead = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0
        head, (value, *rest) = call_args[:lead], call_args[lead:]
        value, args = check(value, *rest, **kwargs)
        return _checked(original(*head, value, *args, **kwargs))

    guarded.jinja_pass_arg = getattr(original, "jinja_pass_arg", None)  # type: ignore[attr-defined]  # jinja reads its marker attributes off the wrapper
    guarded.__name__ = getattr(original, "__name__", name)
    return guarded


_GUARDED_FILTERS = ("center", "indent", "wordwrap", "replace", "format", "slice", "tojson", "join")


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the limits above."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
        for name in _GUARDED_FILTERS:
            self.filters[name] = _guarded_filter(name, self.filters[name])
        self.filters["_cristal_loop"] = _loop
        self.globals.pop("lipsum", None)  # lipsum(n=10**6): text on demand, and nothing a workflow needs

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget(context).tick()
        _binop_checks(operator, left, right)
        return _checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _budget(context).tick()
        args = _str_method_checks(obj, args, kwargs)
        return _checked(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped

    # Not Jinja2's concat: the code generator above emits ``environment.concat(context, (...))`` so that output is counted.
    def concat(self, context: Context, parts: tuple[Any, ...]) -> str:  # type: ignore[override]  # see the comment above
        budget = _budget(context)
        budget.tick()
        texts = [p if isinstance(p, str) else str(p) for p in parts]
        _check_size("~", sum(len(t) for t in texts))
        return "".join(texts)


ENV = _Environment()


def _single_expression(text: str) -> str | None:
    match = _SINGLE.match(text)
    if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
        return match.group("expr")
    return None


def parse(text: str) -> nodes.Template:
    """The template's syntax tree (``TemplateSyntaxError`` when malformed or using what rendering refuses)."""
    expr = _single_expression(text)
    tree = ENV.parse("{{ " + expr + " }}") if expr is not None else ENV.parse(text)
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise TemplateSyntaxError("recursive loops are not allowed in workflow templates", loop.lineno)
    return tree


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
        assert isinstance(parent, (nodes.Getattr, nodes.Getitem))  # what find_all was asked for (typed as Node)
        parents[id(parent.node)] = parent
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(access, (nodes.Getattr, nodes.Getitem))
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


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 200 else text[:200] + "…")


def _render_one(text: str, context: dict[str, Any]) -> Any:
    kind, compiled = _compiled(text)
    if kind == "expr":
        result = compiled(**context)
        if isinstance(result, StrictUndefined):
            str(result)  # raises UndefinedError with the name
        return _checked(result)
    budget: _Budget = context[_BUDGET]
    parts: list[str] = []
    for chunk in compiled.generate(**context):  # literal text is counted here, {{ ... }} in _finalize
        budget.write(len(chunk))
        budget.tick()
        parts.append(chunk)
    return "".join(parts)


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if not is_template(value):
        return value
    try:
        return _render_one(value, context)
    except UndefinedError as exc:
        raise TemplateFailure(f"template {_shown(value)}: {exc.message}") from None
    except _Refused as exc:
        raise TemplateFailure(f"template {_shown(value)} refused: {exc}") from None
    except SecurityError as exc:
        raise TemplateFailure(f"template {_shown(value)} is not allowed: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"template {_shown(value)}: {exc}") from None
    except RecursionError:
        raise TemplateFailure(f"template {_shown(value)} refused: it nests too deeply (a macro calling itself?)") from None
    except MemoryError:
        raise TemplateFailure(f"template {_shown(value)} refused: out of memory") from None
    except (TypeError, ValueError, ZeroDivisionError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        raise TemplateFailure(f"template {_shown(value)}: {type(exc).__name__}: {exc}") from None


def render(value: Any, context: dict[str, Any]) -> Any:
    """``value`` with every template evaluated against ``context`` (nested dicts and lists too).

    All templates inside ``value`` share one budget (time, loop iterations, characters written).
    """
    return _render(value, {**context, _BUDGET: _Budget()})


__all__ = ["ROOT_NAMES", "TemplateFailure", "TemplateSyntaxError", "is_template", "parse", "references", "render", "strings"]
