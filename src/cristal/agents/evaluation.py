"""An agent's test cases, run through the real runtime; the publish that refuses a draft whose tests fail.

``run_tests`` asks each case of the agent file's ``tests`` section (``ask``, the
facts the answer must contain in ``expect``, the tools it must call in ``tools``)
of a version — the published one, a pinned ``SLUG@N`` or the draft — as the
caller, one fresh turn per case, with the caller's own rights exactly as
``cristal ask`` would (so a case passes or fails for that person's access). A
fact holds when the answer contains it (case and spacing aside); a tool holds
when the turn called it and the call succeeded. Test turns are neither stored
as conversations nor counted in ``cristal agent stats``.

``publish`` is ``store.publish`` for an agent whose policy says
``tests_must_pass``: the draft's tests run first, a failing case refuses the
publication, and a draft changed while they ran is refused too.
"""

from __future__ import annotations

import uuid
from typing import Any

from cristal.actions.registry import build_registry
from cristal.agents import store
from cristal.agents.ask import config_of
from cristal.agents.runtime import AgentConfig, TurnContext, TurnResult, run_turn
from cristal.config import Settings
from cristal.db import Database
from cristal.errors import CristalError, InvalidInput, NotFound
from cristal.identity.directory import member
from cristal.models.gateway import Gateway

__all__ = ["check_case", "publish", "run_tests"]


def _plain(text: str) -> str:
    return " ".join(text.casefold().split())


def check_case(case: dict[str, Any], result: TurnResult) -> list[str]:
    """Why the turn fails the case (empty: it passes)."""
    reasons = []
    answer = _plain(result.answer)
    for fact in case.get("expect") or []:
        if _plain(str(fact)) not in answer:
            reasons.append(f"the answer does not contain {fact!r}")
    for name in case.get("tools") or []:
        calls = [c for c in result.tool_calls if c.name == name]
        if not calls:
            reasons.append(f"{name} was not called")
        elif not any(c.status == "ok" for c in calls):
            reasons.append(f"{name} was called but did not succeed ({calls[-1].status}: {calls[-1].message})")
    return reasons


def _target(db: Database, org_slug: str, email: str, ref: str, draft: bool) -> tuple[str, int, dict[str, Any]]:
    """The slug, version (0: the draft) and stored spec of the version to test (the draft: only for those who may
    edit it)."""
    slug, pinned = store.parse_ref(ref)
    if draft and pinned is not None:
        raise InvalidInput("give either AGENT@N or --draft, not both")
    doc = store.show(db, org_slug, email, ref)
    if draft:
        if "draft" not in doc:
            raise NotFound(f"unknown agent {slug!r} in organization {org_slug!r}")  # as for anyone who may not edit it
        spec, version = dict(doc["draft"]), 0
    elif doc["version"] is None:
        raise InvalidInput(f"agent {slug!r} has no published version yet; test its draft with --draft")
    else:
        spec, version = dict(doc["spec"]), int(doc["version"])
    return str(doc["agent"]), version, spec


def _run(db: Database, settings: Settings, org_slug: str, email: str, target: tuple[str, int, dict[str, Any]],
         draft: bool) -> dict[str, Any]:
    slug, version, spec = target
    config: AgentConfig = config_of(slug, version, spec)
    with db.session() as s:
        _, principal = member(s, org_slug, email)
    cases: list[dict[str, Any]] = []
    if not spec.get("tests"):  # nothing to ask: no model needed
        return _report(config, draft, cases)
    registry, gateway = build_registry(), Gateway(settings, db)
    try:
        for n, case in enumerate(spec.get("tests") or [], start=1):
            ctx = TurnContext(db=db, settings=settings, principal=principal, conversation_id=f"test-{uuid.uuid4()}",
                              registry=registry, gateway=gateway)
            doc: dict[str, Any] = {"n": n, "ask": case["ask"], "expect": case.get("expect") or [],
                                   "tools": case.get("tools") or []}
            try:
                result = run_turn(ctx, config, [], str(case["ask"]))
            except CristalError as exc:  # the turn itself failed: a budget, the model, a refusal
                doc.update(passed=False, reasons=[f"the turn failed: {exc.message}"], answer=None, tool_calls=[])
            else:
                reasons = check_case(case, result)
                doc.update(passed=not reasons, reasons=reasons, answer=result.answer,
                           tool_calls=[c.as_dict() for c in result.tool_calls])
            cases.append(doc)
    finally:
        gateway.close()
    return _report(config, draft, cases)


def _report(config: AgentConfig, draft: bool, cases: list[dict[str, Any]]) -> dict[str, Any]:
    failed = sum(1 for c in cases if not c["passed"])
    return {"agent": config.slug, "version": None if draft else config.version, "draft": draft,
            "passed": failed == 0, "cases": cases, "failed": failed, "total": len(cases)}


def run_tests(db: Database, settings: Settings, org_slug: str, email: str, ref: str, *,
              draft: bool = False) -> dict[str, Any]:
    """Run the test cases of agent ``ref`` (``SLUG``, ``SLUG@N``, or its draft) as ``email``.

    ``{"agent", "version" (None for the draft), "draft", "passed", "failed", "total", "cases": [{"n", "ask",
    "expect", "tools", "passed", "reasons", "answer", "tool_calls"}]}``. An agent without test cases passes.
    """
    return _run(db, settings, org_slug, email, _target(db, org_slug, email, ref, draft), draft)


def _failures(report: dict[str, Any]) -> str:
    first = next(c for c in report["cases"] if not c["passed"])
    return f"case {first['n']} ({first['ask'][:60]!r}): {'; '.join(first['reasons'])}"


def publish(db: Database, settings: Settings, org_slug: str, email: str, slug: str, note: str = "") -> dict[str, Any]:
    """``store.publish``, after the draft's test cases pass when its policy says ``tests_must_pass``.

    The result carries ``tests`` (the report) when they ran; a failing case is ``InvalidInput`` and nothing is
    published.
    """
    try:
        target = _target(db, org_slug, email, slug, True)
    except NotFound:  # not theirs to edit: the store gives the refusal (or the unknown agent) it always gave
        return store.publish(db, org_slug, email, slug, note, settings=settings)
    spec = target[2]
    if not (spec.get("policy") or {}).get("tests_must_pass"):
        return store.publish(db, org_slug, email, slug, note, settings=settings)
    report = _run(db, settings, org_slug, email, target, True)
    if not report["passed"]:
        raise InvalidInput(f"agent {slug!r}: {report['failed']} of {report['total']} test cases fail, so it is not "
                           f"published (policy.tests_must_pass); {_failures(report)}")
    doc = store.publish(db, org_slug, email, slug, note, tested=spec, settings=settings)
    return {**doc, "tests": {k: report[k] for k in ("passed", "failed", "total")}}
