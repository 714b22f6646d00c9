"""The REST API end to end over real HTTP: keys, errors, search as the caller, research, audit, the UI page."""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest
from sqlalchemy import select

from cristal.db.schema import AuditRecord
from cristal.identity.apikeys import revoke_api_key
from cristal.identity.directory import resolve_principal
from tests.server.conftest import IBAN, Company, LiveServer, error_of, person

# The tenancy-critical cases (keys, cross-organization reads, ACL-filtered search) also run on PostgreSQL.
BACKENDS = ("sqlite", "postgres")


def test_no_key_malformed_key_and_unknown_key_are_401(live: LiveServer, company: Company) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nonsense"},
                    {"Authorization": "Bearer cri_000000000000_wrong"},
                    {"Authorization": "Bearer " + company.key(person("eng", "acme")) + "x"}):
        r = httpx.get(f"{live.url}/api/v1/me", headers=headers)
        assert r.status_code == 401, headers
        assert error_of(r)["type"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_me_is_the_keys_user_in_the_keys_org(client, db_backend: str) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("fin", "globex")).get("/api/v1/me")
    assert r.status_code == 200
    assert r.json() == {"email": "fin@globex.example", "org": "globex", "role": "member", "groups": ["finance"],
                        "is_admin": False}
    assert r.headers["x-request-id"]


def test_revoked_key_is_refused_at_once(client, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    eng = person("eng", "acme")
    http = client(eng)
    assert http.get("/api/v1/me").status_code == 200
    prefix = company.key(eng).split("_")[1]
    with company.db.session() as s:
        revoke_api_key(s, resolve_principal(s, "acme", eng), "acme", prefix)
    r = http.get("/api/v1/me")
    assert r.status_code == 401
    assert "revoked" in error_of(r)["message"]


def test_search_hits_respect_document_acls_and_never_cross_organizations(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    def uris(email: str, query: str) -> list[str]:
        r = client(email).get("/api/v1/search", params={"q": query, "limit": 10, "mode": "keyword"})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        for h in hits:
            assert set(h) == {"doc_id", "chunk_id", "title", "uri", "score", "snippet", "lang"}
        return [h["uri"] for h in hits]

    # The engineer sees the organization-wide policy but not the finance-only bank details.
    eng = uris(person("eng", "acme"), "hotel cap")
    assert any(u.endswith("travel.md") for u in eng) and not any(u.endswith("bank.md") for u in eng)
    assert uris(person("eng", "acme"), "IBAN supplier") == []
    # The finance member sees both, of their own organization only.
    fin = client(person("fin", "acme")).post("/api/v1/search", json={"query": "IBAN supplier", "limit": 5, "mode": "keyword"})
    assert fin.status_code == 200
    text = json.dumps(fin.json())
    assert any(h["uri"].endswith("bank.md") for h in fin.json()["hits"])
    assert "/acme/" in text and "/globex/" not in text and IBAN["globex"] not in text
    # Globex's finance member, asking about acme's IBAN, finds nothing of acme's.
    other = client(person("fin", "globex")).get("/api/v1/search", params={"q": IBAN["acme"], "mode": "keyword"})
    assert other.status_code == 200 and "/acme/" not in other.text


def test_hybrid_search_is_the_default(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("eng", "acme")).get("/api/v1/search", params={"q": "hotel cap Munich"})
    assert r.status_code == 200
    assert r.json()["hits"][0]["uri"].endswith("travel.md")


def test_bad_input_is_400_with_one_line(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    http = client(person("eng", "acme"))
    cases = [
        http.post("/api/v1/search", content=b"{not json", headers={"Content-Type": "application/json"}),
        http.post("/api/v1/search", content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        http.post("/api/v1/search", json={"query": "x", "limit": 0}),
        http.post("/api/v1/search", json={"query": "x", "unknown": 1}),
        http.post("/api/v1/search", json={}),
        http.get("/api/v1/search", params={"q": ""}),
        http.get("/api/v1/search", params={"q": "x", "limit": "many"}),
        http.post("/api/v1/search", content=b"query=x", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    ]
    for r in cases:
        assert r.status_code == 400, r.text
        assert error_of(r)["type"] == "invalid_request"
    assert "not valid JSON" in error_of(cases[0])["message"]
    assert error_of(cases[2])["message"].startswith("limit:")


def test_oversized_body_is_413_declared_or_chunked(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    http = client(person("eng", "acme"))
    big = json.dumps({"query": "x" * (1024 * 1024 + 10)}).encode()
    r = http.post("/api/v1/search", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_of(r)["type"] == "body_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * 65536
        yield b"{}"

    r = http.post("/api/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_of(r)["type"] == "body_too_large"


def test_unknown_route_and_method_use_the_error_shape(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    http = client(person("eng", "acme"))
    assert error_of(http.get("/api/v1/nothing-here"))["type"] == "not_found"
    r = http.delete("/api/v1/search")
    assert r.status_code == 405 and error_of(r)["type"] == "method_not_allowed"


def test_audit_is_for_admins_of_the_callers_org_only(client, company: Company) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("eng", "acme")).get("/api/v1/audit")
    assert r.status_code == 403 and error_of(r)["type"] == "access_denied"
    client(person("eng", "acme")).get("/api/v1/search", params={"q": "hotel", "mode": "keyword"})
    r = client(person("admin", "acme")).get("/api/v1/audit", params={"limit": 50, "decision": "deny"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["org"] == "acme"
    assert all(rec["org"] == "acme" and rec["decision"] == "deny" for rec in doc["records"])
    assert any(rec["action"] == "audit.read" and rec["actor"].startswith("user:eng@acme.example") for rec in doc["records"])
    # Filters and a bound on limit.
    r = client(person("admin", "acme")).get("/api/v1/audit", params={"action": "knowledge.search", "limit": 5})
    assert r.status_code == 200 and 1 <= len(r.json()["records"]) <= 5
    assert {rec["action"] for rec in r.json()["records"]} == {"knowledge.search"}
    assert client(person("admin", "acme")).get("/api/v1/audit", params={"limit": 10**7}).status_code == 400
    # The search over HTTP was audited with the request's id.
    with company.db.session() as s:
        ids = set(s.scalars(select(AuditRecord.request_id).where(AuditRecord.action == "knowledge.search")))
    assert None not in ids and all(len(i) == 16 for i in ids)


def test_research_returns_the_design_shape_as_the_caller(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("eng", "acme")).post("/api/v1/research", json={"question": "What is the hotel cap in Munich?",
                                                                     "mode": "extractive", "max_seconds": 60})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {"question", "mode", "report", "citations"} <= set(doc)
    assert doc["mode"] == "extractive" and doc["citations"]
    assert all({"n", "doc_id", "uri", "quote"} <= set(c) for c in doc["citations"])
    assert "240" not in doc["report"]  # the finance-only figure is not the engineer's to read
    assert all(not c["uri"].endswith("bank.md") for c in doc["citations"])


def test_research_without_a_model_in_llm_mode_is_a_clear_error(client) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    r = client(person("eng", "acme")).post("/api/v1/research", json={"question": "What is the hotel cap?", "mode": "llm"})
    assert r.status_code == 502
    assert "CRISTAL_LLM_BASE_URL" in error_of(r)["message"]
    r = client(person("eng", "acme")).post("/api/v1/research", json={"question": "   "})
    assert r.status_code == 400 and "empty question" in error_of(r)["message"]


def test_ui_page_is_served_offline_with_a_strict_policy(live: LiveServer) -> None:
    r = httpx.get(live.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert "http://" not in r.text and "https://" not in r.text  # nothing loaded from elsewhere
    for needle in ("Sign in", "Search", "Approvals", "Runs", "sessionStorage", "/api/v1"):
        assert needle in r.text
    assert "innerHTML" not in r.text


@pytest.mark.parametrize("path", ["/api/v1/runs/run_doesnotexist", "/api/v1/approvals"])
def test_member_routes_need_a_key(live: LiveServer, path: str) -> None:
    assert httpx.get(live.url + path).status_code == 401


def test_research_beyond_the_servers_concurrency_is_429(company: Company, settings) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.server import Limits

    with LiveServer(company.db, settings, Limits(research_concurrency=0)) as server:
        r = httpx.post(server.url + "/api/v1/research", json={"question": "What is the hotel cap?"},
                       headers={"Authorization": f"Bearer {company.key(person('eng', 'acme'))}"})
    assert r.status_code == 429 and r.headers["retry-after"] == "10"
    assert "research runs are in progress" in error_of(r)["message"]


def test_an_unexpected_failure_is_a_500_without_details(tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    from cristal.config import Settings
    from cristal.db import Database

    empty = Database(f"sqlite:///{tmp_path / 'never-initialised.db'}")  # no tables: every query fails
    with LiveServer(empty, Settings(home=tmp_path / "home")) as server:
        r = httpx.get(server.url + "/api/v1/me", headers={"Authorization": "Bearer cri_abc_def"})
    empty.dispose()
    assert r.status_code == 500
    err = error_of(r)
    assert err["type"] == "server_error" and r.headers["x-request-id"] in err["message"]
    assert "sqlite" not in r.text.lower() and "api_keys" not in r.text
