"""The agents part of ``cristal demo``: the sample company's three agents, published, and asked by employees.

Anna Schmidt (admin of aozora-de) creates and publishes the agents of
``cristal/sample/agents/`` and shares them with the organization. Then, with a
scripted model on loopback (no API key, no network) standing in for the LLM:

* the travel-and-expense helper answers the same question in German, Japanese
  and English from the policies, with verified citations;
* the ERP analyst is asked the same question by Lukas Weber (finance: the ERP
  answers) and Jonas Becker (sales: the ERP source refuses him), each with
  their own rights;
* the expense filer submits Jonas's draft claim in the sample Expenses app
  through the Operator, as a durable run worked by this process (as
  ``cristal worker`` would); it stops at finance's approval, which Lukas
  gives, and the app's own database shows the claim submitted.

The scripted model only stands in for the model's text: every search, query,
page and approval is the real thing.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cristal.config import Settings
from cristal.db import Database
from cristal.errors import AlreadyExists, CristalError

AGENTS_DIR = Path(__file__).resolve().parents[1] / "sample" / "agents"
ORG = "aozora-de"
OWNER = "anna.schmidt@aozora-de.example"
FINANCE = "lukas.weber@aozora-de.example"
SALES = "jonas.becker@aozora-de.example"
TRAVEL, ANALYST, FILER = "travel-expense-helper", "erp-analyst", "expense-filer"
TRAVEL_QUESTIONS = {
    "de": "Wie hoch ist die Hotelobergrenze in München?",
    "ja": "ミュンヘンのホテル宿泊費の上限はいくらですか？",
    "en": "What is the hotel cap per night in Munich?",
}
ANALYST_QUESTION = "Welche Spesen über 200 EUR sind noch offen?"
FILER_QUESTION = "Bitte reiche meinen Spesenentwurf für das Taxi von der Messe München zum Hotel (38,40 EUR) zur Freigabe ein."
SUBMIT_TASK = "expenses-submit-draft"
EPISODE_DAY = date(2025, 10, 31)  # the apps judge dates against "today"


def publish_sample_agents(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """Create (once) and publish (when unpublished) the sample agents as the organization's admin."""
    from cristal.agents import store
    from cristal.agents.definition import load_agent

    published = []
    for path in sorted(AGENTS_DIR.glob("*.yaml")):
        definition = load_agent(path)
        try:
            store.create(db, definition, ORG, OWNER, settings=settings)
        except AlreadyExists:
            pass  # a second demo keeps the agent (and its versions) as they are
        if store.show(db, ORG, OWNER, definition.name)["version"] is None:
            store.publish(db, ORG, OWNER, definition.name, "sample agent", settings=settings)
        doc = store.show(db, ORG, OWNER, definition.name)
        published.append({"agent": definition.name, "version": doc["version"], "description": definition.description,
                          "tools": [next(iter(t)) if isinstance(t, dict) else t for t in definition.tools]})
    return published


# ---------------------------------------------------------------------------
# The scripted model: what a model would say, given what the tools returned


def _tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m.get("role") == "tool"]


def _passage(results: list[dict[str, Any]], needle: str, uri: str = "") -> int | None:
    for result in results:
        for p in (result.get("output") or {}).get("passages", []) if isinstance(result.get("output"), dict) else []:
            if needle in p["text"] and uri in p["uri"]:
                return int(p["n"])
    return None


def _travel(body: dict[str, Any], question: str, results: list[dict[str, Any]]) -> Any:
    from cristal.testing.scripted_model import text, tool_call

    if not results:  # a model searches in the documents' language whatever the question's
        return tool_call("search_knowledge", {"query": "Hotelobergrenze München 180 EUR 150 EUR"})
    new, old = _passage(results, "180 EUR"), _passage(results, "150 EUR", "reisekostenrichtlinie")
    if "ホテル" in question:
        return text(f"ミュンヘンのホテル宿泊費の上限は180 EURです [{new}]。"
                    f"旅費規程では以前150 EURでしたが、新しい経理部の通知が優先されます [{old}]。")
    if "Munich" in question:
        return text(f"The hotel cap in Munich is 180 EUR per night [{new}]. "
                    f"The older travel policy still says 150 EUR [{old}].")
    return text(f"Die Hotelobergrenze in München liegt bei 180 EUR pro Nacht [{new}]. "
                f"Die ältere Reisekostenrichtlinie nennt noch 150 EUR [{old}].")


def _analyst(results: list[dict[str, Any]]) -> Any:
    from cristal.testing.scripted_model import text, tool_call

    if not results:
        return tool_call("sql", {"query": "pending_over", "params": {"org": ORG, "min": 200}})
    last = results[-1]
    if last.get("status") != "ok":
        return text("Ich darf die ERP-Datenbank für Sie nicht lesen: " + str(last.get("reason") or last.get("error")))
    rows = last["output"]
    lines = [f"#{r['id']} {r['employee_email']}: {r['amount']} {r['currency']} ({r['category']}, {r['date']})" for r in rows]
    return text(f"{len(rows)} offene Spesen über 200 EUR: " + "; ".join(lines))


def _filer(start_url: str, results: list[dict[str, Any]]) -> Any:
    from cristal.sample.webapps.tasks import TASKS
    from cristal.testing.scripted_model import text, tool_call

    if not results:
        task = next(t for t in TASKS if t.id == SUBMIT_TASK)
        return tool_call("operate", {"task": task.instruction, "start_url": start_url})
    out = results[-1].get("output") or {}
    if out.get("status") == "waiting_for_approval":
        return text(f"Die Einreichung wartet auf die Freigabe {out['approval_id']} durch "
                    f"{', '.join(out['approvers'])} (Lauf {out['run_id']}).")
    return text(f"Lauf {out.get('run_id')}: {out.get('status')} {out.get('error') or ''}".strip())


class DemoModel:
    """Answers the agents' turns from what their tools returned, and the Operator's steps from a script."""

    def __init__(self, start_url: str) -> None:
        from cristal.operator.scripted import act
        from cristal.testing.scripted_model import tool_call

        self.start_url = start_url
        self.operator: list[Any] = [act("fill", 'textbox "E-mail address"', text=SALES), act("click", 'button "Sign in"'),
                         act("click", 'link "Claim 101"'), act("click", 'button "Submit for approval"'),
                         act("click", 'button "Confirm submission"'), tool_call("done", {"result": "submitted claim 101"})]

    def __call__(self, body: dict[str, Any]) -> Any:
        tools = {t["function"]["name"] for t in body.get("tools") or []}
        if "click" in tools:  # the Operator, in the run the expense filer started
            if not self.operator:
                raise CristalError("the demo Operator script is used up")
            step = self.operator.pop(0)
            return step(body) if callable(step) else step
        question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        results = _tool_results(body)
        if "search_knowledge" in tools:
            return _travel(body, question, results)
        if "sql" in tools:
            return _analyst(results)
        return _filer(self.start_url, results)


# ---------------------------------------------------------------------------
# The showcase


def _asked(doc: dict[str, Any], email: str, question: str) -> dict[str, Any]:
    return {"agent": doc["agent"], "version": doc["version"], "as": email, "question": question, "answer": doc["answer"],
            "citations": doc["citations"], "tool_calls": doc["tool_calls"], "conversation_id": doc["conversation_id"]}


def _approve_until_done(db: Database, run_id: str, owner: str, approver: str, timeout: float = 90.0) -> dict[str, Any]:
    """Approve each of the run's pending approvals as ``approver`` until the run (of ``owner``) ends."""
    from cristal.durable.approvals import decide
    from cristal.durable.schema import WorkflowApproval
    from cristal.workflows import service

    approved: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            pending = list(s.scalars(select(WorkflowApproval.id).where(WorkflowApproval.run_id == run_id,
                                                                        WorkflowApproval.status == "pending")))
        for approval_id in pending:
            decide(db, approval_id, approver, "approve", comment="checked against the travel policy")
            approved.append(approval_id)
        doc = service.run_status(db, run_id, owner)
        if doc["status"] in ("succeeded", "failed", "cancelled", "rejected"):
            return {"status": doc["status"], "approved": approved, "error": doc.get("error")}
        time.sleep(0.1)
    raise CristalError(f"the demo Operator run {run_id} did not finish in {timeout:.0f} s")


def run_demo_agents(db: Database, settings: Settings, home: Path) -> dict[str, Any]:
    """Publish the sample agents and ask them as different employees (see the module's docstring)."""
    import cristal.workflows.engine  # noqa: F401 - registers the workflow DBOS runs, before the runtime launches
    from cristal.agents.ask import ask
    from cristal.durable.runtime import launch, shutdown
    from cristal.sample.webapps import AppState, serve_webapps
    from cristal.sample.webapps.store import seed_database
    from cristal.sample.webapps.tasks import TASKS
    from cristal.testing.scripted_model import ScriptedModel

    apps_db = home / "sample" / "webapps-agents.db"
    seed_database(apps_db, overwrite=True)
    task = next(t for t in TASKS if t.id == SUBMIT_TASK)
    summary: dict[str, Any] = {}
    with serve_webapps(apps_db, today=lambda: EPISODE_DAY) as apps:
        demo_model = DemoModel(apps.url(task.start_path))
        with ScriptedModel([], default=demo_model) as model:
            cfg = settings.model_copy(update={"llm_base_url": model.base_url, "llm_api_key": "scripted",
                                              "llm_model": "scripted", "llm_max_retries": 0,
                                              "agent_run_wait_seconds": 60.0, "worker_poll_seconds": 0.05,
                                              "operator_approval_poll_seconds": 0.1})
            summary["published"] = publish_sample_agents(db, cfg)
            asks = [_asked(ask(db, cfg, ORG, SALES, TRAVEL, q), SALES, q) for q in TRAVEL_QUESTIONS.values()]
            asks += [_asked(ask(db, cfg, ORG, who, ANALYST, ANALYST_QUESTION), who, ANALYST_QUESTION) for who in (FINANCE, SALES)]
            launch(db, cfg, kind="worker", worker_concurrency=2)  # this process works the queue, as `cristal worker` does
            try:
                filed = _asked(ask(db, cfg, ORG, SALES, FILER, FILER_QUESTION), SALES, FILER_QUESTION)
                asks.append(filed)
                run_id = filed["tool_calls"][0].get("approval_id") and _run_of(db, filed["tool_calls"][0]["approval_id"])
                if not run_id:
                    raise CristalError(f"the expense filer did not stop for an approval: {filed['tool_calls']}")
                summary["operator_run"] = {"run_id": run_id, "waited_for": filed["tool_calls"][0]["approval_id"],
                                           "approver": FINANCE, **_approve_until_done(db, run_id, SALES, FINANCE)}
            finally:
                shutdown()
        summary["operator_run"]["claim_submitted"] = task.check(AppState(apps_db))
    summary["asks"] = asks
    return summary


def _run_of(db: Database, approval_id: str) -> str | None:
    from cristal.durable.schema import WorkflowApproval

    with db.session() as s:
        row = s.get(WorkflowApproval, approval_id)
        return row.run_id if row else None
