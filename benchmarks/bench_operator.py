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
  overhead: gateway metering, audit, history; with a real model add its latency per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from cristal.config import Settings  # noqa: E402
from cristal.db import Database  # noqa: E402
from cristal.identity import orgs, users  # noqa: E402
from cristal.identity.directory import resolve_principal  # noqa: E402
from cristal.identity.principal import Principal  # noqa: E402
from cristal.models import Gateway  # noqa: E402
from cristal.operator import AllowList, BrowserSession, RunConfig, Secrets, chromium, replay_trajectory, run_operator  # noqa: E402
from cristal.testing.scripted_model import ScriptedModel, tool_call  # noqa: E402
from tests.operator.scripts import act, login_steps, new_claim_steps  # noqa: E402
from tests.operator.site import PASSWORD, USER, Site, SiteServer  # noqa: E402

OPERATOR = Principal.operator("bench")


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
            distil, total = [], []
            for _ in range(reps):
                o = s.observe()
                distil.append(o.distil_ms)
                total.append(o.total_ms)
            results[path] = {"elements": len(o.elements), "text_chars": len(o.text), "distil_ms": summary(distil), "total_ms": summary(total)}
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
    originals, replays, steps = [], [], 0
    for i in range(reps):
        site.site.claims = Site().claims
        record = tmp / f"run{i}.json"
        script = [*login_steps(), *new_claim_steps(), act("click", 'button "Save draft"'), tool_call("done", {"result": "ok"})]
        config = RunConfig(task="File a claim", start_url=site.url("/login"), secrets=Secrets({"PASSWORD": PASSWORD}), record=record)
        with ScriptedModel(script) as model, Gateway(Settings(llm_base_url=model.base_url, llm_api_key="k", llm_model="scripted"), db) as gw:
            started = time.perf_counter()
            result = run_operator(db, principal, config, gateway=gw, browser=browser)
            originals.append(time.perf_counter() - started)
        assert result.status == "done", result.reason
        site.site.claims = Site().claims
        trajectory = json.loads(record.read_text())
        started = time.perf_counter()
        rep = replay_trajectory(db, principal, trajectory, secrets=Secrets({"PASSWORD": PASSWORD}), browser=browser)
        replays.append(time.perf_counter() - started)
        assert rep.status == "complete", rep.reason
        steps = rep.total
    return {"steps": steps, "original_run_s": summary(originals), "replay_s": summary(replays),
            "replay_speedup_vs_scripted_model_run": round(statistics.median(originals) / statistics.median(replays), 2),
            "replay_ms_per_step": round(1000 * statistics.median(replays) / max(1, steps), 1)}


def bench_webapps(browser, tmp: Path, reps: int) -> dict | None:  # type: ignore[no-untyped-def]
    try:
        from cristal.sample.webapps import serve_webapps
    except ImportError:
        return None
    distil, total = [], []
    with serve_webapps(tmp / "apps.db", today=lambda: date(2025, 10, 31)) as apps:
        with BrowserSession(browser, AllowList.build([], apps.base_url)) as s:
            obs = s.open(apps.expenses_url)
            email = next(e for e in obs.elements if e["role"] == "textbox")
            s.act("fill", {"text": "lukas.weber@aozora-de.example"}, email)
            s.act("click", {}, next(e for e in s.last.elements if e["name"] == "Sign in"))
            out = {}
            for path in ("/expenses/", "/expenses/new", "/customers/"):
                s.act("goto", {"url": path})
                distil, total = [], []
                for _ in range(reps):
                    o = s.observe()
                    distil.append(o.distil_ms)
                    total.append(o.total_ms)
                out[path] = {"elements": len(o.elements), "text_chars": len(o.text), "distil_ms": summary(distil), "total_ms": summary(total)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reps = 8 if args.quick else 30
    with tempfile.TemporaryDirectory() as tmpdir, SiteServer() as site, chromium() as browser:
        tmp = Path(tmpdir)
        db = Database(f"sqlite:///{tmp / 'c.db'}")
        db.upgrade()
        with db.session() as s:
            orgs.create_org(s, OPERATOR, "acme")
            users.add_user(s, OPERATOR, "acme", USER)
        with db.session() as s:
            principal = resolve_principal(s, "acme", USER)
        report = {
            "chromium": browser.version,
            "observation": bench_observe(browser, site, reps),
            "actions_ms": bench_actions(browser, site, max(5, reps // 2)),
            "replay": bench_replay(browser, site, db, principal, 3 if args.quick else 8, tmp),
            "webapps_observation": bench_webapps(browser, tmp, reps),
        }
        db.dispose()
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
