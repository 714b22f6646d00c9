"""The sample expense review stops at management's approval; management approves; a worker finishes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

SCRIPT = """
import json, sys
from pathlib import Path
from cristal.db import Database
from cristal.identity.principal import Principal
from cristal.sample.company import load_company
from cristal.sample.knowledge import connect_sources
from cristal.workflows.demo import run_demo_workflow
home = Path(sys.argv[1]); db = Database(sys.argv[2]); db.upgrade()
from cristal.knowledge.sync import sync_source
with db.session() as s:
    op = Principal.installation("demo"); load_company(s, op); sources = connect_sources(s, op, home)
for org, name in sources:
    if org == "aozora-de":
        sync_source(db, op, org, name)
print(json.dumps(run_demo_workflow(db, home)))
"""


def test_demo_workflow_waits_for_management(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(home), cli.env["CRISTAL_DATABASE_URL"]], env=cli.env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "waiting" and result["approvers"] == ["group:management"]
    assert result["claims"] >= 3 and result["flagged"] >= 1
    # The research step found the Munich hotel limit and noticed that two documents disagree on it.
    assert result["research_citations"] >= 1 and result["research_disagreements"] >= 1
    # Lukas (finance) may not approve his own request; Anna (management) may.
    assert cli("approvals", "approve", result["approval_id"], "--as", "lukas.weber@aozora-de.example").code == 5
    worker = subprocess.Popen([sys.executable, "-m", "cristal", "worker"], env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        args = result["approve_command"].split()[1:]
        assert cli(*args).code == 0
        deadline = time.monotonic() + 90
        while True:
            doc = json.loads(cli("workflow", "status", result["run_id"], "--as", "lukas.weber@aozora-de.example", "--json").stdout)
            if doc["status"] != "waiting" and doc["status"] != "running":
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.2)
        assert doc["status"] == "succeeded" and doc["result"]["decision"] == "approved"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
