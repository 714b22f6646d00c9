"""Issue 16, finding 12: an admin minted an API key for a member and decided an approval reserved to that member.

The rule now: only the employee themself mints a key for themself (the CLI
with ``--as`` their own address). An admin may list and revoke a member's
keys, never mint one; the installation principal (the CLI without ``--as``)
may not either.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2 as httpx
from sqlalchemy import func, select

from cristal.db.schema import ApiKey, AuditRecord, User
from tests.server.conftest import Cli, Company, LiveServer, Worker, error_of, person, wait_for

SIGN_OFF = """\
name: supplier-payment
steps:
  - id: sign-off
    approval: {approvers: ["user:fin@acme.example"], message: "Pay the supplier 9,800 EUR?"}
"""


def keys_of(company: Company, email: str) -> int:
    with company.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(ApiKey).join(User, User.id == ApiKey.user_id)
                            .where(User.email == email)) or 0)


def test_an_admin_cannot_mint_a_members_key_to_decide_their_approval(client: Callable[[str | None], httpx.Client],
                                                                      company: Company, cli: Cli, live: LiveServer) -> None:
    fin, admin = person("fin", "acme"), person("admin", "acme")
    r = client(fin).post("/api/v1/workflows/runs", json={"workflow": SIGN_OFF})
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    with Worker(company):
        doc = wait_for(lambda: (d := client(fin).get(f"/api/v1/runs/{run_id}").json())["status"] == "waiting" and d,
                       what="the run to wait for fin's approval")
        approval_id = doc["steps"][0]["approval"]["id"]
        before = keys_of(company, fin)

        # The attack, step 1: the admin mints a key for the member.
        minted = cli("apikey", "create", fin, "--org", "acme", "--as", admin, "--json")
        assert minted.code == 5, (minted.stdout, minted.stderr)
        assert "only the user themself may do this, not an admin" in minted.stderr
        assert minted.stdout == "" and "Traceback" not in minted.stderr
        assert keys_of(company, fin) == before
        # The installation principal (no --as) may not mint one either.
        assert cli("apikey", "create", fin, "--org", "acme").code == 5
        assert keys_of(company, fin) == before

        # Step 2 has no key to use: the admin's own key may not decide an approval reserved to fin.
        r = client(admin).post(f"/api/v1/approvals/{approval_id}/approve", json={"comment": "as fin"})
        assert r.status_code == 403 and error_of(r)["type"] == "access_denied"
        pending = client(fin).get("/api/v1/approvals").json()["approvals"]
        assert [(a["id"], a["status"]) for a in pending] == [(approval_id, "pending")]

        # The attempt is on the organization's record, and fin's own key still decides.
        with company.db.session() as s:
            denied = s.scalars(select(AuditRecord).where(AuditRecord.action == "apikey.create",
                                                         AuditRecord.decision == "deny")).all()
        assert [d.actor for d in denied][:1] == [f"user:{admin}@acme"] and denied[0].org_slug == "acme"
        r = client(fin).post(f"/api/v1/approvals/{approval_id}/approve", json={})
        assert r.status_code == 200 and r.json()["decided_by"] == fin


def test_the_member_mints_their_own_key_and_the_admin_sees_and_revokes_it(cli: Cli, company: Company) -> None:
    eng, admin = person("eng", "acme"), person("admin", "acme")
    made = cli("apikey", "create", eng, "--org", "acme", "--as", eng, "--name", "laptop", "--json")
    assert made.code == 0, made.stderr
    prefix = json.loads(made.stdout)["prefix"]
    listed = cli("apikey", "list", eng, "--org", "acme", "--as", admin, "--json")
    assert listed.code == 0 and prefix in [k["prefix"] for k in json.loads(listed.stdout)["keys"]]
    assert cli("apikey", "revoke", prefix, "--org", "acme", "--as", admin).code == 0
