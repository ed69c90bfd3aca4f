"""The monthly review in the terminal (`nurture report`): the seeds' four metrics first, then rich tables.

What the review says and how its numbers read (`headlines`, `sections`) is built here once and shared with the HTML
report (html.py), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nurture.domain.programme import Stage
from nurture.tools.report.figures import BENCHMARKS, SUPPRESSION_ADVICE_ABOVE, EmailRow, MonthlyReport

DASH = "\N{EN DASH}"  # between two numbers of a range, and for a figure there is none of
NONE = DASH
STAGE_ORDER = tuple(stage.value for stage in Stage)
OPEN_CAVEAT = (
    "Open rates are inflated by privacy proxies (Apple Mail Privacy Protection opens every email it receives): "
    "read clicks first."
)


def percent(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:,.1f}%"


def benchmark(name: str) -> str:
    low, high = BENCHMARKS[name]
    return f"{low * 100:g}{DASH}{high * 100:g}%"


def amount(value: float) -> str:
    return f"{value:,.0f}"


def days(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:g} day" if value == 1 else f"{value:g} days"


def stage_name(stage: str) -> str:
    return stage.replace("re_", "re-").replace("_", " ")


def stage_key(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def title(report: MonthlyReport) -> str:
    against = f", against {report.baseline}" if report.baseline else ""
    return f"Nurture monthly review: {report.month}{against}"


def empty_message(report: MonthlyReport) -> str:
    return (
        f"Nothing was counted in {report.month}: no new leads, emails, sales updates or re-engagements that month. "
        "Pick another month with --month."
    )


@dataclass(frozen=True)
class Headline:
    """One of the seeds' four metrics (time in stage is two lines): what it is this month and what to read it by."""

    metric: str
    figure: str
    details: tuple[str, ...]
    benchmark: str = ""
    change: str = ""
    advice: str | None = None


def headlines(report: MonthlyReport) -> list[Headline]:
    if report.baseline is None:
        change = "set --baseline YYYY-MM to compare"
    elif report.baseline_mql_to_sql is None:
        change = f"{NONE} ({report.baseline} had no MQLs)"
    elif report.mql_to_sql_change is None:
        change = f"{NONE} (no MQLs this month)"
    else:
        change = (
            f"{report.mql_to_sql_change:+.1f} points against {report.baseline} ({percent(report.baseline_mql_to_sql)})"
        )
    lines = [
        Headline(
            "MQL-to-SQL conversion",
            percent(report.mql_to_sql),
            (f"{report.sql} of {report.mql} MQLs accepted by sales",),
            f"benchmark {benchmark('mql_to_sql')}",
            change,
        )
    ]
    for stage in report.stage_times:
        lines.append(
            Headline(
                f"Time in {stage_name(stage.from_stage)} before {stage_name(stage.to_stage)}",
                f"median {days(stage.median_days)}, p75 {days(stage.p75_days)}",
                (f"{stage.leads} {'lead' if stage.leads == 1 else 'leads'} moved on this month",),
            )
        )
    lines.append(
        Headline(
            "Sequence-influenced revenue",
            f"{amount(report.won_nurtured)} won nurtured, {amount(report.won_not_nurtured)} not nurtured",
            (
                f"deals won: {report.deals_won_nurtured} nurtured, {report.deals_won_not_nurtured} not nurtured",
                f"pipeline: {amount(report.pipeline_nurtured)} nurtured, {amount(report.pipeline_not_nurtured)} not",
            ),
        )
    )
    lines.append(
        Headline(
            "Suppression rate",
            percent(report.suppression_rate),
            (f"{report.suppressed} of {report.reengaged} re-engaged leads suppressed",),
            f"benchmark under {SUPPRESSION_ADVICE_ABOVE * 100:g}% (above it, fix lead quality at acquisition)",
            advice=report.suppression_advice,
        )
    )
    return lines


@dataclass(frozen=True)
class Section:
    """A table of the review: its rows as text, the rows to emphasise (totals), and notes read under it."""

    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    notes: tuple[str, ...] = ()
    strong: frozenset[int] = field(default_factory=frozenset)
    align: str = ""  # per column, "l" (words) or "r" (numbers); by default the first column's words, then numbers

    def left(self, column: int) -> bool:
        return (self.align[column] if column < len(self.align) else "l" if column == 0 else "r") == "l"


def _email_cells(label: str, row: EmailRow) -> tuple[str, ...]:
    rates = row.rates
    return (
        label,
        f"{row.sent:,}",
        percent(rates["delivered"]),
        percent(rates["open"]),
        percent(rates["click"]),
        percent(rates["unsubscribe"]),
        percent(rates["bounce"]),
        percent(rates["complaint"]),
    )


def funnel_section(report: MonthlyReport) -> Section:
    new = report.funnel[0][1] if report.funnel else 0
    rows = [(label, f"{count:,}", percent(count / new if new else None)) for label, count in report.funnel]
    return Section("Funnel: from new lead to won", ("Stage", "Leads", "Of new leads"), rows)


def email_section(report: MonthlyReport) -> Section:
    rows: list[tuple[str, ...]] = []
    strong = set()
    for sequence in report.sequences:
        strong.add(len(rows))
        rows.append(_email_cells(f"{stage_name(sequence.sequence)} (all emails)", sequence))
        rows.extend(
            _email_cells(f"  {row.content_id}", row) for row in report.emails if row.sequence == sequence.sequence
        )
    notes: tuple[str, ...] = (
        f"* {OPEN_CAVEAT}",
        f"Benchmarks: open {benchmark('open_rate')}, click {benchmark('click_rate')}. Rates are out of the emails "
        "delivered; bounces out of the emails sent.",
        f"Scanner clicks (link checkers, not people), counted apart and left out above: {report.scanner_clicks:,} "
        f"clicks, {report.scanner_opens:,} opens.",
    )
    if not rows:
        notes = ("No email was sent or reported on this month.",)
    columns = (
        "Sequence / email",
        "Sent",
        "Delivered",
        f"Open* ({benchmark('open_rate')})",
        f"Click ({benchmark('click_rate')})",
        "Unsubscribe",
        "Bounce",
        "Complaint",
    )
    return Section("Email performance", columns, rows, notes, frozenset(strong))


def ab_section(report: MonthlyReport) -> Section:
    rows: list[tuple[str, ...]] = []
    for test in report.ab_tests:
        for i, variant in enumerate(test.variants):
            won = variant.variant is not None and variant.variant == test.winner
            rows.append(
                (
                    test.content_id if i == 0 else "",
                    f"{variant.variant}{' (winner)' if won else ''}",
                    f"{variant.base:,}",
                    f"{variant.opened:,}",
                    percent(variant.rate(variant.opened)),
                    (f"{test.p_value:.3f}" if test.p_value is not None else NONE) if i == 0 else "",
                    test.verdict if i == 0 else "",
                )
            )
    notes = (
        ("Unique opens per email delivered, by subject variant; two-proportion z-test at 5%.",)
        if rows
        else ("No email was sent with more than one subject this month.",)
    )
    columns = ("Email", "Variant", "Delivered", "Opened", "Open rate", "p-value", "Verdict")
    return Section("A/B subject tests", columns, rows, notes, align="llrrrrl")


def sequence_section(report: MonthlyReport) -> Section:
    stages = sorted(
        {*report.completed, *report.waiting_on_content, *report.score_at_entry, *report.drop_off}, key=stage_key
    )
    rows = []
    for stage in stages:
        score = report.score_at_entry.get(stage)
        falls = report.drop_off.get(stage, "")
        rows.append(
            (
                stage_name(stage),
                f"{report.completed.get(stage, 0):,}",
                f"{report.waiting_on_content.get(stage, 0):,}",
                NONE if score is None else f"{score:g}",
                (f"after {falls}" if falls else "every email holds up") if stage in report.drop_off else NONE,
            )
        )
    notes = (
        "Drop-off: the last email before the first whose click rate falls under half the best before it. Waiting: "
        "leads that have had every email of their sequence, at the month's end (write more content).",
    )
    columns = ("Sequence", "Completed", "Waiting on content", "Intent score at entry", "Drop-off")
    return Section("Sequences", columns, rows, notes if rows else ())


def roi_text(report: MonthlyReport) -> str:
    if report.roi is None:
        if report.aws_cost is None and report.content_cost is None:
            return "set --aws-cost and --content-cost"
        return "needs a cost above zero (--aws-cost, --content-cost)"
    spent = (report.aws_cost or 0.0) + (report.content_cost or 0.0)
    return (
        f"{percent(report.roi)} ({amount(report.won_nurtured)} won nurtured against {amount(spent)} spent: "
        f"AWS {amount(report.aws_cost or 0.0)}, content {amount(report.content_cost or 0.0)})"
    )


def model_section(report: MonthlyReport) -> Section:
    rows = [
        ("MQLs that sales accepted", percent(report.accuracy_mql_accepted)),
        ("Accepted leads the model flagged first", percent(report.accuracy_flagged_first)),
        ("Unsubscribes", f"{report.unsubscribed:,}"),
        ("Programme ROI", roi_text(report)),
    ]
    return Section("Score model and return", ("Measure", "This month"), rows, align="ll")


def sections(report: MonthlyReport) -> list[Section]:
    return [
        funnel_section(report),
        email_section(report),
        ab_section(report),
        sequence_section(report),
        model_section(report),
    ]


def _headline_table(report: MonthlyReport) -> Table:
    table = Table(title="The four metrics", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Metric", style="bold")
    table.add_column("This month")
    for line in headlines(report):
        cell = Text(line.figure, style="bold")
        if line.benchmark:
            cell.append(f"   {line.benchmark}", style="cyan")
        for more in (*line.details, line.change):
            if more:
                cell.append(f"\n{more}")
        table.add_row(Text(line.metric), cell)
    return table


def _table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left", box=box.SIMPLE_HEAD)
    for i, column in enumerate(section.columns):
        table.add_column(column, justify="left" if section.left(i) else "right", overflow="fold")
    for i, row in enumerate(section.rows):
        style = "bold" if i in section.strong else ""
        table.add_row(*(Text(cell, style=style) for cell in row))
    return table


def print_report(report: MonthlyReport, console: Console) -> None:
    """The review as a person reads it in a terminal; an empty month in one plain line."""
    if report.empty:
        console.print(Text(empty_message(report), style="bold"), soft_wrap=True)
        return
    console.print(Text(title(report), style="bold underline"))
    console.print(_headline_table(report))
    for line in headlines(report):
        if line.advice:
            console.print(Text(line.advice, style="bold yellow"))
    for section in sections(report):
        if section.rows:
            console.print(_table(section))
        elif section.notes:
            console.print(Text(section.title, style="italic"))
        for note in section.notes:
            console.print(Text(note, style="dim"))
        console.print()
