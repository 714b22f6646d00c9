"""Tasks in the sample web apps, as data, for Operator training environments and tests.

Each task starts from a freshly seeded database (:func:`~cristal.sample.webapps.store.seed_database`)
with the browser signed in as ``as_email`` at ``start_path``. Success is decided from the final
database alone by ``check``: the intended change must be there and *nothing else* may have
changed (compared with the seed through :meth:`AppState.changes`), so stray claims, a wrong
claim submitted or another customer edited all fail the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from cristal.sample.webapps.store import INBOX_OWNER, AppState, Claim, Customer, Message


@dataclass(frozen=True)
class WebTask:
    id: str
    app: Literal["expenses", "customers", "inbox", "travel", "files"]
    as_email: str
    instruction: str
    start_path: str
    check: Callable[[AppState], bool]
    irreversible: bool = False  # the task needs an action that cannot be undone in the app
    files: tuple[str, ...] = ()  # files the run is given to upload (made by the environment: see UPLOADS)


def _new_claim(state: AppState) -> Claim | None:
    """The one claim created since the seed, if that is the only change."""
    changes = state.changes()
    if not changes.only("claims") or len(changes.claims) != 1:
        return None
    ((before, after),) = changes.claims.values()
    return after if before is None else None


def _only_claim_change(state: AppState, claim_id: int) -> tuple[Claim | None, Claim | None] | None:
    changes = state.changes()
    if not changes.only("claims") or set(changes.claims) != {claim_id}:
        return None
    return changes.claims[claim_id]


def _only_customer_change(state: AppState, customer_id: int) -> Customer | None:
    changes = state.changes()
    if not changes.only("customers") or set(changes.customers) != {customer_id}:
        return None
    return changes.customers[customer_id][1]


def _check_taxi_claim(state: AppState) -> bool:
    c = _new_claim(state)
    return (c is not None and c.org == "aozora-de" and c.employee_email == "lukas.weber@aozora-de.example"
            and c.date == "2025-10-02" and c.category == "travel" and c.amount == Decimal("42.50")
            and c.currency == "EUR" and c.status == "draft" and "taxi" in c.description.lower())


def _check_yen_claim(state: AppState) -> bool:
    c = _new_claim(state)
    return (c is not None and c.org == "aozora-jp" and c.employee_email == "daiki.kobayashi@aozora.example"
            and c.date == "2025-10-20" and c.category == "travel" and c.amount == Decimal(3200)
            and c.currency == "JPY" and c.status == "pending" and "taxi" in c.description.lower())


def _check_submit(state: AppState) -> bool:
    change = _only_claim_change(state, 101)
    if change is None:
        return False
    before, after = change
    if before is None or after is None:
        return False
    return before.status == "draft" and after == replace(before, status="pending")


def _check_delete(state: AppState) -> bool:
    change = _only_claim_change(state, 102)
    return change is not None and change[0] is not None and change[1] is None


def _address_check(customer_id: int, street: str, postal_code: str, city: str,
                   country: str) -> Callable[[AppState], bool]:
    def check(state: AppState) -> bool:
        c = _only_customer_change(state, customer_id)
        return c is not None and (c.street, c.postal_code, c.city, c.country) == (street, postal_code, city, country)

    return check


def _message_check(message_id: int, **after: Any) -> Callable[[AppState], bool]:
    """Only message ``message_id`` changed (read marks aside), and it now has the ``after`` values."""
    def check(state: AppState) -> bool:
        changes = state.changes()
        if not changes.only("messages") or set(changes.messages) != {message_id}:
            return False
        before, now = changes.messages[message_id]
        return before is not None and now is not None and replace(before, **after) == now

    return check


def _all_read(state: AppState) -> bool:
    messages: list[Message] = state.messages(*INBOX_OWNER)
    return state.changes().empty and bool(messages) and all(m.read for m in messages)


def _check_travel(state: AppState) -> bool:
    changes = state.changes()
    if not changes.only("travel") or len(changes.travel) != 1:
        return False
    ((before, r),) = changes.travel.values()
    return (before is None and r is not None and r.org == "aozora-de" and r.employee_email == "lukas.weber@aozora-de.example"
            and r.destination == "CH-BRN" and r.depart == "2025-11-24" and r.return_date == "2025-11-26"
            and r.cost_centres == ("4100", "4300") and "workshop" in r.purpose.lower())


# Files the environment makes for upload tasks: name -> content.
UPLOADS: dict[str, bytes] = {
    "hotel-bern-receipt.pdf": b"%PDF-1.4\n% Hotel Bellevue Bern, 2 nights, 380.00 CHF, paid 2025-10-20\n%%EOF\n",
}


def _check_upload(state: AppState) -> bool:
    import hashlib

    changes = state.changes()
    if not changes.only("files") or len(changes.files) != 1:
        return False
    ((before, f),) = changes.files.values()
    content = UPLOADS["hotel-bern-receipt.pdf"]
    return (before is None and f is not None and f.folder == "Germany/Finance/Receipts" and f.name == "hotel-bern-receipt.pdf"
            and f.sha256 == hashlib.sha256(content).hexdigest() and f.uploaded_by == "lukas.weber@aozora-de.example")


TASKS: tuple[WebTask, ...] = (
    WebTask(
        id="expenses-file-taxi-claim",
        app="expenses",
        as_email="lukas.weber@aozora-de.example",
        instruction=("File a new expense claim for a taxi ride on 2025-10-02: 42.50 EUR, category Travel, "
                     "description \"Taxi Hauptbahnhof to Klinikum Rheinland\". Save it as a draft; do not submit it."),
        start_path="/expenses/",
        check=_check_taxi_claim,
    ),
    WebTask(
        id="expenses-file-and-submit-yen-claim",
        app="expenses",
        as_email="daiki.kobayashi@aozora.example",
        instruction=("Claim a taxi ride on 2025-10-20 that cost 3,200 JPY (category Travel, description "
                     "\"Taxi to Toto Medical Group\") and submit the claim for approval."),
        start_path="/expenses/",
        check=_check_yen_claim,
        irreversible=True,
    ),
    WebTask(
        id="expenses-submit-draft",
        app="expenses",
        as_email="jonas.becker@aozora-de.example",
        instruction=("Submit your draft expense claim for the taxi from the Munich trade fair to the hotel "
                     "(38.40 EUR) for approval. Leave your other claims as they are."),
        start_path="/expenses/",
        check=_check_submit,
        irreversible=True,
    ),
    WebTask(
        id="expenses-delete-draft",
        app="expenses",
        as_email="jonas.becker@aozora-de.example",
        instruction=("The parking fees at the Munich trade fair were paid with the company card. Delete your "
                     "draft expense claim for them."),
        start_path="/expenses/",
        check=_check_delete,
        irreversible=True,
    ),
    WebTask(
        id="customers-update-address-de",
        app="customers",
        as_email="felix.wagner@aozora-de.example",
        instruction=("Zahnarztpraxis Dr. Keller has moved. Update the customer's address to "
                     "Hohenzollernring 55, 50672 Köln, Germany."),
        start_path="/customers/",
        check=_address_check(6, "Hohenzollernring 55", "50672", "Köln", "DE"),
    ),
    WebTask(
        id="customers-update-address-us",
        app="customers",
        as_email="michael.brown@aozora-us.example",
        instruction=("Harbor Co-Working moved within Oakland. Change the customer's address to 1 Kaiser Plaza, "
                     "Oakland, ZIP code 94612, United States."),
        start_path="/customers/",
        check=_address_check(15, "1 Kaiser Plaza", "94612", "Oakland", "US"),
    ),
    WebTask(
        id="inbox-flag-hotel-invoice",
        app="inbox",
        as_email="lukas.weber@aozora-de.example",
        instruction="Flag the message from Bernardine Okafor about the hotel invoice in Bern, so it is not forgotten.",
        start_path="/inbox/",
        check=_message_check(211, flagged=True),
    ),
    WebTask(
        id="inbox-file-taxi-receipt",
        app="inbox",
        as_email="lukas.weber@aozora-de.example",
        instruction="Move the taxi receipt from Taxi Zentrale Düsseldorf into the Receipts folder.",
        start_path="/inbox/",
        check=_message_check(202, folder="receipts"),
    ),
    WebTask(
        id="inbox-archive-offsite",
        app="inbox",
        as_email="lukas.weber@aozora-de.example",
        instruction="Archive the message about the team offsite in December.",
        start_path="/inbox/",
        check=_message_check(204, folder="archive"),
    ),
    WebTask(
        id="inbox-mark-all-read",
        app="inbox",
        as_email="lukas.weber@aozora-de.example",
        instruction="Mark all messages in the inbox as read.",
        start_path="/inbox/",
        check=_all_read,
    ),
    WebTask(
        id="travel-request-bern",
        app="travel",
        as_email="lukas.weber@aozora-de.example",
        instruction=("Create a travel request for a customer workshop at the Berner Spital: destination Bern (Switzerland), "
                     "departing 2025-11-24, returning 2025-11-26, on cost centres 4100 Sales Germany and 4300 Marketing."),
        start_path="/travel/new",
        check=_check_travel,
    ),
    WebTask(
        id="files-upload-hotel-receipt",
        app="files",
        as_email="lukas.weber@aozora-de.example",
        instruction="Upload the file hotel-bern-receipt.pdf into the shared folder Germany \u203a Finance \u203a Receipts.",
        start_path="/files/",
        check=_check_upload,
        files=("hotel-bern-receipt.pdf",),
    ),
)

TASKS_BY_ID: dict[str, WebTask] = {t.id: t for t in TASKS}
