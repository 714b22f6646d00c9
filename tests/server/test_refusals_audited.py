"""Issue 16, finding 9, over real HTTP: 15 requests with bad API keys and 6 requests for another
organization's run left no audit record. Now each is recorded, within limits per window, and a summary
record counts what the limits left out, with the counts shared by every server process on the database.

The servers here use a window of years, so no request of a test falls into a second window; windows are
closed by calling ``sweep(now=...)`` with a time after the window, never by waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx2 as httpx
import pytest

from cristal.audit.log import AuditEntry, query_audit
from cristal.config import Settings
from cristal.identity.apikeys import revoke_api_key
from cristal.identity.directory import resolve_principal
from cristal.server import Limits
from tests.server.conftest import Cli, Company, LiveServer, error_of, person

BACKENDS = ("sqlite", "postgres")

LIMITS = Limits(audit_window_seconds=10**9)  # one window for the whole test (it started in 2001)
AFTER_THE_WINDOW = datetime(2040, 1, 1, tzinfo=UTC)


@pytest.fixture
def server(company: Company, settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(company.db, settings, LIMITS) as live:
        yield live


def sweep(live: LiveServer) -> int:
    return live.app.state.cristal.refusals.throttle.sweep(now=AFTER_THE_WINDOW)


def records(company: Company, org: str | None, action: str) -> list[AuditEntry]:
    with company.db.session() as s:
        return query_audit(s, org, action=action)


def test_fifteen_bad_keys_are_recorded_up_to_the_limit_then_summarized(server: LiveServer, company: Company,
                                                                      cli: Cli) -> None:
    bad = [f"cri_{n:012x}_guessed-secret-{n}" for n in range(13)] + ["nonsense", "cri_x"]
    for key in bad:
        r = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401 and error_of(r)["type"] == "unauthorized"
    found = records(company, None, "apikey.authenticate")
    assert len(found) == LIMITS.audit_failed_keys_per_source == 10
    first = found[-1]
    assert (first.actor, first.decision, first.resource, first.reason) == (
        "anonymous:127.0.0.1", "deny", "apikey", "invalid API key")
    assert first.details == {"source": "127.0.0.1", "method": "GET", "path": "/api/v1/me"} and first.request_id
    assert all("guessed-secret" not in json.dumps(r.as_dict()) for r in found)  # no secret reaches the record
    # The window ends: one record says how many were left out.
    assert sweep(server) == 1
    summary = records(company, None, "apikey.authenticate")[0]
    assert summary.details["suppressed"] == 5 and summary.reason.startswith("5 more suppressed")
    assert summary.actor == "anonymous:127.0.0.1" and "per source address" in summary.reason
    # The installation principal reads them with `cristal audit` (no --org); an employee may not.
    shown = cli("audit", "--json", "--action", "apikey.authenticate")
    assert shown.code == 0, shown.stderr
    assert len(json.loads(shown.stdout)["records"]) == 11
    assert cli("audit", "--as", person("admin", "acme")).code == 2  # --as needs --org: no org, no employee


def test_a_wrong_secret_or_revoked_key_is_recorded_for_the_keys_organization(server: LiveServer, company: Company) -> None:
    eng = person("eng", "acme")
    key = company.key(eng)
    prefix = key.split("_")[1]
    r = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer cri_{prefix}_not-the-secret"})
    assert r.status_code == 401
    with company.db.session() as s:
        revoke_api_key(s, resolve_principal(s, "acme", eng), "acme", prefix)
    assert httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    # acme's admin sees both attempts on acme's key over the API; globex's sees nothing of them.
    admin = {"Authorization": f"Bearer {company.key(person('admin', 'acme'))}"}
    doc = httpx.get(server.url + "/api/v1/audit", params={"action": "apikey.authenticate"}, headers=admin).json()
    assert [(r["resource"], r["reason"]) for r in doc["records"]] == [
        (f"apikey:{prefix}", "this API key has been revoked"), (f"apikey:{prefix}", "invalid API key")]
    other = {"Authorization": f"Bearer {company.key(person('admin', 'globex'))}"}
    assert httpx.get(server.url + "/api/v1/audit", params={"action": "apikey.authenticate"},
                     headers=other).json()["records"] == []
    assert records(company, None, "apikey.authenticate") == []
    # A request without any key is not a failed login (every browser before sign-in sends one).
    assert httpx.get(server.url + "/api/v1/me").status_code == 401
    assert len(records(company, "acme", "apikey.authenticate")) == 2


def test_requests_for_another_organizations_run_are_404_and_recorded(server: LiveServer, company: Company) -> None:
    acme_fin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {company.key(person('fin', 'acme'))}"})
    intruder = httpx.Client(base_url=server.url,
                            headers={"Authorization": f"Bearer {company.key(person('fin', 'globex'))}"})
    r = acme_fin.post("/api/v1/workflows/runs", json={"workflow": "name: pay\nsteps:\n  - id: ok\n    approval: "
                                                                  "{approvers: [\"group:finance\"]}\n"})
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    probes = [("GET", f"/api/v1/runs/{run_id}"), ("POST", f"/api/v1/runs/{run_id}/cancel")] * 3
    for method, path in probes:
        r = intruder.request(method, path)
        assert r.status_code == 404 and error_of(r)["message"] == f"unknown run {run_id!r}"  # answered as before
    found = records(company, "globex", "http.not_found")
    assert len(found) == 6
    assert {(r.actor, r.decision) for r in found} == {("user:fin@globex.example@globex", "deny")}
    assert sorted({r.resource for r in found}) == [f"GET /api/v1/runs/{run_id}", f"POST /api/v1/runs/{run_id}/cancel"]
    assert found[0].reason == f"unknown run {run_id!r}" and found[0].request_id
    # The run's organization learns nothing new, and the run is untouched.
    assert records(company, "acme", "http.not_found") == []
    assert acme_fin.get(f"/api/v1/runs/{run_id}").json()["status"] == "queued"
    # Probing on: past the per-caller limit the requests are counted, then summarized.
    for n in range(20):
        assert intruder.post(f"/api/v1/approvals/appr_{n:04d}/approve", json={}).status_code == 404
    assert len(records(company, "globex", "http.not_found")) == LIMITS.audit_not_found_per_caller == 20
    assert sweep(server) == 1
    summary = records(company, "globex", "http.not_found")[0]
    assert summary.actor == "user:fin@globex.example@globex" and summary.details["suppressed"] == 6
    acme_fin.close()
    intruder.close()


def test_two_server_processes_share_the_limit_and_write_one_summary_at_shutdown(company: Company,
                                                                               settings: Settings) -> None:
    # Two apps on one database are what two `cristal serve` processes are: the counts are in the database.
    with LiveServer(company.db, settings, LIMITS) as a, LiveServer(company.db, settings, LIMITS) as b:
        for n in range(16):
            url = (a if n % 2 else b).url
            assert httpx.get(url + "/api/v1/me", headers={"Authorization": f"Bearer cri_{n:012x}_x"}).status_code == 401
        assert len(records(company, None, "apikey.authenticate")) == 10
        for live in (a, b):  # both stop after the window: each sweeps on its way out
            live.app.state.cristal.refusals.throttle.clock = lambda: AFTER_THE_WINDOW
    found = records(company, None, "apikey.authenticate")
    assert len(found) == 11 and found[0].details["suppressed"] == 6


def test_each_process_sweeps_once_per_window(company: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.server import refusals as module

    recorder = module.Refusals(company.db, window_seconds=300, failed_keys_per_source=1, failed_keys_per_org=1,
                               not_found_per_caller=1)
    waits: list[float] = []
    sweeps: list[int] = []

    async def no_wait(seconds: float) -> None:  # the loop's timing, without the waiting
        waits.append(seconds)
        if len(waits) > 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(module.asyncio, "sleep", no_wait)
    monkeypatch.setattr(recorder, "sweep", lambda: sweeps.append(1))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(recorder.sweep_periodically())
    assert waits == [300, 300, 300, 300] and len(sweeps) == 3
