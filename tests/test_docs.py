"""The documentation keeps up with the code.

These tests fail when something a user can reach is not documented:

* a command or subcommand of ``cristal`` (or one of its options or arguments)
  without its section in ``docs/cli.md``;
* a ``CRISTAL_*`` setting without its section in ``docs/configuration.md``,
  whether it is a ``Settings`` field or a ``CRISTAL_...`` name written anywhere
  in ``src/`` or ``benchmarks/`` (some are still read from the environment directly);
* a workflow step kind (or one of its fields) without its section in
  ``docs/workflows.md``;
* a relative link in ``README.md`` or ``docs/*.md`` to a file that is not
  committed, or to a heading that does not exist; a path in backquotes that
  names a file that is neither committed nor generated (ignored by git).

A section is a Markdown heading whose text, without backquotes, is the name
(``### cristal workflow run``, ``### CRISTAL_HOME``, ``### sql``); what belongs
to it runs to the next heading of the same or a higher level.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src"

# A link to a file that another change is adding is allowed in a paragraph that says so with
# ``<!-- pending: TOPIC -->``; the integrator removes the marker when the file lands. Links
# into git-ignored (generated) folders are never allowed, pending or not.
PENDING = re.compile(r"<!--\s*pending:")


# ---------------------------------------------------------------------------
# Markdown: headings, sections, links


@dataclass(frozen=True)
class Section:
    title: str  # heading text without backquotes
    level: int
    body: str  # from the heading to the next heading of the same or a higher level


_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _lines_outside_fences(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a fenced code block)."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            yield number, line, True
            continue
        yield number, line, fenced


_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d+\.\s|\|)")  # a list item or a table row starts its own block


def _paragraphs(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, whether its paragraph, list item or table row says ``<!-- pending: ... -->``)."""
    block: list[tuple[int, str]] = []

    def flush() -> Iterator[tuple[int, str, bool]]:
        pending = any(PENDING.search(line) for _n, line in block)
        for number, line in block:
            yield number, line, pending
        block.clear()

    for number, line, fenced in _lines_outside_fences(text):
        if fenced or not line.strip() or _HEADING.match(line):
            yield from flush()
            if not fenced and _HEADING.match(line):
                block.append((number, line))
                yield from flush()
            continue
        if _BLOCK_START.match(line):
            yield from flush()
        block.append((number, line))
    yield from flush()


def sections(text: str) -> list[Section]:
    lines = text.splitlines()
    heads = [(n - 1, len(m.group(1)), m.group(2).replace("`", "").strip())
             for n, line, fenced in _lines_outside_fences(text) if not fenced and (m := _HEADING.match(line))]
    out = []
    for i, (start, level, title) in enumerate(heads):
        end = next((s for s, lv, _t in heads[i + 1:] if lv <= level), len(lines))
        out.append(Section(title, level, "\n".join(lines[start:end])))
    return out


@cache
def doc_sections(name: str) -> dict[str, Section]:
    path = DOCS / name
    assert path.exists(), f"docs/{name} is missing"
    found: dict[str, Section] = {}
    for section in sections(path.read_text(encoding="utf-8")):
        found.setdefault(section.title, section)
    return found


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = title.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _n, line, fenced in _lines_outside_fences(path.read_text(encoding="utf-8")):
        if fenced or not (m := _HEADING.match(line)):
            continue
        slug = github_slug(m.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# ---------------------------------------------------------------------------
# What the code offers. Each source is one small function, so that when the
# action registry replaces ``spec.KINDS`` only ``action_kinds`` changes.


def cli_commands() -> dict[str, tuple[list[str], list[str]]]:
    """``"cristal workflow run"`` -> (option names, argument names) for every command and group."""
    import typer

    from cristal.cli import app as cli

    register = getattr(cli, "_register", None)  # today each module adds itself to ``app`` when imported
    if register is not None:
        register()
    root = typer.main.get_command(cli.app)
    found: dict[str, tuple[list[str], list[str]]] = {}

    def walk(command, path: str) -> None:  # type: ignore[no-untyped-def]  # an untyped test helper; mypy checks src/ only
        options, arguments = [], []
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            if type(param).__name__.endswith("Argument"):  # Typer vendors Click: recognise by shape
                arguments.append(param.name.upper())
            else:
                options.append(max(param.opts, key=len))
        found[path] = (options, arguments)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, f"{path} {name}")

    walk(root, "cristal")
    return found


def settings_fields() -> dict[str, tuple[list[str], str]]:
    """Settings field -> (its environment variable names, its ``config.toml`` key)."""
    from pydantic import AliasChoices

    from cristal.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    found = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            envs = [a for a in alias.choices if isinstance(a, str) and a.isupper()]
        elif isinstance(alias, str):
            envs = [alias.upper()]
        else:
            envs = [f"{prefix}{name}".upper()]
        found[name] = (envs, name)
    return found


_ENV_LITERAL = re.compile(r"CRISTAL_[A-Z0-9_]+")


def env_names_in_source() -> set[str]:
    """Every ``CRISTAL_...`` name written in ``src/`` and ``benchmarks/`` (code, messages, docstrings) or the Makefile."""
    names: set[str] = set()
    for path in [*SRC.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), ROOT / "Makefile"]:
        names.update(_ENV_LITERAL.findall(path.read_text(encoding="utf-8")))
    return names


def action_kinds() -> dict[str, type]:
    """Action kind -> the pydantic model of its spec (the fields a workflow file may give it), from the registry."""
    from cristal.actions import build_registry

    return {action.name: action.spec for action in build_registry()}


@cache
def tracked_files() -> frozenset[str] | None:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return frozenset(p for p in listed.decode("utf-8").split("\0") if p)


def is_tracked(relative: str) -> bool:
    files = tracked_files()
    assert files is not None
    relative = relative.rstrip("/")
    return relative in files or any(f.startswith(relative + "/") for f in files)


def is_ignored(relative: str) -> bool:
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", relative], cwd=ROOT)
    return result.returncode == 0


needs_git = pytest.mark.skipif(tracked_files() is None, reason="not a git checkout")


# ---------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("path", sorted(cli_commands()))
def test_cli_command_is_documented(path: str) -> None:
    section = doc_sections("cli.md").get(path)
    assert section is not None, f"`{path}` has no section (a heading `{path}`) in docs/cli.md"
    options, arguments = cli_commands()[path]
    missing = [o for o in options if not re.search(re.escape(o) + r"(?![\w-])", section.body)]
    missing += [a for a in arguments if not re.search(r"\b" + re.escape(a) + r"\b", section.body)]
    assert not missing, f"docs/cli.md, section `{path}`: not documented: {', '.join(missing)}"


@pytest.mark.parametrize("field", sorted(settings_fields()))
def test_setting_is_documented(field: str) -> None:
    envs, key = settings_fields()[field]
    documented = doc_sections("configuration.md")
    for env in envs:
        if not env.startswith("CRISTAL_"):
            continue  # OPENAI_API_KEY and the like are documented with the CRISTAL_ name they stand in for
        section = documented.get(env)
        assert section is not None, f"setting {field}: no section `{env}` in docs/configuration.md"
        assert f"`{key}`" in section.body, f"docs/configuration.md, section `{env}`: the config.toml key `{key}` is not named"


def _env_families() -> list[tuple[str, re.Pattern[str]]]:
    """Documented names, with ``<PLACEHOLDER>`` parts (``CRISTAL_SECRET_<ORG>_<NAME>``) as patterns."""
    out = []
    for title in doc_sections("configuration.md"):
        if title.startswith("CRISTAL_"):
            pattern = re.sub(r"<[A-Z_]+>", "[A-Z0-9_]+", re.escape(title).replace(r"\<", "<").replace(r"\>", ">"))
            out.append((title, re.compile(pattern + r"\Z")))
    return out


@pytest.mark.parametrize("name", sorted(env_names_in_source()))
def test_environment_variable_in_source_is_documented(name: str) -> None:
    families = _env_families()
    if any(pattern.match(name) for _t, pattern in families):
        return
    prefix = name if name.endswith("_") else name + "_"
    if any(title.startswith(prefix) for title, _p in families):
        return  # a prefix named in the code (CRISTAL_ORG_KEY_, CRISTAL_LLM_*): its members are documented
    pytest.fail(f"{name} is used in src/ or benchmarks/ but has no section `{name}` in docs/configuration.md")


@pytest.mark.parametrize("kind", sorted(action_kinds()))
def test_step_kind_is_documented(kind: str) -> None:
    section = doc_sections("workflows.md").get(kind)
    assert section is not None, f"step kind {kind!r} has no section (a heading `{kind}`) in docs/workflows.md"
    model = action_kinds()[kind]
    fields = [f.alias or name for name, f in model.model_fields.items()]
    missing = [f for f in fields if f"`{f}`" not in section.body]
    assert not missing, f"docs/workflows.md, section `{kind}`: fields not documented: {', '.join(missing)}"


@pytest.mark.parametrize("kind", sorted(action_kinds()))
def test_architecture_says_where_each_action_kind_lives(kind: str) -> None:
    from cristal.actions import build_registry

    module = build_registry()[kind].owner
    path = "src/" + module.replace(".", "/") + ".py"
    body = doc_sections("architecture.md")["Action kinds"].body
    row = next((line for line in body.splitlines() if line.startswith(f"| `{kind}` |")), None)
    assert row is not None, f"docs/architecture.md, section Action kinds: no table row for `{kind}`"
    assert f"`{path}`" in row, f"docs/architecture.md, section Action kinds: `{kind}` lives in `{path}`, the row says {row!r}"


def test_common_step_fields_are_documented() -> None:
    from cristal.workflows.spec import COMMON

    body = doc_sections("workflows.md")["Steps"].body
    missing = [f for f in COMMON if f"`{f}`" not in body]
    assert not missing, f"docs/workflows.md, section Steps: not documented: {', '.join(missing)}"


_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_CODE_PATH = re.compile(r"`((?:src|tests|benchmarks|scripts|docs)/[A-Za-z0-9_./-]*)`")


def links(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, target, pending) of every link and image, outside code blocks and code spans."""
    for number, line, pending in _paragraphs(path.read_text(encoding="utf-8")):
        plain = re.sub(r"`[^`]*`", "", line)
        for pattern in (_LINK, _IMAGE, _REFERENCE):
            for match in pattern.finditer(plain):
                yield number, match.group(1), pending


@needs_git
@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_committed_files(path: Path) -> None:
    problems = []
    for number, target, pending in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        try:
            relative = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            problems.append(f"{where}: points outside the repository")
            continue
        if is_ignored(relative):
            problems.append(f"{where}: points at {relative}, which git ignores (generated, never committed)")
            continue
        if not is_tracked(relative):
            if not pending:
                problems.append(f"{where}: {relative} is not committed")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{where}: no heading #{fragment} in {relative}")
    assert not problems, "\n".join(problems)


@needs_git
@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_in_backquotes_exist(path: Path) -> None:
    problems = []
    for number, line, pending in _paragraphs(path.read_text(encoding="utf-8")):
        for match in _CODE_PATH.finditer(line):
            relative = match.group(1)
            if not (is_tracked(relative) or is_ignored(relative) or pending):
                problems.append(f"{path.relative_to(ROOT)}:{number}: `{relative}` is neither committed nor generated")
    assert not problems, "\n".join(problems)


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = {target.partition("#")[0] for _n, target, _p in links(DOCS / "index.md")}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "index.md" and p.name not in listed]
    assert index and not missing, f"docs/index.md does not link to: {', '.join(missing)}"


def test_readme_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    demo, test = readme.find("make demo"), readme.find("make test")
    assert 0 <= demo < test, "README.md must show `make demo` first, then `make test`"
    assert "docs/index.md" in readme, "README.md must link into docs/"
