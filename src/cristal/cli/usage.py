"""``cristal usage``: an organization's model usage and spend this month, per model and per user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import typer
from rich.table import Table

from cristal.cli.app import app
from cristal.cli.runtime import acting, err, out, print_json, settings, unit_of_work
from cristal.models.metering import UsageLine, usage_summary
from cristal.models.prices import PriceTable


def _table(title: str, key: str, lines: list[UsageLine], label: Callable[[str], str] = str) -> Table:
    table = Table(title=title, caption="tokens in/out; latency p50/p95 in ms; cost estimated")
    table.add_column(key, overflow="fold")  # never cut a model or user name short
    for column in ("calls", "errors", "refused", "in", "out", "USD", "p50", "p95"):
        table.add_column(column, justify="right")
    for line in lines:
        table.add_row(
            label(line.key), str(line.calls), str(line.errors), str(line.refused), f"{line.tokens_in:,}",
            f"{line.tokens_out:,}", f"{line.cost_usd:.4f}", f"{line.p50_ms:.0f}", f"{line.p95_ms:.0f}",
        )
    return table


@app.command("usage")
def usage_command(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: Optional[str] = typer.Option(None, "--as", help="Read as this employee (must be an admin)."),
    month: Optional[str] = typer.Option(None, "--month", help="A past month as YYYY-MM (default: this month)."),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON document."),
) -> None:
    """Show model calls, tokens, estimated cost and latency, against the monthly budget."""
    prices = PriceTable(settings().prices)
    with unit_of_work() as s:
        summary = usage_summary(s, acting(s, org, as_email), org, month=month, prices=prices)
    if json_out:
        print_json(summary.as_dict())
        return
    budget = f"${summary.budget_usd:.2f}" if summary.budget_usd is not None else "no budget"
    out.print(f"{summary.org} {summary.month}: ${summary.spend_usd:.4f} spent of {budget}")
    if not summary.total.calls and not summary.total.refused:
        out.print(f"No model calls in {summary.month}.")
        return
    out.print(_table("By model", "model", summary.by_model))

    def as_email(actor: str) -> str:
        # Every caller here is a user of this organization: show the address, not the audit label.
        return actor.removeprefix("user:").removesuffix(f"@{summary.org}")

    out.print(_table("By user", "user", summary.by_user, as_email))
    if summary.unpriced_models:
        err.print(
            "note: no price known for " + ", ".join(summary.unpriced_models)
            + '; their cost counts as 0 (add [prices."MODEL"] to config.toml)',
            markup=False,
        )
