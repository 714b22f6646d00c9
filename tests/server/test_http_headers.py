"""Issue 16, finding 14, over real HTTP: no-store on every API answer, two Authorization headers refused,
and an OpenAPI document that states the real error statuses and body (400, never 422)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server.conftest import Company, LiveServer, error_of, person

ClientFor = Callable[[str | None], httpx.Client]  # the `client` fixture: an HTTP client with that employee's key


def test_every_api_answer_is_no_store(client: ClientFor, live: LiveServer) -> None:
    eng = client(person("eng", "acme"))
    answers = {
        "200": eng.get("/api/v1/me"),
        "200 search": eng.get("/api/v1/search", params={"q": "hotel", "mode": "keyword"}),
        "400": eng.get("/api/v1/search", params={"q": "x", "limit": "many"}),
        "401": httpx.get(live.url + "/api/v1/me"),
        "403": eng.get("/api/v1/audit"),
        "404": eng.get("/api/v1/runs/run_0000000000000000"),
        "405": eng.delete("/api/v1/search"),
        "413": eng.post("/api/v1/search", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"}),
        "openapi": eng.get("/api/v1/openapi.json"),
        "models": eng.get("/v1/models"),
    }
    for what, r in answers.items():
        assert r.headers.get("cache-control") == "no-store", (what, r.status_code, dict(r.headers))
        assert r.headers["x-content-type-options"] == "nosniff", what
    # The UI page holds no data: it may be revalidated, and is never stored with an answer in it.
    assert httpx.get(live.url + "/").headers["cache-control"] == "no-cache"


def test_a_500_is_no_store_too(tmp_path: Path) -> None:
    from cristal.config import Settings
    from cristal.db import Database

    empty = Database(f"sqlite:///{tmp_path / 'never-initialised.db'}")
    with LiveServer(empty, Settings(home=tmp_path / "home")) as server:
        r = httpx.get(server.url + "/api/v1/me", headers={"Authorization": "Bearer cri_abc_def"})
    empty.dispose()
    assert r.status_code == 500 and r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("order", ["valid first", "valid second"])
def test_two_authorization_headers_are_refused(live: LiveServer, company: Company, order: str) -> None:
    # The attack: a second header after (or before) a valid one. The server used to take the first.
    valid = ("Authorization", "Bearer " + company.key(person("eng", "acme")))
    other = ("Authorization", "Bearer " + company.key(person("admin", "globex")))
    headers = [valid, other] if order == "valid first" else [other, valid]
    with httpx.Client(base_url=live.url) as http:
        r = http.get("/api/v1/me", headers=headers)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["type"] == "invalid_request" and "Authorization" in err["message"]


def test_openapi_documents_400_with_the_error_body_and_no_422(client: ClientFor) -> None:
    r = client(person("eng", "acme")).get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    # FastAPI's validation 422 is gone; a 422 is only an agent's spent turn budget, with the error body.
    with_422 = {p: ops["post"]["responses"]["422"] for p, ops in doc["paths"].items() if "422" in ops.get("post", {}).get("responses", {})}
    assert set(with_422) == {"/api/v1/agents/{ref}/ask", "/v1/chat/completions", "/api/v1/conversations",
                             "/api/v1/conversations/{conversation_id}/messages"}
    assert all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
               for r in with_422.values())
    assert doc["components"]["securitySchemes"]["apiKey"] == {**doc["components"]["securitySchemes"]["apiKey"],
                                                              "type": "http", "scheme": "bearer"}
    operations = [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 15
    for method, path, op in operations:
        for status in ("400", "401"):
            content = op["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
        assert op["security"] == [{"apiKey": []}], (method, path)
    # The documented body is what the server really answers for bad input.
    from cristal.server.openapi import ErrorBody

    bad = client(person("eng", "acme")).get("/api/v1/runs", params={"limit": 0})
    assert bad.status_code == 400
    ErrorBody.model_validate(bad.json())
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == set(bad.json())


def test_every_documented_operation_needs_a_key(live: LiveServer, client: ClientFor) -> None:
    doc = client(person("eng", "acme")).get("/api/v1/openapi.json").json()
    with httpx.Client(base_url=live.url) as anonymous:
        for path, ops in doc["paths"].items():
            url = path.replace("{", "x").replace("}", "")
            for method in ops:
                r = anonymous.request(method.upper(), url, json={} if method == "post" else None)
                assert r.status_code == 401, (method, path, r.status_code)
                assert error_of(r)["type"] == "unauthorized"


def test_a_405_names_every_method_of_the_path(client: ClientFor) -> None:
    # Found by `make fuzz --checks all`: GET and POST /api/v1/search are two routes, and the 405 named only GET.
    r = client(person("eng", "acme")).request("OPTIONS", "/api/v1/search")
    assert r.status_code == 405 and error_of(r)["type"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, POST"
    for method in ("DELETE", "HEAD"):  # what Allow leaves out is really refused
        assert client(person("eng", "acme")).request(method, "/api/v1/runs/run_0000000000000000").status_code == 405
    assert client(person("eng", "acme")).delete("/api/v1/runs/run_0").headers["allow"] == "GET"
