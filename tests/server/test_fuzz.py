"""Schemathesis against the served OpenAPI document, as a member, over real HTTP: no 5xx, answers as documented.

A small, deterministic version of ``make fuzz`` (scripts/fuzz.py): a few
generated cases per operation, the same checks, one live server for the
whole module. Bad input must be the documented 400, never a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from cristal.config import Settings
from cristal.db import Database
from cristal.testing.fuzzing import CHECKS, MODEL, fuzz_model, fuzz_workspace
from tests.server.conftest import LiveServer

EXAMPLES_PER_OPERATION = 5


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The served API's base URL and acme's member's key."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    url, key = fuzz_workspace(root)
    db = Database(url)
    with fuzz_model() as model:
        config = Settings(home=root / "home", llm_base_url=model.base_url, llm_model=MODEL, llm_api_key="fuzz")
        with LiveServer(db, config) as server:
            yield server.url, key
    db.dispose()


def test_no_operation_answers_a_server_error(fuzzed: tuple[str, str]) -> None:
    base, key = fuzzed
    headers = {"Authorization": f"Bearer {key}"}
    api = schemathesis.openapi.from_url(base + "/api/v1/openapi.json")
    run_checks = [getattr(checks, name) for name in CHECKS]
    failures: list[str] = []
    tried: list[str] = []
    for result in api.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def exercise(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=run_checks, timeout=150)

            try:
                exercise()
            except Unsatisfiable:  # no invalid value exists for an operation without inputs
                continue
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation is tried, all failures reported
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                failures.append(f"{operation.label} ({mode.value}): " + " | ".join(lines[:8]))
            tried.append(f"{operation.label} ({mode.value})")
    assert len({t.rsplit(" (", 1)[0] for t in tried}) >= 15, tried
    assert failures == []
