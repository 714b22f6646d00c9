"""The workflow interpreter: a workflow file's steps, run inside one DBOS workflow of the durable runtime.

How DBOS is used (the runtime itself -- launch, executors, recovery, the run
store, approvals, limits -- is :mod:`cristal.durable`)
----------------------------------------------------------------------------
* One DBOS workflow function, ``cristal_run``, interprets a compiled
  definition (carried in the run's input, so an edited file never changes a
  run under way). The DBOS workflow id *is* the Cristal run id.
* Every step action (sql, http, python, llm, ...), every approval
  request/check, and the owner's authorization at the start of a run is a DBOS
  step (``DBOS.run_step``): its result (or error) is checkpointed, so after a
  crash the run is replayed and completed steps return their checkpoint
  instead of running again. A step interrupted mid-way runs again with the
  *same* idempotency key ``run_id:step_id[:item_index]``.
* ``for_each`` fans out: with ``concurrency: N`` step ids are drawn in order
  with ``DBOS.reserve_step`` (deterministic) and run on N threads.
* ``workflow`` steps are DBOS child workflows with id ``run_id.step_id[.i]``.
* Approvals wait in ``DBOS.recv`` (durable, with a timeout), woken by the
  message a decision sends; the approval row is the truth, re-checked after
  every wake-up (:func:`cristal.durable.approvals.await_decision`).
* Step actions of a kind an organization has limited take a slot first
  (:mod:`cristal.durable.limits`), so the limit holds across all workers.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from cristal.actions import build_registry
from cristal.db import Database
from cristal.durable import approvals, limits, store
from cristal.durable.runtime import RUN_WORKFLOW, Runtime, current
from cristal.durable.schema import WorkflowRun
from cristal.errors import CristalError, InvalidInput
from cristal.workflows import templates
from cristal.workflows.steps import Meta, StepError, check_size, perform

WORKFLOW_NAME = RUN_WORKFLOW


class WorkflowFailed(CristalError):
    def __reduce__(self):  # type: ignore[no-untyped-def]  # pickle protocol
        return (WorkflowFailed, (self.message,))


class _Stop(Exception):
    """A rejected approval with ``on_reject: stop`` ends the run."""


# ---------------------------------------------------------------------------
# The DBOS workflow


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=50)
def cristal_run(payload: dict[str, Any]) -> dict[str, Any]:
    run_id = DBOS.workflow_id
    assert run_id is not None
    return Interpreter(current(), run_id, payload).execute()


class Interpreter:
    """One run of a workflow definition, executed on ``runtime`` (the DBOS runtime of this process)."""

    def __init__(self, runtime: Runtime, run_id: str, payload: dict[str, Any]) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.definition = payload["definition"]
        self.org_id = int(payload["org_id"])
        self.owner_email = payload["owner_email"]
        self.seed: dict[str, Any] = payload.get("seed") or {}
        self.db: Database = runtime.db
        self.settings = runtime.settings
        self.actions = build_registry()
        self.context: dict[str, Any] = {
            "inputs": payload["inputs"],
            "steps": {},
            "run": {"id": run_id, "owner": self.owner_email, "workflow": self.definition["name"]},
        }

    # -- the run

    def execute(self) -> dict[str, Any]:
        store.set_run_status(self.db, self.run_id, "running")
        try:
            DBOS.run_step({"name": "authorize-run"}, self._authorize_run)
            for position, step in enumerate(self.definition["steps"]):
                if step["id"] in self.seed:
                    seeded = self.seed[step["id"]]
                    self._remember(step, seeded["output"], seeded["status"])
                    store.step_finished(self.db, self.run_id, step["id"], -1, position, step["kind"], "reused",
                                        output=seeded["output"])
                    continue
                self._step(position, step)
            outputs = self.definition.get("outputs")
            if outputs:
                try:
                    result = check_size("outputs", templates.render(outputs, self.context))
                except (templates.TemplateFailure, StepError) as exc:
                    raise WorkflowFailed(f"outputs: {exc}") from None
            else:
                result = {k: v["output"] for k, v in self.context["steps"].items()}
        except _Stop as stop:
            store.set_run_status(self.db, self.run_id, "rejected", error=str(stop))
            return {"status": "rejected", "reason": str(stop)}
        except (WorkflowFailed, StepError, CristalError) as exc:
            store.set_run_status(self.db, self.run_id, "failed", error=str(exc))
            raise WorkflowFailed(str(exc)) from None
        store.set_run_status(self.db, self.run_id, "succeeded", result=result)
        return result  # type: ignore[no-any-return]  # rendered outputs: JSON, a mapping by the spec's schema

    def _authorize_run(self) -> None:
        from cristal.identity.authorize import require
        from cristal.identity.directory import in_org

        with self.db.session() as s:
            org, principal = store.run_owner(s, self.org_id, self.owner_email)
            require(s, principal, "workflow.run", in_org(org, "workflow", self.definition["name"]), request_id=self.run_id)

    def _remember(self, step: dict[str, Any], output: Any, status: str) -> None:
        entry = {"output": output, "status": status}
        if step["kind"] == "sql":
            entry["rows"] = output
        self.context["steps"][step["id"]] = entry

    def _fail(self, step: dict[str, Any], position: int, message: str, item: int = -1) -> WorkflowFailed:
        store.step_finished(self.db, self.run_id, step["id"], item, position, step["kind"], "failed", error=message)
        if item != -1:
            store.step_finished(self.db, self.run_id, step["id"], -1, position, step["kind"], "failed", error=message)
        return WorkflowFailed(f"step {step['id']!r} failed: {message}")

    def _step(self, position: int, step: dict[str, Any]) -> None:
        sid, kind = step["id"], step["kind"]
        key = f"{self.run_id}:{sid}"
        store.step_started(self.db, self.run_id, sid, -1, position, kind, key)
        try:
            if step.get("for_each") is not None:
                items = templates.render(step["for_each"], self.context)
                if not isinstance(items, list):
                    raise self._fail(step, position, f"for_each must give a list, got {type(items).__name__}")
                output = self._fan_out(position, step, items)
                status = "succeeded"
            else:
                when = step.get("when")
                if when is not None and not templates.render(when, self.context):
                    self._remember(step, None, "skipped")
                    store.step_finished(self.db, self.run_id, sid, -1, position, kind, "skipped")
                    return
                spec = templates.render(step["spec"], self.context)
                output = self._one(position, step, spec, None)
                status = "succeeded"
        except templates.TemplateFailure as exc:
            raise self._fail(step, position, str(exc)) from None
        try:
            output = check_size(sid, output)
        except StepError as exc:
            raise self._fail(step, position, str(exc)) from None
        self._remember(step, output, status)
        store.step_finished(self.db, self.run_id, sid, -1, position, kind, status, output=output)

    def _one(self, position: int, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        kind = step["kind"]
        if kind == "approval":
            return self._approval(position, step, spec)
        if kind == "workflow":
            return self._child(position, step, spec, item)
        meta = Meta(self.run_id, step["id"], item, self.org_id, self.owner_email, step.get("timeout"))
        try:
            result = DBOS.run_step({"name": meta.key.removeprefix(self.run_id + ":")}, self._action, kind, meta, spec, step.get("retry"))
        except StepError as exc:
            raise self._fail(step, position, f"{exc.message}", -1 if item is None else item) from None
        return result["output"]

    def _fan_out(self, position: int, step: dict[str, Any], items: list[Any]) -> list[Any]:
        chosen: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(items):
            ctx = {**self.context, "item": item}
            when = step.get("when")
            if when is not None and not templates.render(when, ctx):
                continue
            chosen.append((index, templates.render(step["spec"], ctx)))
        limit = int(step.get("concurrency") or 1)
        if step["kind"] == "workflow":
            return self._child_fan_out(position, step, chosen, limit)
        results: dict[int, Any] = {}
        errors: list[tuple[int, str]] = []
        if limit <= 1 or len(chosen) <= 1:
            for index, spec in chosen:
                results[index] = self._item(position, step, spec, index, None)
        else:
            # Step ids are drawn in item order here, so a replay finds every item's checkpoint.
            reservations = [(index, spec, DBOS.reserve_step()) for index, spec in chosen]
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"cristal-{step['id']}") as pool:
                futures = {index: pool.submit(contextvars.copy_context().run, self._item, position, step, spec, index, reservation)
                           for index, spec, reservation in reservations}
                for index, future in futures.items():
                    try:
                        results[index] = future.result()
                    except WorkflowFailed as exc:
                        errors.append((index, str(exc)))
            if errors:
                raise WorkflowFailed(errors[0][1])
        return [results[i] for i, _ in chosen]

    def _item(self, position: int, step: dict[str, Any], spec: dict[str, Any], index: int, reservation: Any) -> Any:
        meta = Meta(self.run_id, step["id"], index, self.org_id, self.owner_email, step.get("timeout"))
        store.step_started(self.db, self.run_id, step["id"], index, position, step["kind"], meta.key)
        name = meta.key.removeprefix(self.run_id + ":")
        try:
            if reservation is None:
                result = DBOS.run_step({"name": name}, self._action, step["kind"], meta, spec, step.get("retry"))
            else:
                result = reservation.run({"name": name}, self._action, step["kind"], meta, spec, step.get("retry"))
            output = check_size(f"{step['id']}[{index}]", result["output"])
        except StepError as exc:
            raise self._fail(step, position, f"item {index}: {exc.message}", index) from None
        store.step_finished(self.db, self.run_id, step["id"], index, position, step["kind"], "succeeded",
                            output=output, attempts=result["attempts"])
        return output

    # -- sub-workflows

    def _child_payload(self, spec: dict[str, Any]) -> dict[str, Any]:
        from cristal.workflows.spec import Compiled, parse_inputs

        definition = spec["definition"]
        inputs = parse_inputs(Compiled(Path(definition["file"]), definition), spec.get("inputs") or {})
        return {"definition": definition, "inputs": inputs, "org_id": self.org_id, "owner_email": self.owner_email}

    def _start_child(self, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        child_id = f"{self.run_id}.{step['id']}" + ("" if item is None else f".{item}")
        try:
            payload = self._child_payload(spec)
        except InvalidInput as exc:
            raise StepError(str(exc)) from None
        DBOS.run_step({"name": f"{step['id']}:register" + ("" if item is None else f":{item}")}, self._register_child,
                      child_id, payload)
        with SetWorkflowID(child_id):
            return DBOS.start_workflow(cristal_run, payload)

    def _child(self, position: int, step: dict[str, Any], spec: dict[str, Any], item: int | None) -> Any:
        try:
            handle = self._start_child(step, spec, item)
            return handle.get_result()
        except (WorkflowFailed, StepError) as exc:
            raise self._fail(step, position, str(exc)) from None

    def _child_fan_out(self, position: int, step: dict[str, Any], chosen: list[tuple[int, dict]], limit: int) -> list[Any]:
        results: list[Any] = []
        handles: list[tuple[int, Any]] = []
        try:
            for index, spec in chosen:
                handles.append((index, self._start_child(step, spec, index)))
                if len(handles) >= limit:
                    results.append(handles.pop(0)[1].get_result())
            while handles:
                results.append(handles.pop(0)[1].get_result())
        except (WorkflowFailed, StepError) as exc:
            raise self._fail(step, position, str(exc)) from None
        return results

    # -- approvals

    def _approval(self, position: int, step: dict[str, Any], spec: dict[str, Any]) -> Any:
        sid = step["id"]
        approval_id = DBOS.run_step({"name": f"{sid}:request"}, approvals.request, self.db, self.run_id, sid, self.org_id,
                                    self.owner_email, self.definition["name"], spec, step.get("timeout"))
        store.step_waiting(self.db, self.run_id, sid, position)
        state = approvals.await_decision(
            lambda: DBOS.run_step({"name": f"{sid}:check"}, approvals.check, self.db, approval_id),
            lambda seconds: DBOS.recv(topic=approval_id, timeout_seconds=seconds),
            self.settings.workflow_approval_poll_seconds)
        store.step_resumed(self.db, self.run_id, sid)
        output = {k: state[k] for k in ("approval_id", "decision", "by", "at", "comment")}
        if state["decision"] == "failed":
            raise self._fail(step, position, f"approval {approval_id} timed out with no decision")
        if state["decision"] == "cancelled":
            raise self._fail(step, position, f"approval {approval_id} was cancelled")
        if state["decision"] == "rejected" and spec.get("on_reject", "stop") == "stop":
            self._remember(step, output, "succeeded")
            store.step_finished(self.db, self.run_id, sid, -1, position, step["kind"], "rejected", output=output)
            raise _Stop(f"approval {approval_id} rejected by {state['by']}")
        return output

    def _register_child(self, child_id: str, payload: dict[str, Any]) -> None:
        with self.db.session() as s:
            if s.get(WorkflowRun, child_id) is not None:
                return
            parent = s.get(WorkflowRun, self.run_id)
            s.add(WorkflowRun(id=child_id, org_id=payload["org_id"], owner_user_id=parent.owner_user_id if parent else None,
                              owner_email=payload["owner_email"], name=payload["definition"]["name"],
                              file=payload["definition"].get("file", ""), definition=payload["definition"],
                              inputs=payload["inputs"], status="queued", parent_run_id=self.run_id))

    def _action(self, kind: str, meta: Meta, spec: dict[str, Any], retry: dict[str, Any] | None) -> dict[str, Any]:
        """One step action, retried per the step's ``retry`` (checkpointed by DBOS as a whole)."""
        attempts = int((retry or {}).get("attempts", 1))
        delay = float((retry or {}).get("backoff", 1.0))
        factor = float((retry or {}).get("factor", 2.0))
        action = self.actions.get(kind)
        limit = action.limit if action is not None else None
        for attempt in range(1, attempts + 1):
            try:
                # A slot per attempt (not per step): a retry's backoff sleep must not hold one.
                with limits.slot(self.db, meta.org_id, limit, meta.key, self.runtime.executor_id) if limit else nullcontext():
                    output = perform(self.actions, self.db, self.settings, kind, meta, spec)
                return {"output": check_size(meta.step_id, output), "attempts": attempt}
            except StepError as exc:
                if not exc.retriable or attempt == attempts:
                    raise StepError(exc.message + (f" (after {attempt} attempts)" if attempt > 1 else "")) from None
            except CristalError as exc:
                raise StepError(exc.message) from None
            time.sleep(delay)
            delay *= factor
        raise StepError("no attempt made")  # pragma: no cover

