"""The layers hold and nothing in src/ imports itself in a circle.

The contracts are the ``[tool.importlinter]`` section of pyproject.toml (drawn in docs/architecture.md); this runs
them as ``lint-imports`` does. The second check is stricter than the contracts' cycle check, which compares the
children of one package: it follows every import between any two modules, a package's ``__init__`` included.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def checks_this_tree() -> None:
    """Both checks find ``cristal`` on the import path: it has to be this checkout's, not another one installed."""
    spec = importlib.util.find_spec("cristal")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().is_relative_to(ROOT / "src"), f"cristal is imported from {spec.origin}"


def test_the_import_contracts_are_kept(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # lint_imports puts the working directory first on sys.path
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert status == 0, capsys.readouterr().out


def ignored_cycle_imports() -> list[tuple[str, str]]:
    """The imports the cycle contract ignores for now (each one names a known cycle being taken apart)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (acyclic,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "acyclic_siblings"]
    pairs = [line.split("->") for line in acyclic.get("ignore_imports", [])]
    return [(importer.strip(), imported.strip()) for importer, imported in pairs]


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One circle of imports for each group of modules that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        # Iterative depth-first search: the graph is deeper than Python's recursion limit would like.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[module] = min(low[module], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    cycles = []
    for group in sorted(groups):
        first = group[0]
        back = next(m for m in sorted(graph.find_modules_directly_imported_by(first)) if m in group)
        chain = graph.find_shortest_chain(importer=back, imported=first)
        assert chain is not None
        cycles.append([first, *chain])
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("cristal", cache_dir=None, exclude_type_checking_imports=True)
    for importer, imported in ignored_cycle_imports():
        if graph.direct_import_exists(importer=importer, imported=imported):
            graph.remove_import(importer=importer, imported=imported)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_a_cycle_through_a_package_init_is_found() -> None:
    """What the contracts' sibling check misses: a package whose ``__init__`` imports a module that imports it back."""
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "other"):
        graph.add_module(module)
    graph.add_import(importer="pkg", imported="pkg.a")
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg")
    graph.add_import(importer="other", imported="pkg")
    assert import_cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg"]]
