"""Operator overhead per step (model excluded) and replay speed, in a real headless Chromium.

    python benchmarks/bench_operator.py            # ~1 minute
    python benchmarks/bench_operator.py --quick    # fewer repetitions
    python benchmarks/bench_operator.py --out results.json

Measures, on the loopback test site (tests/operator/site.py), the sample web apps and a synthetic large page:

- observation: the one-pass distillation, inside the page (``distil``) and including the round trip (``total``),
  p50/p95 in ms, with the page's element count and text size;
- actions: each tool's time from the call to the settled, re-observed page (fill, select_option, click
  without and with navigation, scroll, goto), p50/p95 in ms;
- replay: a recorded 10-step run (log in, file a claim) replayed with no model, against the original run's
  wall time (whose model is a ScriptedModel answering in ~1 ms, so the difference is the loop's own
  overhead: gateway metering, audit, history; with a real model add its latency per step);
- side by side, on the same sample web-app pages and the same Chromium: Cristal's observation and actions,
  Playwright's own accessibility snapshot (``page.aria_snapshot(mode="ai")``, what Playwright MCP shows a
  model) and browser-use (its DOM/state extraction, ``get_browser_state_summary``, and its action events),
  with no model involved.

browser-use pins its own dependencies, so it runs in a separate virtualenv (``--browser-use-venv``,
default ``$CRISTAL_BENCH_BROWSER_USE_VENV`` or ``/tmp/bu-venv``), created with ``pip install browser-use``
at the version below when missing (PyPI must be reachable the first time); ``--no-browser-use`` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from output import write_json  # noqa: E402  (benchmarks/output.py: the script's folder is on sys.path)

from cristal.config import Settings  # noqa: E402
from cristal.db import Database  # noqa: E402
from cristal.db.schema import LLMUsage  # noqa: E402
from cristal.identity import orgs, users  # noqa: E402
from cristal.identity.directory import resolve_principal  # noqa: E402
from cristal.identity.principal import Principal  # noqa: E402
from cristal.models import Gateway  # noqa: E402
from cristal.operator import AllowList, BrowserSession, RunConfig, Secrets, chromium, replay_trajectory, run_operator  # noqa: E402
from cristal.testing.scripted_model import ScriptedModel, tool_call  # noqa: E402
from tests.operator.scripts import act, login_steps, new_claim_steps  # noqa: E402
from tests.operator.site import PASSWORD, USER, Site, SiteServer  # noqa: E402

INSTALLATION = Principal.installation("bench")
BROWSER_USE_VERSION = "0.13.14"
WEBAPP_PAGES = ("/expenses/", "/expenses/new", "/customers/")
WEBAPP_USER = "lukas.weber@aozora-de.example"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[k], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95), "mean": round(statistics.fmean(values), 2) if values else 0.0}


def big_page(rows: int) -> str:
    body = "".join(f"<tr><td>Item {i}</td><td>{i * 3.5:.2f}</td><td><input name=q{i} aria-label='Quantity {i}'></td>"
                   f"<td><button>Edit</button> <a href='/item/{i}'>Open {i}</a></td></tr>" for i in range(rows))
    return f"<!doctype html><title>Big</title><h1>Inventory</h1><table>{body}</table>"


def observe_page(s: BrowserSession, reps: int) -> dict:
    """Distil the current page ``reps`` times: sizes and timings."""
    distil, total = [], []
    for _ in range(reps):
        o = s.observe()
        distil.append(o.distil_ms)
        total.append(o.total_ms)
    return {"elements": len(o.elements), "text_chars": len(o.text), "distil_ms": summary(distil), "total_ms": summary(total)}


def bench_observe(browser, site: SiteServer, reps: int) -> dict:  # type: ignore[no-untyped-def]
    results = {}
    with BrowserSession(browser, AllowList.build([], site.url()), Secrets({"PASSWORD": PASSWORD})) as s:
        obs = s.open(site.url("/login"))
        ids = {e["name"]: e for e in obs.elements}
        s.act("fill", {"text": USER}, ids["E-mail"])
        s.act("fill", {"text": "{{PASSWORD}}"}, s.last.by_key(ids["Password"]["key"]))
        s.act("click", {}, s.last.by_key(ids["Log in"]["key"]))
        for path in ("/login", "/expenses", "/expenses/new", "/widgets"):
            s.act("goto", {"url": path})
            results[path] = observe_page(s, reps)
        for rows in (100, 400):
            s.page.set_content(big_page(rows))
            distil, total = [], []
            for _ in range(max(3, reps // 3)):
                o = s.observe()
                distil.append(o.distil_ms)
                total.append(o.total_ms)
            results[f"synthetic {rows} rows"] = {"elements": len(o.elements) + o.truncated_elements, "listed": len(o.elements),
                                                 "text_chars": len(o.text), "distil_ms": summary(distil), "total_ms": summary(total)}
    return results


def bench_actions(browser, site: SiteServer, reps: int) -> dict:  # type: ignore[no-untyped-def]
    times: dict[str, list[float]] = {k: [] for k in ("fill", "select_option", "click (no navigation)", "click (form post + redirect)", "scroll", "goto")}
    with BrowserSession(browser, AllowList.build([], site.url()), Secrets({"PASSWORD": PASSWORD})) as s:
        obs = s.open(site.url("/login"))
        ids = {e["name"]: e for e in obs.elements}
        s.act("fill", {"text": USER}, ids["E-mail"])
        s.act("fill", {"text": "{{PASSWORD}}"}, s.last.by_key(ids["Password"]["key"]))
        s.act("click", {}, s.last.by_key(ids["Log in"]["key"]))
        for i in range(reps):
            s.act("goto", {"url": "/expenses/new"})
            times["goto"].append(s.act("goto", {"url": "/expenses/new"}).ms)
            el = {e["name"]: e for e in s.last.elements}
            times["fill"].append(s.act("fill", {"text": f"Item {i}"}, el["Description"]).ms)
            times["fill"].append(s.act("fill", {"text": "12.50"}, s.last.by_key(el["Amount (EUR)"]["key"])).ms)
            times["select_option"].append(s.act("select_option", {"value": "Meals"}, s.last.by_key(el["Category"]["key"])).ms)
            times["click (no navigation)"].append(s.act("click", {}, s.last.by_key(el["Receipt attached"]["key"])).ms)
            times["scroll"].append(s.act("scroll", {"direction": "down"}).ms)
            times["click (form post + redirect)"].append(s.act("click", {}, s.last.by_key(el["Save draft"]["key"])).ms)
    return {k: summary(v) for k, v in times.items()}


def bench_replay(browser, site: SiteServer, db: Database, principal: Principal, reps: int, tmp: Path) -> dict:  # type: ignore[no-untyped-def]
    originals, replays, steps, calls, tokens = [], [], 0, [], []
    for i in range(reps):
        site.site.claims = Site().claims
        record = tmp / f"run{i}.json"
        script = [*login_steps(), *new_claim_steps(), act("click", 'button "Save draft"'), tool_call("done", {"result": "ok"})]
        config = RunConfig(task="File a claim", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}), record=record,
                           allow_writes=(site.url("/").split("/")[2],))  # saving the draft posts a form
        with ScriptedModel(script) as model, Gateway(Settings(llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted"), db) as gw:
            started = time.perf_counter()
            result = run_operator(db, principal, config, gateway=gw, browser=browser)
            originals.append(time.perf_counter() - started)
        assert result.status == "done", result.reason
        with db.session() as session:  # what the original run cost in model traffic; a replay costs none
            n, t_in, t_out = session.execute(
                select(func.count(), func.coalesce(func.sum(LLMUsage.tokens_in), 0), func.coalesce(func.sum(LLMUsage.tokens_out), 0))
                .where(LLMUsage.request_id == result.run_id)).one()
        calls.append(n)
        tokens.append(t_in + t_out)
        site.site.claims = Site().claims
        trajectory = json.loads(record.read_text())
        started = time.perf_counter()
        rep = replay_trajectory(db, principal, trajectory, secrets=Secrets({"PASSWORD": PASSWORD}), browser=browser)
        replays.append(time.perf_counter() - started)
        assert rep.status == "complete", rep.reason
        steps = rep.total
    return {"steps": steps, "original_run_s": summary(originals), "replay_s": summary(replays),
            "replay_speedup_vs_scripted_model_run": round(statistics.median(originals) / statistics.median(replays), 2),
            "replay_ms_per_step": round(1000 * statistics.median(replays) / max(1, steps), 1),
            # The scripted model answers in about a millisecond, so the time saved above is only Cristal's own work;
            # with a real model every one of these calls also costs its latency and its tokens, and a replay makes none.
            "original_model_calls": int(statistics.median(calls)), "original_tokens_scripted_count": int(statistics.median(tokens)),
            "replay_model_calls": 0}


def _times(fn, reps: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def bench_webapps(browser, base_url: str, reps: int) -> dict:  # type: ignore[no-untyped-def]
    """Cristal's observation and actions, and Playwright's aria snapshot, on the sample apps' pages."""
    out: dict = {"observation": {}, "aria_snapshot": {}, "actions_ms": {}}
    with BrowserSession(browser, AllowList.build([], base_url)) as s:
        obs = s.open(base_url + "/expenses/")
        s.act("fill", {"text": WEBAPP_USER}, next(e for e in obs.elements if e["role"] == "textbox"))
        s.act("click", {}, next(e for e in s.last.elements if e["name"] == "Sign in"))
        for path in WEBAPP_PAGES:
            s.act("goto", {"url": path})
            out["observation"][path] = observe_page(s, reps)
            snapshot = s.page.aria_snapshot(mode="ai")
            out["aria_snapshot"][path] = {"text_chars": len(snapshot), "refs": snapshot.count("[ref="),
                                          "total_ms": summary(_times(lambda: s.page.aria_snapshot(mode="ai"), reps))}
        times: dict[str, list[float]] = {k: [] for k in ("goto", "fill", "select_option", "click (form post + redirect)", "scroll")}
        for i in range(max(3, reps // 2)):  # the same form, the same steps as the browser-use run below
            times["goto"].append(s.act("goto", {"url": "/expenses/new"}).ms)
            el = {e["name"]: e for e in s.last.elements}
            times["fill"].append(s.act("fill", {"text": f"2025-10-0{1 + i % 9}"}, el["Date"]).ms)
            times["select_option"].append(s.act("select_option", {"value": "Travel"}, s.last.by_key(el["Category"]["key"])).ms)
            times["fill"].append(s.act("fill", {"text": "12.50"}, s.last.by_key(el["Amount"]["key"])).ms)
            times["fill"].append(s.act("fill", {"text": f"Bench item {i}"}, s.last.by_key(el["Description"]["key"])).ms)
            times["scroll"].append(s.act("scroll", {"direction": "down"}).ms)
            times["click (form post + redirect)"].append(s.act("click", {}, s.last.by_key(el["Save draft"]["key"])).ms)
        out["actions_ms"] = {k: summary(v) for k, v in times.items()}
    return out


def browser_use_python(venv: Path) -> Path:
    """browser-use's own virtualenv (never the project's: its pins clash), created on first use."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import importlib.metadata as m; assert m.version('browser-use') == '{BROWSER_USE_VERSION}'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing browser-use {BROWSER_USE_VERSION} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"browser-use=={BROWSER_USE_VERSION}"], check=True)
    return python


def bench_browser_use(venv: Path, base_url: str, chromium_path: str, reps: int, tmp: Path) -> dict:
    """browser-use measured in its own process, against the same apps and the same Chromium."""
    try:
        python = browser_use_python(venv)
    except (subprocess.CalledProcessError, OSError) as exc:
        return {"error": f"browser-use could not be installed into {venv}: {exc}"}
    script = tmp / "browser_use_child.py"
    script.write_text(BROWSER_USE_CHILD)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "false", "BROWSER_USE_CLOUD_SYNC": "false"}
    proc = subprocess.run([str(python), str(script), base_url, WEBAPP_USER, chromium_path, str(reps)], capture_output=True,
                          text=True, env=env, timeout=900)
    if proc.returncode != 0:
        return {"error": "browser-use failed: " + (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "version": raw["version"],
        "state": {p: {"elements": v["elements"], "text_chars": v["text_chars"], "total_ms": summary(v["times"])}
                  for p, v in raw["state_ms"].items()},
        "actions_ms": {k: summary(v) for k, v in raw["actions_ms"].items()},
        "action_plus_state_ms": {k: summary(v) for k, v in raw["action_plus_state_ms"].items()},
    }


def side_by_side(cristal: dict, alt: dict) -> str:
    """A plain table: p50/p95 in ms per page (observation) and per action, for each tool."""
    bu = alt if "error" not in alt else None
    lines = ["", "Per step on the sample web apps, same Chromium, no model (p50 / p95 ms; (n) = elements or refs listed):",
             f"{'observation':<32}{'Cristal observe':>22}{'Playwright aria (ai)':>24}{'browser-use state':>24}"]
    for path in WEBAPP_PAGES:
        c, a = cristal["observation"][path], cristal["aria_snapshot"][path]
        b = bu["state"].get(path) if bu else None
        cell_b = f"{b['total_ms']['p50']:.1f} / {b['total_ms']['p95']:.1f} ({b['elements']})" if b else "n/a"
        lines.append(f"{path:<32}{c['total_ms']['p50']:>9.1f} / {c['total_ms']['p95']:.1f} ({c['elements']}){'':>1}"
                     f"{a['total_ms']['p50']:>12.1f} / {a['total_ms']['p95']:.1f} ({a['refs']}){'':>1}{cell_b:>22}")
    lines.append(f"{'action (settled + re-observed)':<32}{'Cristal act()':>22}{'':>24}{'browser-use event + state':>27}")
    for kind, c in cristal["actions_ms"].items():
        b = bu["action_plus_state_ms"].get(kind) if bu else None
        bare = bu["actions_ms"].get(kind) if bu else None
        cell_b = f"{b['p50']:.1f} / {b['p95']:.1f} (event alone {bare['p50']:.1f})" if b and bare else "n/a"
        lines.append(f"{kind:<32}{c['p50']:>13.1f} / {c['p95']:.1f}{'':>24}{cell_b:>34}")
    if not bu:
        lines.append(f"browser-use: {alt['error']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--browser-use-venv", type=Path,
                        default=Path(os.environ.get("CRISTAL_BENCH_BROWSER_USE_VENV", "/tmp/bu-venv")))
    parser.add_argument("--no-browser-use", action="store_true", help="Skip the browser-use comparison.")
    args = parser.parse_args()
    reps = 8 if args.quick else 30
    with tempfile.TemporaryDirectory() as tmpdir, SiteServer() as site, chromium() as browser:
        tmp = Path(tmpdir)
        db = Database(f"sqlite:///{tmp / 'c.db'}")
        db.upgrade()
        with db.session() as s:
            orgs.create_org(s, INSTALLATION, "acme")
            users.add_user(s, INSTALLATION, "acme", USER)
        with db.session() as s:
            principal = resolve_principal(s, "acme", USER)
        report = {
            "chromium": browser.version,
            "observation": bench_observe(browser, site, reps),
            "actions_ms": bench_actions(browser, site, max(5, reps // 2)),
            "replay": bench_replay(browser, site, db, principal, 3 if args.quick else 8, tmp),
        }
        from cristal.operator.browser import chromium_path
        from cristal.sample.webapps import serve_webapps

        # Each tool gets the apps freshly seeded: the claims the other one filed would lengthen the lists.
        with serve_webapps(tmp / "apps.db", today=lambda: date(2025, 10, 31)) as apps:
            report["webapps"] = bench_webapps(browser, apps.base_url, reps)
        with serve_webapps(tmp / "apps-browser-use.db", today=lambda: date(2025, 10, 31)) as apps:
            report["browser_use"] = ({"error": "skipped (--no-browser-use)"} if args.no_browser_use else
                                     bench_browser_use(args.browser_use_venv, apps.base_url, chromium_path(), reps, tmp))
        db.dispose()
    print(json.dumps(report, indent=1))
    print(side_by_side(report["webapps"], report["browser_use"]))
    if args.out:
        write_json(args.out, report, indent=1)


BROWSER_USE_CHILD = '''\
"""Measure browser-use's state extraction and actions on the sample web apps (run in browser-use's own venv)."""
import asyncio, json, os, statistics, sys, tempfile, time, logging
os.environ.setdefault("ANONYMIZED_TELEMETRY", "false")
os.environ.setdefault("BROWSER_USE_CLOUD_SYNC", "false")
os.environ.setdefault("BROWSER_USE_LOGGING_LEVEL", "error")
logging.disable(logging.WARNING)
import importlib.metadata
from browser_use import BrowserProfile, BrowserSession
from browser_use.browser.events import ClickElementEvent, NavigateToUrlEvent, ScrollEvent, SelectDropdownOptionEvent, TypeTextEvent


def ms(t0): return (time.perf_counter() - t0) * 1000


async def main(base, email, chromium, reps):
    prof = BrowserProfile(executable_path=chromium, headless=True, enable_default_extensions=False, chromium_sandbox=False,
                          user_data_dir=tempfile.mkdtemp(), args=["--disable-gpu"])
    s = BrowserSession(browser_profile=prof)
    await s.start()
    out = {"version": importlib.metadata.version("browser-use"), "state_ms": {}, "actions_ms": {}}

    async def state():
        t0 = time.perf_counter()
        st = await s.get_browser_state_summary(include_screenshot=False)
        text = st.dom_state.llm_representation()
        return ms(t0), st, text

    async def node(name=None, text=None):
        smap = await s.get_selector_map()
        for idx, n in smap.items():
            attrs = n.attributes or {}
            if name and attrs.get("name") == name:
                return n
            if text and text in (n.get_all_children_text() or ""):
                return n
        raise SystemExit(f"browser-use: no element {name or text!r}")

    async def run(event):
        t0 = time.perf_counter()
        ev = s.event_bus.dispatch(event)
        await ev
        await ev.event_result(raise_if_any=True, raise_if_none=False)
        return ms(t0)

    try:
        await run(NavigateToUrlEvent(url=base + "/expenses/"))
        await state()
        await run(TypeTextEvent(node=await node(name="email"), text=email))
        await run(ClickElementEvent(node=await node(text="Sign in")))
        await asyncio.sleep(0.5)
        for path in ("/expenses/", "/expenses/new", "/customers/"):
            await run(NavigateToUrlEvent(url=base + path))
            times = []
            for _ in range(reps):
                t, st, text = await state()
                times.append(t)
            out["state_ms"][path] = {"times": times, "elements": len(st.dom_state.selector_map), "text_chars": len(text)}
        acts = {k: [] for k in ("goto", "fill", "select_option", "click (form post + redirect)", "scroll")}
        with_state = {k: [] for k in acts}
        for i in range(max(3, reps // 2)):
            t = await run(NavigateToUrlEvent(url=base + "/expenses/new"))
            acts["goto"].append(t); with_state["goto"].append(t + (await state())[0])
            for kind, event in (("fill", lambda: TypeTextEvent(node=n_date, text="2025-10-0%d" % (1 + i % 9))),
                                ("select_option", lambda: SelectDropdownOptionEvent(node=n_cat, text="Travel")),
                                ("fill", lambda: TypeTextEvent(node=n_amount, text="12.50")),
                                ("fill", lambda: TypeTextEvent(node=n_desc, text=f"Bench item {i}")),
                                ("scroll", lambda: ScrollEvent(direction="down", amount=500)),
                                ("click (form post + redirect)", lambda: ClickElementEvent(node=n_save))):
                n_date, n_cat, n_amount = await node(name="date"), await node(name="category"), await node(name="amount")
                n_desc, n_save = await node(name="description"), await node(text="Save draft")
                t = await run(event())
                acts[kind].append(t)
                with_state[kind].append(t + (await state())[0])
        out["actions_ms"] = acts
        out["action_plus_state_ms"] = with_state
    finally:
        await s.kill()
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
'''


if __name__ == "__main__":
    main()
