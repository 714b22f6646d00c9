"""A research run: plan, search as the user, read, search again, write -- within budgets, checkpointed.

``run_research`` is the one entry point (the workflow engine's ``research``
step, which ``cristal research`` runs as a one-step durable run; the demo;
the benchmarks). The run saves its notes to the database after every phase;
``resume=CHECKPOINT`` continues a run that an LLM failure, a spent budget or
a crash interrupted, without repeating the searches or model calls already
done. Whatever happens after the question is accepted, the
run returns a report: ``status`` is ``complete``, ``partial`` (with
``error`` saying why) or ``no_results``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from cristal.audit.log import write_audit
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import AccessDenied, InvalidInput, LLMError
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.principal import Principal
from cristal.knowledge.indexes import Embedders
from cristal.knowledge.language import detect_language
from cristal.knowledge.schema import Document
from cristal.knowledge.search import MAX_QUERY_CHARS, Hit, Searcher
from cristal.research import prompts
from cristal.research.conflicts import find_disagreements
from cristal.research.extract import token_set
from cristal.research.gather import (
    DocumentText,
    Reader,
    Screen,
    chunk_span,
    load_documents,
    note_finding,
    passage_of,
    search_all,
    select_passages,
)
from cristal.research.notes import Notes, Passage
from cristal.research.plan import PlanModel, clean_llm_plan, extractive_plan
from cristal.research.store import CheckpointStore, new_run_id
from cristal.research.write import Citations, extractive_report, flagged_documents, llm_report, verify_draft

if TYPE_CHECKING:  # numpy and the gateway are imported when a run embeds or asks the model
    import numpy as np

    from cristal.models.gateway import Gateway

LANGS = ("en", "de", "ja")
MODES = ("auto", "extractive", "llm")
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Budget:
    max_steps: int = 30  # searches + model calls
    max_tokens: int = 60_000  # model tokens, in + out
    max_seconds: float = 300.0
    max_rounds: int = 2  # rounds of "what is still missing?"
    hits_per_search: int = 8
    passages_per_subquestion: int = 4
    sentences_per_subquestion: int = 4


class BudgetSpent(Exception):
    pass


@dataclass
class ResearchResult:
    run_id: str  # the workflow run (what `cristal workflow status` and `--resume` take), else the checkpoint id
    question: str
    mode: str
    lang: str
    status: str
    report: str
    citations: list[dict[str, Any]]
    subquestions: list[str]
    disagreements: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    stats: dict[str, Any]
    error: str | None = None
    written_by: str = "extractive"
    refused_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    suspicious_passages: int = 0  # sentences addressed to an AI in what was read (never quoted)
    flagged_documents: list[dict[str, Any]] = field(default_factory=list)  # the documents holding them, with spans and why
    research_id: str = ""  # the checkpoint of the notes (stable across resumes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question, "mode": self.mode, "report": self.report, "citations": self.citations,
            "status": self.status, "run_id": self.run_id, "lang": self.lang, "subquestions": self.subquestions,
            "disagreements": self.disagreements, "sources": self.sources, "stats": self.stats, "error": self.error,
            "written_by": self.written_by, "refused_tool_calls": self.refused_tool_calls,
            "suspicious_passages": self.suspicious_passages, "flagged_documents": self.flagged_documents,
            "research_id": self.research_id,
        }


def default_store(db: Database) -> CheckpointStore:
    return CheckpointStore(db)


def check_question(question: str | None, lang: str | None) -> tuple[str, str]:
    """The question, stripped, and the language to answer in; ``InvalidInput`` for what cannot be researched."""
    question = " ".join((question or "").split())
    if not question:
        raise InvalidInput("empty question: ask something, e.g. cristal research \"What is the hotel cap in Munich?\"")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidInput(f"question too long ({len(question)} characters, at most {MAX_QUERY_CHARS})")
    if lang is not None and lang not in LANGS:
        raise InvalidInput(f"--lang must be one of {', '.join(LANGS)}, not {lang!r}")
    detected = detect_language(question)
    if detected not in LANGS:
        if lang is None:
            raise InvalidInput(
                "the question's language or script is not supported (Cristal researches in English, German and "
                "Japanese); rephrase it, or pass --lang en|de|ja to force one"
            )
        detected = lang
    return question, lang or detected


class _Run:
    def __init__(self, db: Database, principal: Principal, notes: Notes, run_id: str, *, settings: Settings,
                 budget: Budget, store: CheckpointStore, progress: Progress | None, searcher: Searcher | None,
                 gateway: Any = None, workflow_run_id: str | None = None) -> None:
        self.db, self.principal, self.notes, self.run_id = db, principal, notes, run_id
        self.workflow_run_id = workflow_run_id
        self.public_id = workflow_run_id or run_id  # what the user sees and resumes by
        self.settings, self.budget, self.store = settings, budget, store
        self.progress = progress or (lambda kind, message: None)
        if searcher is None:
            from cristal.models.embedder import endpoint_embedders

            searcher = Searcher(db, Embedders(endpoint_embedders(self.model)))
        self.searcher = searcher
        self.gateway: Gateway | None = gateway
        self._own_gateway = False
        self.started = time.monotonic()
        self.seconds_before = notes.seconds
        self.docs: dict[int, DocumentText] = {}
        self.screen = Screen()  # sentences addressed to an AI, found once per run and region
        self.reader = Reader(self._embed, self.screen)

    # -- budgets and checkpoints

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.searcher.embedders.bundled().encode(texts)

    def elapsed(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def spend_step(self, what: str) -> None:
        b = self.budget
        if self.notes.steps >= b.max_steps:
            raise BudgetSpent(f"step budget exhausted ({self.notes.steps} of {b.max_steps}) before {what}")
        if self.elapsed() >= b.max_seconds:
            raise BudgetSpent(f"time budget exhausted ({self.elapsed():.0f} s of {b.max_seconds:.0f} s) before {what}")
        if self.notes.llm_calls and self.notes.tokens >= b.max_tokens and what.startswith("model"):
            raise BudgetSpent(f"token budget exhausted ({self.notes.tokens} of {b.max_tokens}) before {what}")
        self.notes.steps += 1

    def save(self, result: dict | None = None) -> None:
        self.notes.seconds = self.elapsed()
        self.store.save(self.run_id, self.notes, result, workflow_run_id=self.workflow_run_id)

    # -- the model

    def model(self) -> Gateway:
        if self.gateway is None:
            from cristal.models.gateway import Gateway

            self.gateway = Gateway(self.settings, self.db)
            self._own_gateway = True
        return self.gateway

    def _count(self, usage: Any) -> None:
        self.notes.llm_calls += 1
        self.notes.tokens += int(usage.tokens_in) + int(usage.tokens_out)

    # -- phases

    def plan(self) -> None:
        n = self.notes
        if n.mode == "llm":
            self.spend_step("model: plan")
            messages = [
                {"role": "system", "content": prompts.PLAN_SYSTEM},
                {"role": "user", "content": f"Question ({prompts.LANGUAGE_NAMES.get(n.lang, n.lang)}): {n.question}"},
            ]
            answer = self.model().structured_result(self.principal, messages, PlanModel, request_id=self.run_id)
            for usage in answer.calls:  # a repair turn is a second call
                self._count(usage)
            plan = clean_llm_plan(n.question, answer.value.subquestions, n.lang)
        else:
            plan = extractive_plan(n.question, n.lang)
        n.subquestions, n.key_phrases, n.phase = plan.subquestions, plan.key_phrases, "planned"
        self.progress("plan", f"{len(plan.subquestions)} sub-question(s): " + " | ".join(plan.subquestions))
        self.save()

    def search(self, queries: dict[str, str], round_no: int) -> None:
        """Search ``{query: subquestion}`` in parallel as the user, then choose and read passages."""
        todo = {q: sub for q, sub in queries.items() if not self.notes.searched(q)}
        allowed: dict[str, str] = {}
        spent: BudgetSpent | None = None
        for q, sub in todo.items():
            try:
                self.spend_step(f"search {q!r}")
            except BudgetSpent as exc:
                spent = exc
                break
            allowed[q] = sub
        if not allowed:
            if spent is not None:
                raise spent
            return

        def report(q: str, hits: list[Hit]) -> None:
            self.progress("search", f"{q!r}: {len(hits)} result(s) you may read")

        results = search_all(self.searcher, self.principal, list(allowed), limit=self.budget.hits_per_search, on_result=report)
        by_sub: dict[str, list[Hit]] = {}
        for q, hits in results.items():
            self.notes.searches.append({"query": q, "subquestion": allowed[q], "round": round_no,
                                        "hits": [{"doc_id": h.doc_id, "chunk_id": h.chunk_id} for h in hits]})
            by_sub.setdefault(allowed[q], []).extend(hits)
        for sub, hits in by_sub.items():
            have = {(p.subquestion, p.chunk_id) for p in self.notes.passages}
            chosen = [h for h in select_passages(hits, sub, self.notes.lang, k=self.budget.passages_per_subquestion)
                      if (sub, h.chunk_id) not in have]
            self.notes.passages += [passage_of(h, sub) for h in chosen]
            self.read(sub)
        self.save()
        if spent is not None:  # what the budget allowed is kept; the rest waits for a resume
            raise spent

    def ensure_docs(self) -> None:
        wanted = {p.doc_id for p in self.notes.passages} - set(self.docs)
        self.docs.update(load_documents(self.db, wanted))

    def read(self, sub: str) -> None:
        self.ensure_docs()
        passages = [p for p in self.notes.passages if p.subquestion == sub]
        found = self.reader.read(sub, self.notes.lang, passages, self.docs, k=self.budget.sentences_per_subquestion,
                                 suspicious=self.notes.suspicious)
        have = {e.key for e in self.notes.evidence_for(sub)}
        merged = self.notes.evidence_for(sub) + [e for e in found if e.key not in have]
        merged.sort(key=lambda e: -e.score)
        self.notes.evidence = [e for e in self.notes.evidence if e.subquestion != sub] + merged[: self.budget.sentences_per_subquestion + 1]
        docs = {p.doc_id for p in passages}
        self.progress("read", f"{len(passages)} passage(s) from {len(docs)} source(s) for {sub!r}: {len(merged)} sentence(s) kept")

    def gather(self) -> None:
        n = self.notes
        self.search({sub: sub for sub in n.subquestions if not n.searched(sub)}, 1)
        n.rounds = max(n.rounds, 1)
        self.save()
        # Search again for what is still missing: sub-questions with weak or no evidence, by key phrases.
        while n.rounds < 1 + (1 if n.mode == "extractive" else 0):
            weak = {}
            for sub in n.subquestions:
                ev = n.evidence_for(sub)
                if not ev or max(e.score for e in ev) < 0.45:
                    phrase = n.key_phrases.get(sub) or sub
                    if phrase != sub and not n.searched(phrase):
                        weak[phrase] = sub
            n.rounds += 1
            if weak:
                self.progress("missing", f"searching again for {len(weak)} sub-question(s) with weak evidence")
                self.search(weak, n.rounds)
            self.save()
        n.phase = "gathered"
        self.save()

    def reflect(self) -> None:
        """LLM mode: the model decides what is missing and may search (its only capability) again."""
        n = self.notes
        while n.rounds < 1 + self.budget.max_rounds:
            n.rounds += 1
            self.spend_step("model: reflect")
            messages = [
                {"role": "system", "content": prompts.REFLECT_SYSTEM},
                {"role": "user", "content": f"Question: {n.question}\nSub-questions: {n.subquestions}\n"
                                            f"Searches so far: {[s['query'] for s in n.searches]}\n"
                                            f"Notes:\n{self._notes_text()}"},
            ]
            result = self.model().chat(self.principal, messages, tools=prompts.tools(), tool_choice="auto", request_id=self.run_id)
            self._count(result.usage)
            queries: dict[str, str] = {}
            refused = 0
            finished = not result.tool_calls
            for call in result.tool_calls:
                if call.name not in prompts.ALLOWED_TOOLS:
                    refused += 1
                    n.refused_tool_calls.append({"name": call.name[:80], "arguments": str(call.arguments)[:300]})
                    self.progress("refused", f"the model asked for {call.name!r}, which does not exist here; not executed")
                elif call.name == "finish":
                    finished = True
                else:
                    query = " ".join(str(call.arguments.get("query", "")).split())[:MAX_QUERY_CHARS]
                    if query and len(queries) < 3:
                        queries[query] = self._closest_subquestion(query)
            self.save()
            if queries:
                self.search(queries, n.rounds)
            if finished or not (queries or refused):  # a refused request gets one more turn (within the rounds)
                break
        n.phase = "reflected"
        self.save()

    def _closest_subquestion(self, query: str) -> str:
        qt = token_set(query, detect_language(query))
        return max(self.notes.subquestions, key=lambda s: len(qt & token_set(s, self.notes.lang)))

    def _numbered(self) -> list[Passage]:
        with_evidence = {(e.subquestion, e.doc_id) for e in self.notes.evidence}
        ranked = sorted(self.notes.passages, key=lambda p: ((p.subquestion, p.doc_id) not in with_evidence, -p.score))
        unique = list({p.chunk_id: p for p in ranked}.values())
        return unique[:12]

    def _notes_text(self) -> str:
        self.ensure_docs()
        parts = []
        for i, e in enumerate(self.notes.evidence, 1):
            parts.append(prompts.wrap_document(i, e.title, e.uri, e.quote))
        return "\n".join(parts) or "(nothing found yet)"

    def write_llm(self) -> None:
        n = self.notes
        self.ensure_docs()
        numbered = self._numbered()
        self.spend_step("model: write")
        documents = "\n\n".join(
            prompts.wrap_document(i, p.title, p.uri, self._passage_text(p)) for i, p in enumerate(numbered, 1) if p.doc_id in self.docs
        )
        language = prompts.LANGUAGE_NAMES.get(n.lang, "English")
        messages = [
            {"role": "system", "content": prompts.WRITE_SYSTEM.format(language=language)},
            {"role": "user", "content": f"Question: {n.question}\n\nPassages:\n{documents}"},
        ]
        result = self.model().chat(self.principal, messages, request_id=self.run_id)
        self._count(result.usage)
        n.draft = result.text
        n.phase = "written"
        self.save()

    def _passage_text(self, p: Passage) -> str:
        """The passage as the model sees it: sentences addressed to an AI withheld."""
        doc = self.docs[p.doc_id]
        start, end = chunk_span(p, doc)
        findings = self.screen.findings(doc, start, end)
        for f in findings:
            note_finding(self.notes.suspicious, doc, f)
        return prompts.withhold(doc.text[start:end], start, [(f.start, f.end) for f in findings])

    def blocked(self, doc: DocumentText, start: int, end: int) -> bool:
        """True for text that may never be quoted: it is addressed to an AI."""
        finding = self.screen.flagged(doc, start, end)
        if finding is not None:
            note_finding(self.notes.suspicious, doc, finding)
        return finding is not None

    def close(self) -> None:
        if self._own_gateway and self.gateway is not None:
            self.gateway.close()


def ensure_searchable(db: Database, principal: Principal) -> None:
    """``InvalidInput`` when the principal's organization has no indexed documents at all."""
    with db.session() as s:
        org = org_by_slug(s, principal.org_slug or "")
        if not s.scalar(select(func.count()).select_from(Document).where(Document.org_id == org.id)):
            raise InvalidInput(f"organization {org.slug!r} has no searchable sources: add one with "
                               "`cristal source add` and run `cristal sync`")


def resolve_mode(settings: Settings, db: Database, principal: Principal, mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    from cristal.db.schema import Organization
    from cristal.models.endpoint import NO_ENDPOINT, resolve_endpoint

    with db.session() as s:
        org = s.get(Organization, principal.org_id) if principal.org_id is not None else None
        configured = bool(resolve_endpoint(settings, org).base_url)
    if mode == "llm" and not configured:
        raise LLMError(NO_ENDPOINT)
    if mode == "auto":
        return "llm" if configured else "extractive"
    return mode


def run_research(
    db: Database,
    principal: Principal,
    question: str | None = None,
    *,
    settings: Settings,
    mode: str = "auto",
    lang: str | None = None,
    budget: Budget | None = None,
    resume: str | None = None,
    run_id: str | None = None,
    store: CheckpointStore | None = None,
    progress: Progress | None = None,
    searcher: Searcher | None = None,
    gateway: Any = None,
    workflow_run_id: str | None = None,
) -> ResearchResult:
    """Research ``question`` as ``principal`` and return the report (see the module docstring).

    ``run_id`` names the checkpoint of a new run (a workflow step takes it from
    its spec or derives it from its idempotency key, so a step that runs again
    after a crash resumes the same notes); ``workflow_run_id`` is the durable
    run doing the work, reported as the result's ``run_id``.
    """
    budget = budget or Budget()
    store = store or default_store(db)
    if principal.is_installation:
        raise AccessDenied("research runs as an employee: pass --as EMAIL (the installation principal cannot read company data)")
    if resume:
        notes, finished = store.load(resume)
        if notes.principal != principal.label:
            raise AccessDenied(f"research run {resume} belongs to someone else; only they can resume it")
        if finished is not None and finished.get("status") == "complete":
            return ResearchResult(**{k: v for k, v in finished.items() if k in ResearchResult.__dataclass_fields__})
        run_id = resume
        if lang is not None:
            notes.lang = check_question(notes.question, lang)[1]
    else:
        question, answer_lang = check_question(question, lang)
        chosen = resolve_mode(settings, db, principal, mode)
        ensure_searchable(db, principal)
        run_id = run_id or new_run_id()
        notes = Notes(question, answer_lang, chosen, principal.label, principal.org_slug or "")
    run = _Run(db, principal, notes, run_id, settings=settings, budget=budget, store=store, progress=progress,
               searcher=searcher, gateway=gateway, workflow_run_id=workflow_run_id)
    run.progress("run", f"{run.public_id} ({notes.mode} mode, answering in {notes.lang})")
    run.save()
    error: str | None = None
    try:
        if notes.phase == "start":
            run.plan()
        if notes.phase == "planned":
            run.gather()
        if notes.mode == "llm" and notes.phase == "gathered":
            run.reflect()
        if notes.mode == "llm" and notes.phase == "reflected" and notes.evidence:
            run.write_llm()
    except BudgetSpent as exc:
        error = str(exc)
    except LLMError as exc:  # includes the organization's BudgetExceeded
        error = f"the language model failed: {exc.message}"
    finally:
        run.close()
    if not notes.subquestions:  # the plan itself failed: gather what we can without the model
        plan = extractive_plan(notes.question, notes.lang)
        notes.subquestions, notes.key_phrases = plan.subquestions, plan.key_phrases
    if error:
        run.progress("partial", error)
    result = _finish(run, error)
    run.save(result.as_dict())
    _audit(db, principal, result)
    return result


def _finish(run: _Run, error: str | None) -> ResearchResult:
    n = run.notes
    run.ensure_docs()
    # Evidence from a checkpoint written before the screen knew better is screened again: nothing addressed to
    # an AI is quoted or compared as a disagreement.
    n.evidence = [e for e in n.evidence if e.doc_id in run.docs and not run.blocked(run.docs[e.doc_id], e.start, e.end)]
    disagreements = find_disagreements(n.evidence, n.subquestions, n.lang)
    written_by = "extractive"
    if not n.passages and not error:
        status = "no_results"
    else:
        status = "partial" if error else "complete"
    reason = f"{error}. Kept what was gathered; resume with `cristal research --resume {run.public_id}`." if error else None
    if n.mode == "llm" and n.draft is not None:
        verified = verify_draft(n.draft, run._numbered(), run.docs, n.lang, blocked=run.blocked)
        if verified.citations.items:
            report = llm_report(n, verified, n.lang, disagreements, status=status, reason=reason)
            cites: Citations = verified.citations
            written_by = "model"
        else:  # nothing of the draft held: the extractive report is the honest answer
            n.problems.append("no sentence of the model's draft had a citation that holds")
            report, cites = extractive_report(n, n.lang, disagreements, status=status, reason=reason)
    else:
        report, cites = extractive_report(n, n.lang, disagreements, status=status, reason=reason)
    # Last line of defence: every emitted quote occurs verbatim in a document the user's searches returned.
    for c in cites.items:
        doc = run.docs.get(c.doc_id)
        assert doc is not None and doc.text[c.start : c.end] == c.quote, f"citation [{c.n}] does not hold"
    numbers_of = cites.numbers
    used = sorted({c.doc_id for c in cites.items})
    sources = [{"doc_id": d, "title": run.docs[d].title, "uri": run.docs[d].uri, "lang": run.docs[d].lang} for d in used]
    return ResearchResult(
        run_id=run.public_id, research_id=run.run_id, question=n.question, mode=n.mode, lang=n.lang, status=status, report=report,
        citations=[{"n": c.n, "doc_id": c.doc_id, "uri": c.uri, "quote": c.quote, "title": c.title, "start": c.start, "end": c.end}
                   for c in cites.items],
        subquestions=list(n.subquestions),
        disagreements=[d.as_dict(numbers_of) for d in disagreements],
        sources=sources,
        stats={"searches": len(n.searches), "sources_read": len({p.doc_id for p in n.passages}), "passages_read": len(n.passages),
               "steps": n.steps, "llm_calls": n.llm_calls, "tokens": n.tokens, "seconds": round(run.elapsed(), 3)},
        error=error, written_by=written_by, refused_tool_calls=list(n.refused_tool_calls), suspicious_passages=len(n.suspicious),
        flagged_documents=flagged_documents(n.suspicious),
    )


def _audit(db: Database, principal: Principal, result: ResearchResult) -> None:
    with db.session() as s:
        org = org_by_slug(s, principal.org_slug or "")
        write_audit(
            s, principal=principal, action="research.run", resource=in_org(org, "research", result.run_id),
            decision="allow", reason=f"research {result.status}", request_id=result.run_id,
            details={"question": result.question[:300], "mode": result.mode, "status": result.status,
                     "docs_cited": sorted({c["doc_id"] for c in result.citations}), "error": result.error,
                     "docs_flagged": [d["doc_id"] for d in result.flagged_documents]},
        )
