"""Deep Research quality and latency: citation precision, answer recall, seconds per report.

    python benchmarks/bench_research.py --quick          # extractive, offline: 60 sample-company + ~50 XQuAD/JSQuAD questions
    python benchmarks/bench_research.py                  # the same with 100 questions per XQuAD/JSQuAD set
    CRISTAL_LLM_BASE_URL=... CRISTAL_LLM_MODEL=... python benchmarks/bench_research.py --quick   # adds LLM mode

Sets:
- sample: the Aozora Group questions (src/cristal/sample/documents/questions.jsonl), each asked as the
  employee it names. ``answer`` questions score recall; ``no_access`` questions score leaks (the gold answer
  must NOT appear: the asker may not read its document).
- xquad-de, xquad-en>de (English questions over German paragraphs), jsquad: one paragraph per document in a
  benchmark organization; the gold answer is the SQuAD answer text.

Metrics:
- citation precision: share of citations whose quote occurs verbatim in the cited document AND supports the
  report line citing it (every number on that line occurs in the line's cited quotes; an extractive line *is*
  its quote), checked mechanically;
- answer recall: share of questions whose gold answer (normalised: NFKC, case, whitespace) appears in the report;
- latency: seconds per report (p50, p95, mean), measured around ``run_research`` (the research itself; the
  durable run that ``cristal research`` wraps it in adds the engine's start-up and one checkpointed step).

The JSON document also lists, per set, the questions whose gold answer the report missed (``missed``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from output import write_json  # noqa: E402  (benchmarks/output.py: the script's folder is on sys.path)

from cristal.config import Settings  # noqa: E402
from cristal.db import Database  # noqa: E402
from cristal.identity import orgs, users  # noqa: E402
from cristal.identity.directory import resolve_principal  # noqa: E402
from cristal.identity.principal import Principal  # noqa: E402
from cristal.knowledge import sources  # noqa: E402
from cristal.knowledge.schema import Document  # noqa: E402
from cristal.knowledge.search import Searcher  # noqa: E402
from cristal.knowledge.sync import sync_source  # noqa: E402
from cristal.research import Budget, run_research  # noqa: E402
from cristal.research.extract import numbers  # noqa: E402
from cristal.research.store import CheckpointStore  # noqa: E402
from cristal.sample.company import load_company  # noqa: E402
from cristal.sample.knowledge import connect_sources  # noqa: E402

DATA = Path(os.environ.get("CRISTAL_BENCH_DATA", "/work/shared/data"))
QUESTIONS = ROOT / "src" / "cristal" / "sample" / "documents" / "questions.jsonl"
INSTALLATION = Principal.installation("bench")


def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _squad(path: Path) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(p["context"], [(q["question"], [a["text"] for a in q["answers"]]) for q in p["qas"]])
            for article in data for p in article["paragraphs"]]


def external_sets(quick: bool, seed: int = 7) -> tuple[dict[str, list[str]], list[dict]]:
    """Paragraph files per language folder, and questions with gold answers."""
    rng = random.Random(seed)
    de = _squad(DATA / "xquad" / "xquad.de.json")
    en = _squad(DATA / "xquad" / "xquad.en.json")
    ja = _squad(DATA / "jsquad" / "valid-v1.3.json")
    n_par = 40 if quick else 240
    de_idx = sorted(rng.sample(range(len(de)), min(n_par, len(de))))
    ja_idx = sorted(rng.sample(range(len(ja)), min(n_par, len(ja))))
    files = {f"de/p{i:04d}.txt": de[i][0] for i in de_idx}
    files |= {f"ja/p{i:04d}.txt": ja[i][0].split(" [SEP] ", 1)[-1] for i in ja_idx}
    per_set = 17 if quick else 100
    questions: list[dict] = []
    for name, corpus, idx, lang in (("xquad-de", de, de_idx, "de"), ("xquad-en>de", en, de_idx, "en"), ("jsquad", ja, ja_idx, "ja")):
        pool = [(i, q, a) for i in idx for q, a in corpus[i][1]]
        for i, q, answers in rng.sample(pool, min(per_set, len(pool))):
            gold_answers = de[i][1][[x[0] for x in en[i][1]].index(q)][1] if name == "xquad-en>de" and q in [x[0] for x in en[i][1]] else answers
            # Cross-lingual: the report quotes the German paragraph, so the German gold answer counts too.
            questions.append({"set": name, "question": q, "answers": list(dict.fromkeys(answers + gold_answers)), "lang": lang})
    return files, questions


def setup(workdir: Path, quick: bool) -> tuple[Database, list[dict]]:
    db = Database(f"sqlite:///{workdir / 'bench.db'}")
    db.upgrade()
    with db.session() as s:
        load_company(s, INSTALLATION)
        connect_sources(s, INSTALLATION, workdir)
        orgs.create_org(s, INSTALLATION, "bench", "Benchmark")
        users.add_user(s, INSTALLATION, "bench", "reader@bench.example")
    t = time.perf_counter()
    for org in ("aozora-de", "aozora-jp", "aozora-us"):
        sync_source(db, INSTALLATION, org, "documents")
    files, ext_questions = external_sets(quick)
    root = workdir / "ext"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "bench", "paragraphs", "files", str(root), acl="org")
    sync_source(db, INSTALLATION, "bench", "paragraphs")
    print(f"indexed in {time.perf_counter() - t:.1f}s ({len(files)} benchmark paragraphs)", file=sys.stderr)
    sample = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [{"set": "sample", "org": q["org"], "as": q["as"], "question": q["question"], "answers": [q["answer"]],
              "expect": q["expect"], "id": q["id"], "tags": q["tags"]} for q in sample]
    items += [dict(q, org="bench", **{"as": "reader@bench.example"}, expect="answer") for q in ext_questions]
    return db, items


_MARK = re.compile(r"\[(\d+)\]")


def citation_checks(db: Database, result: dict) -> tuple[int, int]:
    """(citations that hold, citations) for one report."""
    ids = {c["doc_id"] for c in result["citations"]}
    with db.session() as s:
        texts = dict(s.execute(select(Document.id, Document.text).where(Document.id.in_(ids))).all()) if ids else {}
    by_n = {c["n"]: c for c in result["citations"]}
    verbatim = {c["n"]: c["quote"] in texts.get(c["doc_id"], "") for c in result["citations"]}
    supported = dict.fromkeys(by_n, False)
    for line in result["report"].splitlines():
        ns = [int(n) for n in _MARK.findall(line) if int(n) in by_n]
        if not ns or line.startswith("[") and line[1:].split("]")[0].isdigit():  # the sources list itself
            continue
        claim = _MARK.sub("", line)
        quotes = " ".join(by_n[n]["quote"] for n in ns)
        ok = numbers(claim) <= numbers(quotes) or any(" ".join(by_n[n]["quote"].split()) in claim for n in ns)
        for n in ns:
            supported[n] = supported[n] or ok
    good = sum(1 for n in by_n if verbatim[n] and supported[n])
    return good, len(by_n)


def run_mode(db: Database, items: list[dict], mode: str, settings: Settings, store: CheckpointStore) -> dict:
    searcher = Searcher(db)
    per_set: dict[str, dict] = {}
    leaks = injection_failures = 0
    for item in items:
        with db.session() as s:
            principal = resolve_principal(s, item["org"], item["as"])
        t = time.perf_counter()
        try:
            result = run_research(db, principal, item["question"], settings=settings, mode=mode, store=store,
                                  searcher=searcher, budget=Budget(max_seconds=120)).as_dict()
        except Exception as exc:  # noqa: BLE001 - a benchmark records failures and goes on
            result = {"report": "", "citations": [], "status": f"error: {exc}"}
        seconds = time.perf_counter() - t
        stats = per_set.setdefault(item["set"], {"questions": 0, "answered": 0, "recall_hits": 0, "good": 0, "cited": 0,
                                                 "seconds": [], "partial": 0, "no_access": 0, "missed": []})
        stats["seconds"].append(seconds)
        good, cited = citation_checks(db, result) if result["citations"] else (0, 0)
        stats["good"] += good
        stats["cited"] += cited
        stats["partial"] += result["status"] != "complete"
        report = norm(result["report"])
        found = any(norm(a) in report for a in item["answers"])
        if item.get("expect") == "no_access":
            stats["no_access"] += 1
            leaks += found
        else:
            stats["questions"] += 1
            stats["recall_hits"] += found
            if not found:
                stats["missed"].append(item.get("id") or item["question"][:80])
        if "injection" in item.get("tags", []) and "evil.example" in report:
            injection_failures += 1
    out = {"mode": mode, "sets": {}, "leaks": leaks, "injection_failures": injection_failures}
    for name, st in per_set.items():
        secs = sorted(st["seconds"])
        out["sets"][name] = {
            "questions": st["questions"],
            "answer_recall": round(st["recall_hits"] / st["questions"], 3) if st["questions"] else None,
            "citation_precision": round(st["good"] / st["cited"], 3) if st["cited"] else None,
            "citations": st["cited"],
            "not_complete": st["partial"],
            "latency_p50_s": round(statistics.median(secs), 2),
            "latency_p95_s": round(secs[min(len(secs) - 1, int(0.95 * len(secs)))], 2),
            "latency_mean_s": round(statistics.fmean(secs), 2),
            "missed": st["missed"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~50 external questions over 80 paragraphs (default: 300 over 480)")
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cristal-bench-research-") as tmp:
        work = Path(tmp)
        db, items = setup(work, args.quick)
        store = CheckpointStore(db)
        results = []
        base = Settings(home=work)
        results.append(run_mode(db, items, "extractive", base, store))
        if os.environ.get("CRISTAL_LLM_BASE_URL"):
            results.append(run_mode(db, items, "llm", Settings(home=work, llm_base_url=os.environ["CRISTAL_LLM_BASE_URL"]), store))
        else:
            print("LLM mode skipped: set CRISTAL_LLM_BASE_URL (and CRISTAL_LLM_MODEL, CRISTAL_LLM_API_KEY) to score it", file=sys.stderr)
        db.dispose()
    document = {"benchmark": "research", "quick": args.quick, "results": results}
    for r in results:
        print(f"\n{r['mode']}: leaks of no-access answers {r['leaks']}, injection failures {r['injection_failures']}", file=sys.stderr)
        print(f"{'set':<14}{'n':>4}{'recall':>8}{'cit.prec':>10}{'cites':>7}{'p50 s':>8}{'p95 s':>8}", file=sys.stderr)
        for name, s in r["sets"].items():
            print(f"{name:<14}{s['questions']:>4}{s['answer_recall'] if s['answer_recall'] is not None else '-':>8}"
                  f"{s['citation_precision'] if s['citation_precision'] is not None else '-':>10}{s['citations']:>7}"
                  f"{s['latency_p50_s']:>8}{s['latency_p95_s']:>8}", file=sys.stderr)
    if args.out:
        write_json(args.out, document)
    print(json.dumps(document, ensure_ascii=False))


if __name__ == "__main__":
    main()
