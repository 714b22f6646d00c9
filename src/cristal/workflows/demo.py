"""The workflow part of the showcase: the sample expense review, stopped at its approval."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from cristal.config import CONFIG_FILE_NAME, Settings, load_settings
from cristal.db import Database
from cristal.errors import ConfigError, CristalError

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "workflows" / "expense-review.yaml"
ORG = "aozora-de"
AS = "lukas.weber@aozora-de.example"
# The one module the sample workflow's python steps call: pure functions, no files, no sockets.
SAMPLE_MODULE = "cristal.sample.checks"


def enable_sample_checks(home: Path) -> None:
    """Let the demo workspace's python steps call ``cristal.sample.checks`` (written into its ``config.toml``).

    Installations allow no python module by default; the demo's own workspace allows the sample's
    checks so that ``cristal workflow run expense-review.yaml`` and ``cristal worker`` work there
    too. A workspace that already lists its modules is left as it is.
    """
    path = home / CONFIG_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if "workflow_python_modules" in tomllib.loads(text):
            return
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    # At the top: a key after a [table] header would belong to that table.
    line = f'workflow_python_modules = ["{SAMPLE_MODULE}"]  # added by `cristal demo` for the sample workflow\n'
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(line + text, encoding="utf-8")


def demo_settings(home: Path | None) -> Settings:
    """This process's settings with the sample's checks allowed (whatever the environment lists)."""
    settings = load_settings(home=home) if home else load_settings()
    if settings.python_module_allowed(SAMPLE_MODULE):
        return settings
    return settings.model_copy(update={"workflow_python_modules": (*settings.workflow_python_modules, SAMPLE_MODULE)})


def run_demo_workflow(db: Database, home: Path, *, threshold: float = 200) -> dict[str, Any]:
    """Run ``expense-review.yaml`` as Lukas Weber (finance) in aozora-de until it waits for management.

    Needs the sample company and its ``erp`` source (``cristal demo`` loads both). Returns the run id,
    the approval id and the command that approves it; ``cristal worker`` then finishes the run.
    """
    from cristal.workflows import service
    from cristal.workflows.spec import load_workflow

    enable_sample_checks(home)
    settings = demo_settings(home)
    run = service.create_run(db, load_workflow(SAMPLE, settings=settings), ORG, AS, {"threshold": threshold})

    def until_approval(_handle: object) -> dict:
        deadline = time.monotonic() + 120
        while True:
            doc = service.run_status(db, run.run_id, AS)
            if doc["status"] in ("waiting", "succeeded", "failed", "rejected", "cancelled"):
                return doc
            if time.monotonic() > deadline:
                raise CristalError(f"demo workflow {run.run_id} did not reach its approval")
            time.sleep(0.05)

    doc = service.run_here(db, settings, run, watch=until_approval)
    if doc["status"] == "failed":
        raise CristalError(f"demo workflow {run.run_id} failed: {doc['error']}")
    steps = {step["id"]: step for step in doc["steps"]}
    approval = steps["sign-off"].get("approval") or {}
    checked = steps["check"].get("output") or []
    research = steps["hotel-limit"].get("output") or {}
    return {
        "run_id": run.run_id,
        "status": doc["status"],
        "approval_id": approval.get("id"),
        "approvers": approval.get("approvers"),
        "claims": len(checked),
        "flagged": sum(1 for c in checked if c.get("verdict") == "needs_review"),
        "research_citations": len(research.get("citations") or []),
        "research_disagreements": len(research.get("disagreements") or []),
        "approve_command": f"cristal approvals approve {approval.get('id')} --as anna.schmidt@aozora-de.example" if approval else None,
        "continue_command": "cristal worker",
    }
