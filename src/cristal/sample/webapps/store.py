"""The web apps' SQLite database: schema, seed from the sample ERP, and read access for task checks.

The database is seeded from ``src/cristal/sample/erp/erp.sql`` (loaded into an in-memory
SQLite database and copied over), plus a few extra rows so that every screen has something
to do: draft claims (the ERP only holds submitted ones) and more customers (so the customer
table has more than one page). Seeding is deterministic, which lets :meth:`AppState.changes`
compare the final state of a database with a freshly seeded one.

Claim statuses: ``draft`` (editable, deletable) → ``pending`` (submitted, awaiting approval;
irreversible) → ``approved`` / ``rejected`` (decided by finance, not in these apps).
Amounts are stored exactly as integer hundredths (``amount_cents``) in every currency.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    id          INTEGER PRIMARY KEY,
    org         TEXT NOT NULL,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    department  TEXT NOT NULL,
    UNIQUE (org, email)
);
CREATE TABLE IF NOT EXISTS claims (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,   -- ids of deleted claims are never reused
    org             TEXT NOT NULL,
    employee_email  TEXT NOT NULL,
    date            TEXT NOT NULL,                       -- ISO-8601
    category        TEXT NOT NULL,
    amount_cents    INTEGER NOT NULL CHECK (amount_cents > 0),
    currency        TEXT NOT NULL CHECK (currency IN ('EUR', 'JPY', 'USD')),
    status          TEXT NOT NULL CHECK (status IN ('draft', 'pending', 'approved', 'rejected')),
    description     TEXT NOT NULL,
    submitted_at    TEXT,
    FOREIGN KEY (org, employee_email) REFERENCES employees (org, email)
);
CREATE TABLE IF NOT EXISTS customers (
    id           INTEGER PRIMARY KEY,
    org          TEXT NOT NULL,
    name         TEXT NOT NULL,
    street       TEXT NOT NULL,
    postal_code  TEXT NOT NULL,
    city         TEXT NOT NULL,
    country      TEXT NOT NULL,
    segment      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    date         TEXT NOT NULL,
    product      TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency     TEXT NOT NULL
);
-- Every change made through the apps, for audit and for trajectory analysis.
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    org     TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,          -- claim.created, claim.submitted, claim.deleted, customer.address_updated, ...
    target  INTEGER NOT NULL
);
-- The workspace pages (inbox, travel requests, shared folders): widgets drawn by script.
CREATE TABLE IF NOT EXISTS messages (
    id        INTEGER PRIMARY KEY,
    org       TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    body      TEXT NOT NULL,
    date      TEXT NOT NULL,
    folder    TEXT NOT NULL CHECK (folder IN ('inbox', 'receipts', 'travel', 'archive')),
    read      INTEGER NOT NULL DEFAULT 0,
    flagged   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS travel_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org           TEXT NOT NULL,
    employee_email TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    destination   TEXT NOT NULL,        -- a place code, e.g. CH-BRN
    depart        TEXT NOT NULL,
    return_date   TEXT NOT NULL,
    cost_centres  TEXT NOT NULL,        -- codes, comma-separated and sorted
    status        TEXT NOT NULL DEFAULT 'draft'
);
CREATE TABLE IF NOT EXISTS folders (
    id        INTEGER PRIMARY KEY,
    org       TEXT NOT NULL,
    parent_id INTEGER REFERENCES folders (id),
    name      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id INTEGER NOT NULL REFERENCES folders (id),
    name      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    uploaded_by TEXT NOT NULL
);
"""

CATEGORIES: dict[str, str] = {
    "travel": "Travel",
    "hotel": "Hotel",
    "per_diem": "Per diem",
    "meals": "Meals",
    "mileage": "Mileage",
    "client_entertainment": "Client entertainment",
    "training": "Training",
    "software": "Software",
    "office_supplies": "Office supplies",
}
CURRENCIES: tuple[str, ...] = ("EUR", "JPY", "USD")
STATUSES: dict[str, str] = {
    "draft": "Draft", "pending": "Pending approval", "approved": "Approved", "rejected": "Rejected",
}
COUNTRIES: dict[str, str] = {"DE": "Germany", "JP": "Japan", "US": "United States"}
ORG_CURRENCY: dict[str, str] = {"aozora-de": "EUR", "aozora-jp": "JPY", "aozora-us": "USD"}

# Draft claims, so that "submit" and "delete" have something to act on. Jonas Becker gets
# three, which gives him 11 claims: two pages of 10.
SEED_DRAFTS: tuple[tuple[int, str, str, str, str, str, str, str], ...] = (
    (101, "aozora-de", "jonas.becker@aozora-de.example", "2025-10-09", "travel", "38.40", "EUR",
     "Taxi Messe München – Hotel, Fachmesse Gebäudetechnik"),
    (102, "aozora-de", "jonas.becker@aozora-de.example", "2025-10-09", "travel", "24.00", "EUR",
     "Parkgebühren Messe München, 2 Tage"),
    (103, "aozora-de", "jonas.becker@aozora-de.example", "2025-10-20", "office_supplies", "59.90", "EUR",
     "Fachbuch Gebäudetechnik für das Vertriebsteam"),
    (104, "aozora-de", "anna.schmidt@aozora-de.example", "2025-10-16", "travel", "8200", "JPY",
     "Taxi Flughafen Haneda – Hotel, Konzernmeeting Tokio"),
    (105, "aozora-de", "lukas.weber@aozora-de.example", "2025-10-21", "travel", "23.90", "EUR",
     "Bahnfahrt Düsseldorf–Köln, Abschlussprüfung beim Steuerberater"),
    (106, "aozora-jp", "daiki.kobayashi@aozora.example", "2025-10-21", "travel", "3450", "JPY",
     "タクシー代 ハヤテ電機 本社訪問（デモ機の搬入）"),
    (107, "aozora-us", "michael.brown@aozora-us.example", "2025-10-20", "travel", "64.30", "USD",
     "Taxi SEA airport – downtown, return from New York"),
)

# Japanese postal codes for the ERP customers (the ERP address column has none).
JP_POSTAL_CODES: dict[int, str] = {7: "170-0013", 8: "113-0033", 9: "176-0012", 10: "100-0005", 11: "530-0005"}

# More (fictional) customers so that every organization's customer table has two pages.
SEED_CUSTOMERS: tuple[tuple[int, str, str, str, str, str, str, str], ...] = (
    (101, "aozora-de", "Kita Rheinufer gGmbH", "Uferstraße 12", "40213", "Düsseldorf", "DE", "education"),
    (102, "aozora-de", "Kanzlei Brandt & Partner", "Königsallee 60", "40212", "Düsseldorf", "DE", "business"),
    (103, "aozora-de", "Bäckerei Sonnenschein GmbH", "Marktstraße 3", "47051", "Duisburg", "DE", "retail"),
    (104, "aozora-de", "Grundschule am Lindenweg", "Lindenweg 25", "45127", "Essen", "DE", "public_sector"),
    (105, "aozora-de", "Physiotherapie Vogel", "Bergstraße 8", "50667", "Köln", "DE", "healthcare"),
    (106, "aozora-de", "Hotel Zur Linde", "Dorfplatz 2", "82491", "Grainau", "DE", "hospitality"),
    (107, "aozora-de", "Autohaus Nordlicht GmbH", "Industriestraße 44", "41460", "Neuss", "DE", "retail"),
    (108, "aozora-de", "Tierarztpraxis Am Stadtpark", "Parkallee 17", "47799", "Krefeld", "DE", "healthcare"),
    (109, "aozora-de", "Coworking Hafenbecken", "Speditionstraße 15", "40221", "Düsseldorf", "DE", "business"),
    (111, "aozora-jp", "株式会社ミナト物流", "海岸3-2-1", "108-0022", "東京都港区", "JP", "business"),
    (112, "aozora-jp", "あおば歯科クリニック", "青葉台1-4-8", "153-0042", "東京都目黒区", "JP", "healthcare"),
    (113, "aozora-jp", "横浜みなと小学校", "本町6-50", "231-0005", "横浜市中区", "JP", "education"),
    (114, "aozora-jp", "有限会社かえで書店", "一番町2-5", "980-0811", "仙台市青葉区", "JP", "retail"),
    (115, "aozora-jp", "ホテル白樺", "旭町4-1", "060-0001", "札幌市中央区", "JP", "hospitality"),
    (116, "aozora-jp", "名古屋テックオフィス株式会社", "栄3-15-6", "460-0008", "名古屋市中区", "JP", "business"),
    (121, "aozora-us", "Pine Street Dental", "410 Pine Street", "98101", "Seattle", "US", "healthcare"),
    (122, "aozora-us", "Rainier Community College", "3000 Rainier Avenue", "98144", "Seattle", "US", "education"),
    (123, "aozora-us", "Willamette Hotel Group", "1020 SW Taylor Street", "97205", "Portland", "US", "hospitality"),
    (124, "aozora-us", "Bayview Fitness Clubs", "88 Embarcadero", "94105", "San Francisco", "US", "retail"),
    (125, "aozora-us", "Tacoma Public Library", "1102 Tacoma Avenue S", "98402", "Tacoma", "US", "public_sector"),
    (126, "aozora-us", "Spokane Office Partners", "601 W Riverside Avenue", "99201", "Spokane", "US", "business"),
)


# Lukas Weber's inbox: 14 messages, so the list has two pages of 10. Dates descending = list order.
INBOX_OWNER = ("aozora-de", "lukas.weber@aozora-de.example")
SEED_MESSAGES: tuple[tuple[int, str, str, str, str, str, int], ...] = (
    # id, sender, subject, body, date, folder, read
    (201, "Anna Schmidt", "Budget review on Friday", "Please bring the Q3 figures.", "2025-10-30", "inbox", 0),
    (202, "Taxi Zentrale Düsseldorf", "Your taxi receipt", "Receipt for your ride on 2025-10-02: 42.50 EUR.", "2025-10-29", "inbox", 0),
    (203, "Mia Fischer", "Kumo firmware release notes", "Release 4.2 is out.", "2025-10-28", "inbox", 1),
    (204, "Jonas Becker", "Team offsite in December", "The offsite is planned for 2025-12-04.", "2025-10-27", "inbox", 1),
    (205, "Felix Wagner", "Customer Dr. Keller moved", "New address: Hohenzollernring 55.", "2025-10-26", "inbox", 1),
    (206, "IT Service Desk", "Password expires soon", "Change your password within 7 days.", "2025-10-25", "inbox", 1),
    (207, "Sophie Hoffmann", "Support rota November", "The rota is in the shared folder.", "2025-10-24", "inbox", 1),
    (208, "Tim Schulz", "Build server maintenance", "Saturday 8:00-12:00.", "2025-10-23", "inbox", 1),
    (209, "Deutsche Bahn", "Your booking confirmation", "Düsseldorf–Köln on 2025-10-21.", "2025-10-22", "inbox", 1),
    (210, "Anna Schmidt", "Agenda management meeting", "See the attached agenda.", "2025-10-21", "inbox", 1),
    (211, "Bernardine Okafor", "Hotel invoice Bern", "The invoice for your stay in Bern, 380 CHF.", "2025-10-20", "inbox", 1),
    (212, "Bernhard Vogel", "Physiotherapy contract renewal", "Can we meet next week?", "2025-10-19", "inbox", 1),
    (213, "Mia Fischer", "Lab equipment order", "The order has shipped.", "2025-10-18", "inbox", 1),
    (214, "Canteen", "Menu of the week", "Monday: lentil soup.", "2025-10-17", "inbox", 1),
)
MESSAGE_FOLDERS: dict[str, str] = {"inbox": "Inbox", "receipts": "Receipts", "travel": "Travel", "archive": "Archive"}

# Places for the travel form's destination autocomplete: code -> name.
PLACES: dict[str, str] = {
    "CH-BRN": "Bern (Switzerland)", "DE-BER": "Berlin (Germany)", "DE-BRE": "Bremen (Germany)",
    "IT-BGY": "Bergamo (Italy)", "NO-BGO": "Bergen (Norway)", "DE-MUC": "München (Germany)",
    "DE-HAM": "Hamburg (Germany)", "DE-CGN": "Köln (Germany)", "JP-TYO": "Tokyo (Japan)",
    "US-SEA": "Seattle (United States)", "AT-VIE": "Wien (Austria)", "FR-PAR": "Paris (France)",
}
COST_CENTRES: dict[str, str] = {
    "4100": "4100 Sales Germany", "4200": "4200 Service", "4300": "4300 Marketing", "5100": "5100 R&D Kumo",
    "6100": "6100 Administration", "7100": "7100 Training",
}

# Shared folders of aozora-de: (id, parent, name).
SEED_FOLDERS: tuple[tuple[int, int | None, str], ...] = (
    (1, None, "Germany"), (2, 1, "Sales"), (3, 2, "Trade fairs"), (4, 1, "Finance"), (5, 4, "Receipts"),
    (6, 4, "Invoices"), (7, 1, "HR"), (8, None, "Japan"), (9, 8, "Engineering"), (10, None, "Americas"),
    (11, 10, "Sales"), (12, 10, "Receipts"),
)
SEED_FILES: tuple[tuple[int, str, int, str], ...] = (
    (5, "taxi-2025-10-02.pdf", 18230, "0" * 64), (6, "invoice-4711.pdf", 40210, "1" * 64),
    (3, "booth-plan-bau-2025.pdf", 120400, "2" * 64),
)


def _cents(amount: str | float | int | Decimal) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def _split_address(row: sqlite3.Row) -> tuple[str, str, str]:
    """(street, postal_code, city) from an ERP customer's one-line address."""
    address, city = row["address"], row["city"]
    if row["country"] == "DE":  # "Rheinallee 80, 40545 Düsseldorf"
        m = re.fullmatch(r"(.+), (\d{5}) (.+)", address)
    elif row["country"] == "US":  # "1400 Lakeview Parkway, Kirkland, WA 98033" (the state is dropped)
        m = re.fullmatch(r"(.+), (.+), [A-Z]{2} (\d{5})", address)
        if m:
            return m.group(1), m.group(3), city
    else:  # JP: "東京都豊島区東池袋1-20-5" with city "東京都豊島区"
        street = address.split(city, 1)[1] if city in address else address
        return street, JP_POSTAL_CODES[row["id"]], city
    if not m:
        raise ValueError(f"cannot split the address of customer {row['id']}: {address!r}")
    return m.group(1), m.group(2), city


def seed_connection(conn: sqlite3.Connection) -> None:
    """Create the schema in ``conn`` and fill it with the sample company's rows (deterministic)."""
    erp = sqlite3.connect(":memory:")
    erp.row_factory = sqlite3.Row
    erp.executescript(resources.files("cristal.sample").joinpath("erp/erp.sql").read_text(encoding="utf-8"))
    conn.executescript(SCHEMA)
    with conn:
        for r in erp.execute("SELECT * FROM employees ORDER BY id"):
            conn.execute("INSERT INTO employees VALUES (?, ?, ?, ?, ?)",
                         (r["id"], r["org"], r["email"], r["name"], r["department"]))
        for r in erp.execute("SELECT * FROM expenses ORDER BY id"):
            conn.execute(
                "INSERT INTO claims (id, org, employee_email, date, category, amount_cents, currency, status,"
                " description, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r["id"], r["org"], r["employee_email"], r["date"], r["category"], _cents(r["amount"]),
                 r["currency"], r["status"], r["description"], r["date"] + "T18:00:00+00:00"))
        for d in SEED_DRAFTS:
            conn.execute(
                "INSERT INTO claims (id, org, employee_email, date, category, amount_cents, currency, status,"
                " description) VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?)",
                (*d[:5], _cents(d[5]), d[6], d[7]))
        for r in erp.execute("SELECT * FROM customers ORDER BY id"):
            street, postal, city = _split_address(r)
            conn.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (r["id"], r["org"], r["name"], street, postal, city, r["country"], r["segment"]))
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", SEED_CUSTOMERS)
        for r in erp.execute("SELECT * FROM orders ORDER BY id"):
            conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (r["id"], r["customer_id"], r["date"], r["product"], r["quantity"],
                          _cents(r["amount"]), r["currency"]))
        conn.executemany("INSERT INTO messages (id, org, recipient, sender, subject, body, date, folder, read)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(m[0], *INBOX_OWNER, *m[1:]) for m in SEED_MESSAGES])
        conn.executemany("INSERT INTO folders VALUES (?, 'aozora-de', ?, ?)", SEED_FOLDERS)
        conn.executemany("INSERT INTO files (folder_id, name, size, sha256, uploaded_by) VALUES (?, ?, ?, ?, 'seed')", SEED_FILES)
    erp.close()


def seed_database(db_path: Path, *, overwrite: bool = False) -> Path:
    """Create and seed the database file at ``db_path``; an existing seeded file is kept unless ``overwrite``."""
    db_path = Path(db_path)
    if overwrite and db_path.exists():
        db_path.unlink()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    try:
        seeded = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'claims'").fetchone()
        if not seeded:
            seed_connection(conn)
    finally:
        conn.close()
    return db_path


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection with named-column rows and enforced foreign keys."""
    conn = sqlite3.connect(db_path, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- reading the state (used by the apps' tests and by training-environment checks) ---


@dataclass(frozen=True)
class Claim:
    id: int
    org: str
    employee_email: str
    date: str
    category: str
    amount: Decimal
    currency: str
    status: str
    description: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Claim:
        return cls(r["id"], r["org"], r["employee_email"], r["date"], r["category"],
                   Decimal(r["amount_cents"]) / 100, r["currency"], r["status"], r["description"])


@dataclass(frozen=True)
class Customer:
    id: int
    org: str
    name: str
    street: str
    postal_code: str
    city: str
    country: str
    segment: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Customer:
        return cls(r["id"], r["org"], r["name"], r["street"], r["postal_code"], r["city"], r["country"], r["segment"])


@dataclass(frozen=True)
class Event:
    at: str
    org: str
    actor: str
    action: str
    target: int


@dataclass(frozen=True)
class Message:
    id: int
    org: str
    recipient: str
    sender: str
    subject: str
    folder: str
    read: bool
    flagged: bool

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Message:
        return cls(r["id"], r["org"], r["recipient"], r["sender"], r["subject"], r["folder"], bool(r["read"]), bool(r["flagged"]))


@dataclass(frozen=True)
class TravelRequest:
    id: int
    org: str
    employee_email: str
    purpose: str
    destination: str
    depart: str
    return_date: str
    cost_centres: tuple[str, ...]
    status: str

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> TravelRequest:
        return cls(r["id"], r["org"], r["employee_email"], r["purpose"], r["destination"], r["depart"], r["return_date"],
                   tuple(c for c in r["cost_centres"].split(",") if c), r["status"])


@dataclass(frozen=True)
class StoredFile:
    id: int
    folder: str  # its path, e.g. "Germany/Finance/Receipts"
    name: str
    size: int
    sha256: str
    uploaded_by: str


@dataclass(frozen=True)
class Changes:
    """What differs from a freshly seeded database: id → (before, after); ``None`` = absent.

    A message's ``read`` mark is not a change: opening a message sets it, as in any mail client.
    """

    claims: dict[int, tuple[Claim | None, Claim | None]]
    customers: dict[int, tuple[Customer | None, Customer | None]]
    messages: dict[int, tuple[Message | None, Message | None]] = field(default_factory=dict)
    travel: dict[int, tuple[TravelRequest | None, TravelRequest | None]] = field(default_factory=dict)
    files: dict[int, tuple[StoredFile | None, StoredFile | None]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.claims or self.customers or self.messages or self.travel or self.files)

    def only(self, *kinds: str) -> bool:
        """Whether nothing changed outside ``kinds`` (of claims, customers, messages, travel, files)."""
        return not any(getattr(self, k) for k in ("claims", "customers", "messages", "travel", "files") if k not in kinds)


class AppState:
    """Read-only view of an apps database, for deciding whether a task was done."""

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path)

    def _query(self, sql: str, *args: object) -> list[sqlite3.Row]:
        conn = connect(self.db_path)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def claims(self, org: str, email: str | None = None) -> list[Claim]:
        """An organization's claims (one employee's if ``email``), by id."""
        if email is None:
            rows = self._query("SELECT * FROM claims WHERE org = ? ORDER BY id", org)
        else:
            rows = self._query("SELECT * FROM claims WHERE org = ? AND employee_email = ? ORDER BY id", org, email)
        return [Claim.from_row(r) for r in rows]

    def claim(self, org: str, claim_id: int) -> Claim | None:
        rows = self._query("SELECT * FROM claims WHERE org = ? AND id = ?", org, claim_id)
        return Claim.from_row(rows[0]) if rows else None

    def customers(self, org: str) -> list[Customer]:
        return [Customer.from_row(r) for r in self._query("SELECT * FROM customers WHERE org = ? ORDER BY id", org)]

    def customer(self, org: str, customer_id: int) -> Customer | None:
        rows = self._query("SELECT * FROM customers WHERE org = ? AND id = ?", org, customer_id)
        return Customer.from_row(rows[0]) if rows else None

    def org_of(self, email: str) -> str | None:
        rows = self._query("SELECT org FROM employees WHERE email = ? ORDER BY id", email)
        return rows[0]["org"] if rows else None

    def events(self, org: str | None = None) -> list[Event]:
        rows = self._query("SELECT * FROM events WHERE (? IS NULL OR org = ?) ORDER BY id", org, org)
        return [Event(r["at"], r["org"], r["actor"], r["action"], r["target"]) for r in rows]

    def messages(self, org: str, recipient: str) -> list[Message]:
        rows = self._query("SELECT * FROM messages WHERE org = ? AND recipient = ? ORDER BY id", org, recipient)
        return [Message.from_row(r) for r in rows]

    def files(self) -> list[StoredFile]:
        return list(_files(self._query).values())

    def changes(self) -> Changes:
        """Compare every claim, customer, message, travel request and file with a freshly seeded database."""
        seed = sqlite3.connect(":memory:")
        seed.row_factory = sqlite3.Row
        seed_connection(seed)

        def seeded(sql: str, *args: object) -> list[sqlite3.Row]:
            return seed.execute(sql, args).fetchall()

        def read_all(query: Callable[..., list[sqlite3.Row]]) -> tuple[dict, ...]:
            return ({r["id"]: Claim.from_row(r) for r in query("SELECT * FROM claims")},
                    {r["id"]: Customer.from_row(r) for r in query("SELECT * FROM customers")},
                    {r["id"]: replace(Message.from_row(r), read=False) for r in query("SELECT * FROM messages")},
                    {r["id"]: TravelRequest.from_row(r) for r in query("SELECT * FROM travel_requests")},
                    _files(query))

        before = read_all(seeded)
        seed.close()
        after = read_all(self._query)
        return Changes(*(_diff(b, a) for b, a in zip(before, after, strict=True)))


def _files(query: Callable[..., list[sqlite3.Row]]) -> dict[int, StoredFile]:
    folders = {r["id"]: (r["parent_id"], r["name"]) for r in query("SELECT * FROM folders")}

    def path(folder_id: int) -> str:
        parent, name = folders[folder_id]
        return name if parent is None else f"{path(parent)}/{name}"

    return {r["id"]: StoredFile(r["id"], path(r["folder_id"]), r["name"], r["size"], r["sha256"], r["uploaded_by"])
            for r in query("SELECT * FROM files")}


def _diff(before: dict, after: dict) -> dict:
    return {k: (before.get(k), after.get(k)) for k in sorted(before.keys() | after.keys())
            if before.get(k) != after.get(k)}
