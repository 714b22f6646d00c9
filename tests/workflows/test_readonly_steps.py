"""``sql`` steps on "read-only" sources cannot write (issue 16, findings 3 and 4), tried the way the attacks were."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.db.schema import Organization
from cristal.knowledge import sources
from cristal.workflows.steps import Meta, StepError, run_sql
from tests.workflows.conftest import wf_cli, write  # noqa: F401  (fixture)

from ..conftest import OPERATOR

ATTACK = "SET TRANSACTION READ WRITE; DELETE FROM invoices WHERE id = 1; COMMIT"


@pytest.fixture
def invoices_pg(postgres_server) -> str:  # type: ignore[no-untyped-def]
    import psycopg

    url = postgres_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table invoices (id int primary key, amount numeric)")
        conn.execute("insert into invoices values (1, 180), (2, 990)")
    return url


def _ids(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("select id from invoices order by id")]


def _step(db: Database, query: str) -> object:
    with db.session() as s:
        org_id = s.scalar(select(Organization.id).where(Organization.slug == "acme"))
    meta = Meta(run_id="run_test", step_id="q", item_index=None, org_id=org_id, owner_email="fin@acme.example", timeout=30)
    return run_sql(db, meta, {"source": "erp", "query": query, "params": {}, "max_rows": 100})


@pytest.mark.postgres
def test_the_exact_attack_on_a_postgres_source_deletes_nothing(two_orgs: Database, invoices_pg: str) -> None:
    with two_orgs.session() as s:
        sources.add_source(s, OPERATOR, "acme", "erp", "sql", invoices_pg, acl="group:finance")
    for attack in (ATTACK, "BEGIN; DELETE FROM invoices WHERE id = 1; COMMIT", "COMMIT; DELETE FROM invoices WHERE id = 1",
                   "SELECT 1; DELETE FROM invoices WHERE id = 1",
                   "WITH d AS (DELETE FROM invoices WHERE id = 1 RETURNING *) SELECT * FROM d"):
        with pytest.raises(StepError, match="^query refused: ") as caught:
            _step(two_orgs, attack)
        assert caught.value.retriable is False
        assert _ids(invoices_pg) == [1, 2], attack
    assert _step(two_orgs, "select id from invoices where amount > 500") == [{"id": 2}]


@pytest.mark.postgres
def test_the_attack_through_cristal_workflow_run(wf_cli, invoices_pg: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert wf_cli("source", "add", "erp", "--org", "acme", "--kind", "sql", "--uri", invoices_pg, "--acl", "group:finance").code == 0
    flow = write(tmp_path / "attack.yaml", f'name: attack\nsteps:\n  - id: wipe\n    sql: {{source: erp, query: "{ATTACK}"}}\n')
    r = wf_cli("workflow", "run", str(flow), "--org", "acme", "--as", "fin@acme.example", "--json")
    assert r.code == 1 and "Traceback" not in r.stderr
    assert "query refused: give exactly one statement, not 3" in r.stderr.strip().splitlines()[-1]
    assert json.loads(r.stdout)["steps"][0]["status"] == "failed"
    assert _ids(invoices_pg) == [1, 2]


def test_vacuum_into_and_attach_through_a_sqlite_step_write_no_file(two_orgs: Database, tmp_path: Path) -> None:
    erp = tmp_path / "erp.db"
    con = sqlite3.connect(erp)
    con.executescript("create table invoices (id integer primary key, amount numeric); insert into invoices values (1, 180);")
    con.commit()
    con.close()
    with two_orgs.session() as s:
        sources.add_source(s, OPERATOR, "acme", "erp", "sql", f"sqlite:///{erp}", acl="group:finance")
    loot = tmp_path / "loot"
    loot.mkdir()
    for attack in (f"VACUUM INTO '{loot / 'erp-copy.db'}'", f"ATTACH DATABASE '{loot / 'new.db'}' AS x",
                   f"SELECT * FROM invoices; ATTACH DATABASE '{loot / 'new.db'}' AS x"):
        with pytest.raises(StepError, match="^query refused: "):
            _step(two_orgs, attack)
        assert list(loot.iterdir()) == [], attack
    assert _step(two_orgs, "select id, amount from invoices") == [{"id": 1, "amount": 180}]
