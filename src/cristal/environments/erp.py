"""A per-rollout copy of the sample company's ERP database, and the tools an agent uses on it.

``ErpCopy.build(folder, org)`` builds a SQLite file with one organization's
rows (``cristal.sample.knowledge.build_erp``, the same database ``cristal demo``
connects as the ``erp`` source); each rollout gets a ``copy`` of it inside a
folder that belongs to that rollout alone, so no two rollouts ever share state. ``snapshot()`` is the
whole database as sorted rows, which is how a final state is compared with the
goal state.

The tools: ``sql`` is a read through the same guard as the ``sql`` action
(``query_readonly``: parser, read-only transaction, SQLite authorizer); the
write tools are the task-specific ones of a τ-bench-style domain, each with a
pydantic model of its arguments (its JSON schema is what a model sees). A tool
that is refused answers with an error text, as a real system would: the
rollout goes on.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cristal import yamlfile
from cristal.knowledge.connectors.sql import query_readonly
from cristal.models.shapes import function_tool
from cristal.sample.knowledge import build_erp

CURRENCY = {"aozora-us": "USD", "aozora-de": "EUR", "aozora-jp": "JPY"}
CATEGORIES = ("travel", "hotel", "per_diem", "meals", "client_entertainment", "mileage", "training", "software",
              "office_supplies")
MAX_ROWS = 200


class ToolRefused(Exception):
    """A tool call the ERP refuses (unknown expense, wrong status, bad arguments): its text is the tool's reply."""


@dataclass
class ErpCopy:
    """One rollout's ERP database (a file in the rollout's own folder)."""

    path: Path
    org: str

    @classmethod
    def build(cls, folder: Path, org: str) -> ErpCopy:
        """The ERP of ``org`` built from the sample's SQL (a fraction of a second: copy it rather than build it again)."""
        if org not in CURRENCY:
            raise ValueError(f"unknown sample organization {org!r}")
        return cls(build_erp(folder, org), org)

    def copy(self, path: Path) -> ErpCopy:
        """A copy of this database at ``path`` (a file of its own: nothing is shared with this one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, path)
        return ErpCopy(path, self.org)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.path}"

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys = ON")
        # A rollout's database is scratch that lives for one episode: waiting for the disk on every commit buys nothing.
        con.execute("PRAGMA synchronous = OFF")
        return con

    def execute(self, statements: list[str], params: dict[str, Any]) -> None:
        """Run fixture statements (written by the task's author) with ``:name`` bindings, in one transaction."""
        con = self.connect()
        try:
            with con:
                for sql in statements:
                    con.execute(sql, params)
        finally:
            con.close()

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """A read by the environment itself (parameters, checks): the same read-only guard as the agent's."""
        return query_readonly(self.uri, query, params or {}, max_rows=10_000, timeout=10).rows

    def snapshot(self, ignore: Collection[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows, sorted, without the ``TABLE.COLUMN``s in ``ignore``: two copies are in the same
        state when their snapshots are equal."""
        con = sqlite3.connect(self.path)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            out = {}
            for t in tables:
                columns = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")') if f"{t}.{r[1]}" not in ignore]
                listed = ", ".join(f'"{c}"' for c in columns)
                out[t] = sorted(con.execute(f'SELECT {listed} FROM "{t}"').fetchall(), key=repr)
            return out
        finally:
            con.close()


# ---------------------------------------------------------------------------
# Tools


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlArgs(_Args):
    query: str = Field(description="One read-only SQL query (SQLite); values as :name placeholders.")
    params: dict[str, Any] = Field(default_factory=dict, description="Values of the :name placeholders.")


class SubmitExpenseArgs(_Args):
    employee_email: str
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")
    category: str = Field(description="One of: " + ", ".join(CATEGORIES))
    amount: float = Field(gt=0)
    description: str = Field(min_length=1, max_length=500)

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; one of: {', '.join(CATEGORIES)}")
        return v


class ExpenseIdArgs(_Args):
    expense_id: int


class RejectExpenseArgs(_Args):
    expense_id: int
    reason: str = Field(min_length=1, max_length=500)


class UpdateExpenseArgs(_Args):
    expense_id: int
    amount: float | None = Field(None, gt=0)
    description: str | None = Field(None, min_length=1, max_length=500)


class DoneArgs(_Args):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    effect: Literal["read", "write", "end"]
    run: Callable[[ErpCopy, Any], Any] | None  # None: ``done``, which the environment handles

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format (``{"type": "function", "function": {...}}``)."""
        schema = function_tool(self.name, self.description, self.args)
        schema["function"]["parameters"].pop("title", None)  # the pydantic class's name says nothing to a model
        return schema

    def call(self, erp: ErpCopy, arguments: Any) -> str:
        """Run the tool; its reply as text (JSON for results, ``error: ...`` when refused)."""
        try:
            args = self.args.model_validate(arguments)
        except ValidationError as exc:
            # The model's arguments are read like a file's fields: the first problem, in the same words.
            return f"error: invalid arguments for {self.name}: {yamlfile.describe_validation(exc)[1]}"
        assert self.run is not None
        try:
            return json.dumps(self.run(erp, args), ensure_ascii=False, default=str)
        except ToolRefused as exc:
            return f"error: {exc}"


def _sql(erp: ErpCopy, args: SqlArgs) -> Any:
    from cristal.errors import CristalError

    try:
        found = query_readonly(erp.uri, args.query, args.params, max_rows=MAX_ROWS, timeout=5)
    except CristalError as exc:
        raise ToolRefused(exc.message) from None
    return {"rows": found.rows, "truncated": found.more}


def _pending(con: sqlite3.Connection, erp: ErpCopy, expense_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = con.execute("SELECT * FROM expenses WHERE id = ? AND org = ?", (expense_id, erp.org)).fetchone()
    if row is None:
        raise ToolRefused(f"no expense {expense_id}")
    if row["status"] != "pending":
        raise ToolRefused(f"expense {expense_id} is {row['status']}, not pending")
    return row


def _set_status(status: str) -> Callable[[ErpCopy, Any], Any]:
    def run(erp: ErpCopy, args: Any) -> Any:
        con = erp.connect()
        try:
            with con:
                _pending(con, erp, args.expense_id)
                con.execute("UPDATE expenses SET status = ? WHERE id = ?", (status, args.expense_id))
        finally:
            con.close()
        return {"id": args.expense_id, "status": status}
    return run


def _submit(erp: ErpCopy, args: SubmitExpenseArgs) -> Any:
    con = erp.connect()
    try:
        with con:
            if con.execute("SELECT 1 FROM employees WHERE org = ? AND email = ?", (erp.org, args.employee_email)).fetchone() is None:
                raise ToolRefused(f"no employee {args.employee_email} in {erp.org}")
            new_id = con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM expenses").fetchone()[0]
            con.execute("INSERT INTO expenses (id, org, employee_email, date, category, amount, currency, status, description) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                        (new_id, erp.org, args.employee_email, args.date, args.category, round(args.amount, 2),
                         CURRENCY[erp.org], args.description))
    finally:
        con.close()
    return {"id": new_id, "status": "pending", "amount": round(args.amount, 2), "currency": CURRENCY[erp.org]}


def _update(erp: ErpCopy, args: UpdateExpenseArgs) -> Any:
    if args.amount is None and args.description is None:
        raise ToolRefused("nothing to update: give amount or description")
    con = erp.connect()
    try:
        with con:
            row = _pending(con, erp, args.expense_id)
            amount = round(args.amount, 2) if args.amount is not None else row["amount"]
            description = args.description if args.description is not None else row["description"]
            con.execute("UPDATE expenses SET amount = ?, description = ? WHERE id = ?", (amount, description, args.expense_id))
    finally:
        con.close()
    return {"id": args.expense_id, "amount": amount, "description": description, "status": "pending"}


TOOLS: Mapping[str, Tool] = MappingProxyType({t.name: t for t in (
    Tool("sql", "Run one read-only SQL query against the ERP database (tables employees, expenses, customers, orders; "
         "view pending_expenses). Returns the rows.", SqlArgs, "read", _sql),
    Tool("submit_expense", "File a new expense claim for an employee (status pending, in the company's currency).",
         SubmitExpenseArgs, "write", _submit),
    Tool("approve_expense", "Approve a pending expense claim.", ExpenseIdArgs, "write", _set_status("approved")),
    Tool("reject_expense", "Reject a pending expense claim, with the reason told to the employee.", RejectExpenseArgs, "write",
         _set_status("rejected")),
    Tool("update_expense", "Change the amount or description of a pending expense claim.", UpdateExpenseArgs, "write", _update),
    Tool("done", "End the conversation once the employee's request is handled.", DoneArgs, "end", None),
)})
