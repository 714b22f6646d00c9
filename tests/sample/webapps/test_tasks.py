"""Every task's check is false on the seed, true after doing the task over HTTP, and false after a near miss."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cristal.sample.webapps import AppState, WebApps
from cristal.sample.webapps.tasks import TASKS, TASKS_BY_ID, UPLOADS, WebTask

from .conftest import Client, created_id, new_client


def _taxi(c: Client) -> None:
    assert c.post("/expenses/new", {"date": "2025-10-02", "category": "travel", "amount": "42.50", "currency": "EUR",
                                    "description": "Taxi Hauptbahnhof to Klinikum Rheinland"}).status == 303


def _yen(c: Client) -> None:
    claim_id = created_id(c.post("/expenses/new", {"date": "2025-10-20", "category": "travel", "amount": "3200",
                                                   "currency": "JPY", "description": "Taxi to Toto Medical Group"}))
    assert c.post(f"/expenses/{claim_id}/submit").status == 303


def _address(customer_id: int, form: dict[str, str]) -> Callable[[Client], None]:
    def solve(c: Client) -> None:
        assert c.post(f"/customers/{customer_id}/edit", form).status == 303

    return solve


TRAVEL = {"purpose": "Customer workshop Berner Spital", "destination": "Bern (Switzerland)", "place": "CH-BRN",
          "depart": "2025-11-24", "return_date": "2025-11-26", "cost_centres": ["4100", "4300"]}
RECEIPT = "hotel-bern-receipt.pdf"


def _travel(**change: object) -> Callable[[Client], None]:
    def solve(c: Client) -> None:
        assert c.post("/travel/new", {**TRAVEL, **change}).status == 303  # type: ignore[dict-item]  # the test's overrides are form values too

    return solve


def _upload(folder_id: int, content: bytes = UPLOADS[RECEIPT]) -> Callable[[Client], None]:
    def solve(c: Client) -> None:
        assert c.upload(f"/files/{folder_id}/upload", "file", RECEIPT, content).status == 303

    return solve


KELLER = {"street": "Hohenzollernring 55", "postal_code": "50672", "city": "Köln", "country": "DE"}

SOLUTIONS: dict[str, Callable[[Client], None]] = {
    "expenses-file-taxi-claim": _taxi,
    "expenses-file-and-submit-yen-claim": _yen,
    "expenses-submit-draft": lambda c: c.post("/expenses/101/submit"),
    "expenses-delete-draft": lambda c: c.post("/expenses/102/delete"),
    "customers-update-address-de": _address(6, KELLER),
    "customers-update-address-us": _address(15, {"street": "1 Kaiser Plaza", "postal_code": "94612",
                                                 "city": "Oakland", "country": "US"}),
    "inbox-flag-hotel-invoice": lambda c: (c.get("/inbox/211"), c.post("/inbox/211/flag", {"flagged": "1"})),
    "inbox-file-taxi-receipt": lambda c: c.post("/inbox/202/move", {"folder": "receipts"}),
    "inbox-archive-offsite": lambda c: c.post("/inbox/204/move", {"folder": "archive"}),
    "inbox-mark-all-read": lambda c: c.post("/inbox/read-all"),
    "travel-request-bern": _travel(),
    "files-upload-hotel-receipt": _upload(5),
}

# Plausible mistakes that must fail the task.
NEAR_MISSES: dict[str, Callable[[Client], None]] = {
    "expenses-file-taxi-claim": lambda c: (_taxi(c), _taxi(c)),  # filed twice
    "expenses-file-and-submit-yen-claim": lambda c: created_id(c.post("/expenses/new", {
        "date": "2025-10-20", "category": "travel", "amount": "3200", "currency": "JPY",
        "description": "Taxi to Toto Medical Group"})),  # saved but not submitted
    "expenses-submit-draft": lambda c: (c.post("/expenses/101/submit"), c.post("/expenses/103/submit")),
    "expenses-delete-draft": lambda c: c.post("/expenses/101/delete"),  # the wrong draft
    "customers-update-address-de": lambda c: (_address(6, KELLER)(c), _address(105, KELLER)(c)),  # and another
    "customers-update-address-us": _address(15, {"street": "1 Kaiser Plaza", "postal_code": "94607",
                                                 "city": "Oakland", "country": "US"}),  # old ZIP kept
    "inbox-flag-hotel-invoice": lambda c: c.post("/inbox/212/flag", {"flagged": "1"}),  # Bernhard, not Bernardine
    "inbox-file-taxi-receipt": lambda c: c.post("/inbox/202/move", {"folder": "travel"}),
    "inbox-archive-offsite": lambda c: (c.post("/inbox/204/move", {"folder": "archive"}),
                                        c.post("/inbox/204/flag", {"flagged": "1"})),  # and flagged it
    "inbox-mark-all-read": lambda c: (c.post("/inbox/read-all"), c.post("/inbox/201/flag", {"flagged": "1"})),
    "travel-request-bern": _travel(cost_centres=["4100"]),  # one cost centre missing
    "files-upload-hotel-receipt": _upload(12),  # the Americas' receipts folder
}


def test_tasks_are_well_formed() -> None:
    assert len(TASKS) >= 6 and set(TASKS_BY_ID) == set(SOLUTIONS) == set(NEAR_MISSES)
    assert {t.app for t in TASKS} == {"expenses", "customers", "inbox", "travel", "files"}
    assert all(set(t.files) <= set(UPLOADS) for t in TASKS)
    assert any(t.irreversible for t in TASKS)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_check_is_false_before_and_true_after(apps: WebApps, state: AppState, task: WebTask) -> None:
    assert state.org_of(task.as_email) is not None
    assert task.check(state) is False
    client = new_client(apps, task.as_email)
    assert client.get(task.start_path).status == 200
    SOLUTIONS[task.id](client)
    assert task.check(state) is True


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_near_misses_fail(apps: WebApps, state: AppState, task: WebTask) -> None:
    NEAR_MISSES[task.id](new_client(apps, task.as_email))
    assert not state.changes().empty
    assert task.check(state) is False


def test_tasks_done_by_another_employee_fail(apps: WebApps, state: AppState) -> None:
    _taxi(new_client(apps, "anna.schmidt@aozora-de.example"))
    assert TASKS_BY_ID["expenses-file-taxi-claim"].check(state) is False
