"""``cristal usage`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from cristal.db import Database
from cristal.testing import ScriptedModel, text


@pytest.fixture
def run(db: Database) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**os.environ, "CRISTAL_DATABASE_URL": db.url, "COLUMNS": "200"}  # isolated_settings cleaned the rest

    def cristal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cristal", *args], capture_output=True, text=True, env=env, timeout=120)

    return cristal


def test_usage_json_and_table(run, gateway, people) -> None:
    with ScriptedModel([text("one two"), text("three")]) as server:
        gw = gateway(server.base_url)
        gw.chat(people.alice, [{"role": "user", "content": "hi"}])
        gw.chat(people.boss, [{"role": "user", "content": "hi"}], model="house-llm")

    result = run("usage", "--org", "acme", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["org"] == "acme" and document["total"]["calls"] == 2
    assert {line["model"] for line in document["by_model"]} == {"gpt-4o-mini", "house-llm"}
    assert document["unpriced_models"] == ["house-llm"]

    table = run("usage", "--org", "acme", "--as", "boss@acme.example")
    assert table.returncode == 0, table.stderr
    assert "By model" in table.stdout and "alice@acme.example" in table.stdout
    assert "no price known for house-llm" in table.stderr


def test_usage_of_another_organization_is_denied(run, people) -> None:
    result = run("usage", "--org", "acme", "--as", "admin@globex.example")
    assert result.returncode != 0
    assert "unknown user" in result.stderr  # globex's admin is nobody in acme
    denied = run("usage", "--org", "acme", "--as", "alice@acme.example")
    assert denied.returncode == 5
    assert denied.stderr.strip().splitlines() == [denied.stderr.strip()] and "usage.read" in denied.stderr
