"""What the Operator's observation finds on the sample web apps' pages, and what it costs.

    python benchmarks/bench_observation.py                   # this tree, against main's distiller
    python benchmarks/bench_observation.py --baseline REF    # against another git ref's distiller
    python benchmarks/bench_observation.py --out results.json

For each page of the sample company's apps (in the state a task needs: suggestions open, the date picker open,
a tree expanded), in a real headless Chromium:

- ``operable``: the elements a person can operate there, counted by hand (see ``PAGES``);
- ``found``: interactive elements in the observation, and how many of them were found through a listener,
  a pointer cursor or event delegation rather than markup; ``missed``: operable ones it does not list;
- ``tokens``: the observation's size as the model gets it (about four characters a token, the gateway's own
  estimate), for this tree and for the baseline's distiller on the same page;
- ``observe_ms``: p50/p95 of one observation (the listener pass through the DevTools protocol included),
  and of the listener pass alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from output import write_json  # noqa: E402  (benchmarks/output.py: the script's folder is on sys.path)

from cristal.models.metering import estimate_tokens  # noqa: E402
from cristal.operator import AllowList, BrowserSession, Secrets, chromium  # noqa: E402
from cristal.operator.observation import Observation  # noqa: E402
from cristal.sample.webapps import serve_webapps  # noqa: E402

USER = "lukas.weber@aozora-de.example"
NAV = 6  # the header on every signed-in page: 5 app links and "Sign out"

# path, how to get the page into the task's state, what a person can operate there (counted by hand), and names
# the observation must list.
PAGES: list[dict[str, Any]] = [
    {"page": "/expenses/", "operable": NAV + 3 + 3, "names": ["Claim 1"]},  # new claim, status filter + apply, 3 claim links
    {"page": "/expenses/new", "operable": NAV + 7, "names": ["Date", "Save draft"]},  # 5 fields, save, cancel
    {"page": "/customers/", "operable": NAV + 2 + 10 + 3, "names": ["Search customers"]},  # search + button, 10 names, pager 1 2 next
    {"page": "/inbox/", "operable": NAV + 4 + 2 + 1 + 10 + 10 + 3,  # folders, search + button, span-link, rows, stars, pager
     "names": ["Mark all as read", "Receipts (0)", "Flag"]},
    {"page": "/inbox/?q=Bern", "operable": NAV + 4 + 2 + 1 + 2 + 2, "names": ["Bernardine Okafor"]},
    {"page": "/inbox/204", "steps": [("hover", "Move to ▾")], "operable": NAV + 1 + 1 + 1 + 3,  # back, flag, menu, 3 items
     "names": ["Archive"]},
    {"page": "/travel/new", "steps": [("fill", "Destination", "Ber")],
     "operable": NAV + 4 + 1 + 6 + 2 + 4,  # 4 fields, list box + 6 options, save, cancel, 4 suggestions (Bern, Berlin, Bergamo, Bergen)
     "names": ["Bern (Switzerland)", "4300 Marketing"]},
    {"page": "/travel/new", "label": "/travel/new (date picker)", "steps": [("click", "Departure")],
     "operable": NAV + 4 + 1 + 6 + 2 + 2 + 31, "names": ["Prev", "Next", "24"]},  # Prev/Next and 31 days of October
    {"page": "/files/", "steps": [("click", "Germany"), ("click", "Finance"), ("click", "Receipts")],
     # Americas, Germany (open: Sales, Finance (open: Receipts, Invoices), HR), Japan: 8 tree items; file field, Upload
     "operable": NAV + 8 + 2, "names": ["Receipts", "File to upload", "Upload"]},
    # A large page: 200 rows that open on click (pointer cursor), each with a quantity field, an Edit button and a link.
    {"page": "synthetic", "label": "synthetic: 200 clickable rows", "operable": 200 * 4, "names": ["Open 90"],
     "html": "<style>tr.r{cursor:pointer}</style><h1>Inventory</h1><table>" + "".join(
         f"<tr class=r><td>Item {i}</td><td>{i * 3.5:.2f}</td><td><input name=q{i} aria-label='Quantity {i}'></td>"
         f"<td><button>Edit</button> <a href='/item/{i}'>Open {i}</a></td></tr>" for i in range(200)) + "</table>"},
]

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 2) if ordered else 0.0


def baseline_distiller(ref: str) -> str:
    """The DISTIL_JS of another git ref (main by default), to compare on the same pages."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:src/cristal/operator/distil_js.py"],
                            check=True, capture_output=True, text=True).stdout
    namespace: dict[str, Any] = {}
    exec(compile(source, f"{ref}:distil_js.py", "exec"), namespace)  # noqa: S102 - the project's own file at a ref
    return str(namespace["DISTIL_JS"])


def _find(obs: Observation, name: str) -> dict[str, Any]:
    for e in obs.elements:
        if e["name"] == name:
            return e
    raise SystemExit(f"{obs.url}: no element named {name!r}")


def measure(session: BrowserSession, apps: Any, spec: dict[str, Any], old_js: str, repeat: int) -> dict[str, Any]:
    if "html" in spec:
        session.page.set_content("<!doctype html><title>Inventory</title><body>" + spec["html"])
        obs = session.observe()
    else:
        obs = session.open(apps.url(spec["page"]))
    for tool, name, *text in spec.get("steps", []):
        outcome = session.act(tool, {"text": text[0]} if text else {}, _find(session.last or obs, name))
        if not outcome.ok:
            raise SystemExit(f"{spec['page']}: {tool} {name}: {outcome.message}")
    obs = session.observe()
    totals, listeners = [], []
    for _ in range(repeat):
        o = session.observe()
        totals.append(o.total_ms)
        listeners.append(o.listeners_ms)
    old_raw = json.loads(session.page.evaluate(old_js, json.dumps({"known": {}, "next": 1})))
    old = Observation.from_raw(old_raw, Secrets(), total_ms=0.0)
    names = {e["name"] for e in obs.elements}
    old_names = {e["name"] for e in old.elements}
    return {
        "page": spec.get("label", spec["page"]), "operable": spec["operable"], "found": len(obs.elements),
        "found_through_script": sum(1 for e in obs.elements if e.get("via")), "found_before": len(old.elements),
        "missing_names": [n for n in spec["names"] if n not in names and not any(n in x for x in names)],
        "missing_names_before": [n for n in spec["names"] if not any(n in x for x in old_names)],
        "tokens": estimate_tokens(obs.format()), "tokens_before": estimate_tokens(old.format()),
        "observe_ms": {"p50": pct(totals, 0.5), "p95": pct(totals, 0.95)},
        "listeners_ms": {"p50": pct(listeners, 0.5), "p95": pct(listeners, 0.95)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref whose distiller to compare with (default: main)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    old_js = baseline_distiller(args.baseline)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, serve_webapps(Path(tmp) / "apps.db", today=lambda: date(2025, 10, 31)) as apps, \
            chromium() as browser:
        results = []
        for spec in PAGES:
            with BrowserSession(browser, AllowList.build([], apps.base_url)) as session:
                name, value = apps.session_cookie(USER)
                session.context.add_cookies([{"name": name, "value": value, "url": apps.base_url}])
                results.append(measure(session, apps, spec, old_js, args.repeat))
    all_ms = [r["observe_ms"]["p50"] for r in results]
    doc = {"pages": results, "observe_p50_median_ms": round(statistics.median(all_ms), 2),
           "operable": sum(r["operable"] for r in results), "found": sum(r["found"] for r in results),
           "found_before": sum(r["found_before"] for r in results),
           "tokens": sum(r["tokens"] for r in results), "tokens_before": sum(r["tokens_before"] for r in results),
           "seconds": round(time.perf_counter() - started, 1)}
    print(f"{'page':32} {'operable':>8} {'found':>6} {'script':>6} {'before':>6} {'tokens':>7} {'before':>7} {'p50 ms':>7} {'lst ms':>7}")
    for r in results:
        print(f"{r['page']:32} {r['operable']:>8} {r['found']:>6} {r['found_through_script']:>6} {r['found_before']:>6} "
              f"{r['tokens']:>7} {r['tokens_before']:>7} {r['observe_ms']['p50']:>7} {r['listeners_ms']['p50']:>7}"
              + (f"  missing {r['missing_names']}" if r["missing_names"] else ""))
    print(json.dumps({k: v for k, v in doc.items() if k != "pages"}))
    if args.out:
        write_json(args.out, doc)


if __name__ == "__main__":
    main()
