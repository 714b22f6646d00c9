"""``sql`` steps on "read-only" sources cannot write (issue 16, findings 3 and 4), tried the way the attacks were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.actions import build_registry
from cristal.config import load_settings
from cristal.db import Database
from cristal.db.schema import Organization
from cristal.knowledge import sources
from cristal.workflows.steps import Meta, StepError, perform
from tests.knowledge.connectors.test_sql_readonly import ATTACK, erp, pg_invoice_ids, pg_url  # noqa: F401  (fixtures)
from tests.workflows.conftest import wf_cli, write  # noqa: F401  (fixture)

from ..conftest import INSTALLATION


def _step(db: Database, query: str) -> object:
    with db.session() as s:
        org_id = s.scalar(select(Organization.id).where(Organization.slug == "acme"))
    meta = Meta(run_id="run_test", step_id="q", item_index=None, org_id=org_id, owner_email="fin@acme.example", timeout=30)
    return perform(build_registry(), db, load_settings(), "sql", meta, {"source": "erp", "query": query, "params": {}, "max_rows": 100})


@pytest.mark.postgres
def test_the_exact_attack_on_a_postgres_source_deletes_nothing(two_orgs: Database, pg_url: str) -> None:  # noqa: F811
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "erp", "sql", pg_url, acl="group:finance")
    for attack in (ATTACK, "BEGIN; DELETE FROM invoices WHERE id = 1; COMMIT", "COMMIT; DELETE FROM invoices WHERE id = 1",
                   "SELECT 1; DELETE FROM invoices WHERE id = 1",
                   "WITH d AS (DELETE FROM invoices WHERE id = 1 RETURNING *) SELECT * FROM d"):
        with pytest.raises(StepError, match=r"^query refused: ") as caught:
            _step(two_orgs, attack)
        assert caught.value.retriable is False
        assert pg_invoice_ids(pg_url) == [1, 2], attack
    assert _step(two_orgs, "select id from invoices where amount > 500") == [{"id": 2}]


@pytest.mark.postgres
def test_the_attack_through_cristal_workflow_run(wf_cli, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped  # noqa: F811
    assert wf_cli("source", "add", "erp", "--org", "acme", "--kind", "sql", "--uri", pg_url, "--acl", "group:finance").code == 0
    flow = write(tmp_path / "attack.yaml", f'name: attack\nsteps:\n  - id: wipe\n    sql: {{source: erp, query: "{ATTACK}"}}\n')
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--json")
    assert r.code == 1 and "Traceback" not in r.stderr
    assert "query refused: give exactly one statement, not 3" in r.stderr.strip().splitlines()[-1]
    assert json.loads(r.stdout)["steps"][0]["status"] == "failed"
    assert pg_invoice_ids(pg_url) == [1, 2]


def test_vacuum_into_and_attach_through_a_sqlite_step_write_no_file(two_orgs: Database, erp: Path, tmp_path: Path) -> None:  # noqa: F811
    with two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "erp", "sql", f"sqlite:///{erp}", acl="group:finance")
    loot = tmp_path / "loot"
    loot.mkdir()
    for attack in (f"VACUUM INTO '{loot / 'erp-copy.db'}'", f"ATTACH DATABASE '{loot / 'new.db'}' AS x",
                   f"SELECT * FROM invoices; ATTACH DATABASE '{loot / 'new.db'}' AS x"):
        with pytest.raises(StepError, match=r"^query refused: "):
            _step(two_orgs, attack)
        assert list(loot.iterdir()) == [], attack
    assert _step(two_orgs, "select id, amount from invoices where id = 1") == [{"id": 1, "amount": 180}]
