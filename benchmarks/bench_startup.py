"""Command-line start-up: ``cristal --help`` and ``cristal search``, this tree next to a baseline commit.

    .venv/bin/python benchmarks/bench_startup.py [--runs 7] [--baseline COMMIT | --no-baseline]

Each figure is the median wall time of N fresh ``python -m cristal`` processes
(after one unmeasured run that writes the bytecode caches), with
``PYTHONPATH`` pointing at the tree's ``src``. The baseline (by default
f606038, the last commit before the CLI loaded its layers lazily) is checked
out with ``git worktree add`` into a temporary folder and removed afterwards;
without git history it is skipped with a note. Each tree gets its own
workspace, set up by its own CLI: a folder of 40 short documents, synced with
embeddings, searched as a member in keyword and in hybrid mode.

Figures are printed and written to ``benchmarks/results/startup.json``.
Timings are only comparable on an otherwise idle machine; the load average
is reported with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import checked_out  # benchmarks/baseline.py: run as a script, this folder is on sys.path
from output import results_path, write_json

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "f606038de03fa9fcb5c7061fcefb6cc2aa377874"
HEAVY = ("openai", "playwright", "numpy", "dbos", "fastapi", "sqlalchemy")
QUERY = "hotel limit Munich"
TOPICS = ("travel", "expenses", "hotel", "payroll", "laptops", "onboarding", "security", "vendors")
# "import time: SELF | CUMULATIVE | NAME", NAME indented by nesting; one space marks a top-level import.
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|( +)([\w.]+)\s*$", re.MULTILINE)


def _env(src: Path, home: Path) -> dict[str, str]:
    """The caller's environment without Cristal or OpenAI settings, pointed at ``src`` and a private workspace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRISTAL_", "OPENAI_"))}
    return {**env, "PYTHONPATH": str(src), "CRISTAL_HOME": str(home)}


def _cristal(env: dict[str, str], *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    proc = subprocess.run([sys.executable, *flags, "-m", "cristal", *args], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"`cristal {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc


def _workspace(env: dict[str, str], docs: Path) -> None:
    _cristal(env, "init")
    _cristal(env, "org", "create", "acme")
    _cristal(env, "user", "add", "eng@acme.example", "--org", "acme", "--group", "engineering")
    _cristal(env, "source", "add", "wiki", "--org", "acme", "--kind", "files", "--uri", str(docs), "--acl", "org")
    _cristal(env, "sync", "--org", "acme")


def _documents(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"{topic}-{i:02d}.md").write_text(
            f"# {topic.title()} note {i}\n\nThe {topic} policy, revision {i}: the hotel limit in Munich is {150 + i} EUR "
            f"a night, claims are filed within {10 + i % 20} days, and {topic} questions go to the office team.\n",
            encoding="utf-8",
        )
    return folder


def _timed(env: dict[str, str], args: tuple[str, ...]) -> float:
    start = time.perf_counter()
    _cristal(env, *args)
    return time.perf_counter() - start


def _imports(env: dict[str, str], args: tuple[str, ...]) -> dict[str, object]:
    """What ``python -X importtime`` reports: the heavy packages imported and the total import time."""
    found = _IMPORTED.findall(_cristal(env, *args, importtime=True).stderr)
    heavy = sorted({name.split(".")[0] for _, _, name in found}.intersection(HEAVY))
    return {"imports": heavy, "import_ms": round(sum(int(us) for us, indent, _ in found if len(indent) == 1) / 1000, 1)}


COMMANDS = {
    "cristal --help": ("--help",),
    "cristal search --mode keyword": ("search", QUERY, "--org", "acme", "--as", "eng@acme.example", "--mode", "keyword"),
    "cristal search (hybrid)": ("search", QUERY, "--org", "acme", "--as", "eng@acme.example"),
}


def measure(envs: dict[str, dict[str, str]], runs: int) -> dict[str, dict[str, dict[str, object]]]:
    """Per tree and command: median and fastest of ``runs`` processes, plus what they import.

    The trees take turns run by run, so a change in the machine's load falls on all of them alike.
    """
    trees: dict[str, dict[str, dict[str, object]]] = {tree: {} for tree in envs}
    for command, args in COMMANDS.items():
        times: dict[str, list[float]] = {tree: [] for tree in envs}
        for env in envs.values():
            _cristal(env, *args)  # writes the tree's bytecode caches and loads the OS file cache; not measured
        for _ in range(runs):
            for tree, env in envs.items():
                times[tree].append(_timed(env, args))
        for tree, env in envs.items():
            trees[tree][command] = {"median_s": round(statistics.median(times[tree]), 3), "min_s": round(min(times[tree]), 3),
                                    **_imports(env, args)}
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per command (the median is reported)")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    load_start = os.getloadavg()
    results: dict[str, object] = {"runs": args.runs, "cores": os.cpu_count(), "python": platform.python_version(),
                                  "query": QUERY, "load average at start": " ".join(f"{x:.2f}" for x in load_start)}
    with tempfile.TemporaryDirectory(prefix="cristal-bench-startup-") as tmp:
        work = Path(tmp)
        docs = _documents(work / "docs")
        envs = {"this tree": _env(ROOT / "src", work / "current")}
        with checked_out(None if args.no_baseline else args.baseline, work / "baseline-src") as checkout:
            if checkout is not None:
                envs[f"baseline {args.baseline[:7]}"] = _env(checkout / "src", work / "baseline")
            for env in envs.values():
                _workspace(env, docs)  # each tree's own CLI sets up its own workspace
            trees = measure(envs, args.runs)
    results["trees"] = trees
    results["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    names = list(trees)
    width = max(len(c) for c in COMMANDS) + 2
    print(f"{'median of ' + str(args.runs) + ' runs (s)':<{width}}" + "".join(f"{n:>22}" for n in names))
    for command in COMMANDS:
        print(f"{command:<{width}}" + "".join(f"{trees[n][command]['median_s']:>22.3f}" for n in names))
    print(f"{'imports (-X importtime, ms)':<{width}}" + "".join(f"{trees[n]['cristal --help']['import_ms']:>22.1f}" for n in names)
          + "   (cristal --help)")
    for n in names:
        for command in COMMANDS:
            heavy = trees[n][command]["imports"]  # a list of names, from _imports
            print(f"{n}: `{command}` imports {', '.join(heavy) if heavy else 'none of ' + ', '.join(HEAVY)}")
    print(f"load average at start {results['load average at start']}, at end {results['load average at end']} "
          "(timings are only comparable on an otherwise idle machine)")
    print(f"wrote {write_json(results_path('startup.json'), results)}")


if __name__ == "__main__":
    main()
