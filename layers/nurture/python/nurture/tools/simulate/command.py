"""The `nurture simulate` command: run the synthetic buyers, print the monthly review and the drip comparison,
and write the HTML report and the simulated history (`--export`) when asked."""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from nurture.domain.programme import Programme
from nurture.tools.replay import describe
from nurture.tools.simulate.population import load_population
from nurture.tools.simulate.run import Simulation, Tally, drip, iso, readiness, simulate

BANNER = "SIMULATION: synthetic buyers, not your data"


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--leads", type=int, default=1_000, help="buyers who sign up (default: 1000)")
    command.add_argument("--days", type=int, default=180, help="simulated days (default: 180)")
    command.add_argument("--seed", type=int, default=7, help="the same seed gives the same run (default: 7)")
    command.add_argument("--programme", type=Path, default=None, help="default: the starter programme")
    command.add_argument(
        "--population", type=Path, default=None, metavar="FILE", help="YAML/JSON overriding the population's defaults"
    )
    command.add_argument("--compare", choices=["drip"], default=None, help="also run the same buyers through a drip")
    command.add_argument("--html", type=Path, default=None, metavar="FILE", help="also write the report as HTML")
    command.add_argument(
        "--export", type=Path, default=None, metavar="DIR", help="write messages.jsonl, outcomes.jsonl, truth.json"
    )
    command.add_argument("--workers", type=int, default=2, help="processes to run on (default: 2; same figures)")


def run(args: argparse.Namespace, programme: Programme) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nurture.tools.report.figures import monthly_report
    from nurture.tools.report.terminal import print_report

    try:
        population = load_population(args.population)
    except (ValidationError, yaml.YAMLError) as error:
        problem = describe(error) if isinstance(error, ValidationError) else str(error)
        print(f"nurture simulate: {args.population}: {problem}", file=sys.stderr)
        return 1
    console = Console()
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("day {task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("days", total=args.days)
        result = simulate(
            programme,
            population,
            args.leads,
            args.days,
            args.seed,
            keep_messages=args.export is not None,
            progress=lambda day: bar.update(task, completed=day),
            workers=args.workers,
        )
    other = drip(result, args.seed) if args.compare == "drip" else None
    month = busiest_month(result)
    review = monthly_report(result.counters, month, None, programme)
    console.print(BANNER, style="bold", markup=False, highlight=False)
    console.print(
        f"{args.leads:,} buyers over {args.days} days (seed {args.seed}); "
        f"monthly review of the busiest month, {month} (most sales alerts)",
        markup=False,
        highlight=False,
    )
    print_report(review, console)
    console.print(comparison_table(result, other))
    console.print(BANNER, style="bold", markup=False, highlight=False)
    if args.html is not None:
        from nurture.tools.report.html import render_html

        args.html.write_text(with_comparison(render_html(review), result, other), encoding="utf-8")
        console.print(f"HTML report: {args.html}", markup=False, highlight=False)
    if args.export is not None:
        export(result, args.export)
        console.print(f"History written to {args.export}/", markup=False, highlight=False)
    return 0


def busiest_month(result: Simulation) -> str:
    """The month with the most sales alerts (the earliest on a tie); the first month if there were none."""
    months = sorted(result.counters) or [f"{result.start:%Y-%m}"]
    return max(months, key=lambda month: (result.counters.get(month, {}).get("mql|alerts", 0.0), -months.index(month)))


ROWS = (
    ("leads handed to sales (MQLs)", "leads_handed_to_sales", "{:,}"),
    ("handoffs (a lead can be handed over again)", "handoffs", "{:,}"),
    ("accepted by sales (SQLs)", "sql", "{:,}"),
    ("MQL-to-SQL", "mql_to_sql", "{:.1%}"),
    ("median days from sign-up to SQL", "median_days_to_sql", "{:.1f}"),
    ("emails sent", "emails_sent", "{:,}"),
    ("emails sent per SQL", "emails_per_sql", "{:.1f}"),
    ("unsubscribes", "unsubscribed", "{:,}"),
    ("handoffs rejected (buyer not ready)", "rejected_handoffs", "{:,}"),
    ("sales hours on leads not ready", "sales_hours_on_unready_leads", "{:,.0f}"),
    ("deals won in the run", "won", "{:,}"),
    ("revenue won in the run", "revenue_won", "{:,.0f}"),
)


def comparison(result: Simulation, other: Tally | None) -> list[tuple[str, ...]]:
    """The comparison as rows of text: the measure, the behavioural programme, the drip (if run)."""
    minutes = result.population.minutes_per_lead
    runs = [result.behavioural.row(minutes)] + ([other.row(minutes)] if other is not None else [])
    return [
        (label, *("n/a" if run[key] is None else form.format(run[key]) for run in runs)) for label, key, form in ROWS
    ]


def _columns(other: Tally | None) -> list[str]:
    return ["", "behavioural programme"] + (["classic drip"] if other is not None else [])


def _caption(result: Simulation) -> str:
    ready = result.behavioural.ready_in_run
    return (
        f"{result.behavioural.leads:,} synthetic buyers, {ready:,} of them ready to buy during the run; "
        f"sales time at {result.population.minutes_per_lead:g} minutes per lead handed over"
    )


def comparison_table(result: Simulation, other: Tally | None) -> object:
    from rich.table import Table

    table = Table(title="Behavioural programme vs classic drip (simulated)", caption=_caption(result))
    for number, name in enumerate(_columns(other)):
        table.add_column(name, justify="left" if number == 0 else "right")
    for row in comparison(result, other):
        table.add_row(*row)
    return table


def with_comparison(page: str, result: Simulation, other: Tally | None) -> str:
    """The monthly report's HTML with the banner and the comparison added before `</body>`."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in _columns(other))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in comparison(result, other)
    )
    section = (
        f'<section id="simulation"><h2>{html.escape(BANNER)}</h2>'
        f"<p>{html.escape(_caption(result))}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</section>"
    )
    at = page.rfind("</body>")
    return page[:at] + section + page[at:] if at >= 0 else page + section


def export(result: Simulation, folder: Path) -> None:
    """The simulated history in the format `nurture calibrate` reads (docs/simulate.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "messages.jsonl").open("w", encoding="utf-8") as out:
        for message in result.messages:
            out.write(json.dumps(message | {"timestamp": iso(message["timestamp"])}, sort_keys=True) + "\n")
    with (folder / "outcomes.jsonl").open("w", encoding="utf-8") as out:
        for outcome in result.outcomes:
            line = {
                "lead_id": outcome.lead_id,
                "status": outcome.status,
                "at": iso(outcome.at),
                "amount": outcome.amount,
            }
            out.write(json.dumps(line) + "\n")
    truth = {
        "start": iso(result.start),
        "end": iso(result.end),
        "population": result.population.model_dump(mode="json"),
        "leads": {buyer.user_id: readiness(buyer) for buyer in result.buyers},
    }
    (folder / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n", encoding="utf-8")
