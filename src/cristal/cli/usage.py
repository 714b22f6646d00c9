"""``cristal usage``: an organization's model usage and spend this month, per model and per user."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.table import Column

from cristal.cli.runtime import JSON, acting, note, print_json, settings, show, show_table, unit_of_work

if TYPE_CHECKING:
    from cristal.models.metering import UsageLine

app = typer.Typer()


def _table(title: str, key: str, lines: list[UsageLine], label: Callable[[str], str] = str) -> None:
    show_table(
        title,
        [Column(key, overflow="fold"),  # never cut a model or user name short
         *(Column(c, justify="right") for c in ("calls", "errors", "refused", "in", "out", "USD", "p50", "p95"))],
        [[label(line.key), line.calls, line.errors, line.refused, f"{line.tokens_in:,}", f"{line.tokens_out:,}",
          f"{line.cost_usd:.4f}", f"{line.p50_ms:.0f}", f"{line.p95_ms:.0f}"] for line in lines],
        caption="tokens in/out; latency p50/p95 in ms; cost estimated",
    )


@app.command("usage")
def usage_command(
    org: str = typer.Option(..., "--org", help="Organization slug."),
    as_email: str | None = typer.Option(None, "--as", help="Read as this employee (must be an admin)."),
    month: str | None = typer.Option(None, "--month", help="A past month as YYYY-MM (default: this month)."),
    json_out: bool = JSON,
) -> None:
    """Show model calls, tokens, estimated cost and latency, against the monthly budget."""
    from cristal.models.metering import usage_summary
    from cristal.models.prices import PriceTable

    prices = PriceTable(settings().prices)
    with unit_of_work() as s:
        summary = usage_summary(s, acting(s, org, as_email), org, month=month, prices=prices)
    if json_out:
        print_json(summary.as_dict())
        return
    budget = f"${summary.budget_usd:.2f}" if summary.budget_usd is not None else "no budget"
    show("{} {}: ${:.4f} spent of {}", summary.org, summary.month, summary.spend_usd, budget)
    if not summary.total.calls and not summary.total.refused:
        show("No model calls in {}.", summary.month)
        return
    _table("By model", "model", summary.by_model)

    def address(actor: str) -> str:
        # Every caller here is a user of this organization: show the address, not the audit label.
        return actor.removeprefix("user:").removesuffix(f"@{summary.org}")

    _table("By user", "user", summary.by_user, address)
    if summary.unpriced_models:
        note('note: no price known for {}; their cost counts as 0 (add {} to config.toml)',
             ", ".join(summary.unpriced_models), '[prices."MODEL"]')
