"""The monthly review as one self-contained HTML page (`nurture report --html FILE`) for a marketer to read or share.

Everything is inline: the CSS, and the charts as SVG drawn here; a Content-Security-Policy forbids any load, so the
page opens the same offline. It says what the terminal summary says (terminal.py's `headlines` and `sections`),
plus five charts: the funnel, stage-time distributions, the four metrics by month, email performance and A/B results.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Sequence
from html import escape

from nurture.tools.report.figures import BENCHMARKS, SUPPRESSION_ADVICE_ABOVE, MonthlyReport, StageTime
from nurture.tools.report.terminal import (
    DASH,
    NONE,
    OPEN_CAVEAT,
    Section,
    benchmark,
    empty_message,
    headlines,
    percent,
    sections,
    stage_name,
    title,
)

WIDTH = 720
BLUE, GREEN, GREY, AMBER, INK, BAND = "#2f6fb3", "#2e8b57", "#9aa5b1", "#c77c02", "#1f2933", "#e3f0e6"
NUM, STRONG = ' class="num"', ' class="strong"'
MAX_BINS = 40  # stage-time histograms: one bar per day up to this many days, then wider bins

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; margin: 0;
  background: #f5f7fa; line-height: 1.45; }
main { max-width: 960px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; } h2 { font-size: 1.2rem; margin: 32px 0 8px; }
.sub { color: #52606d; margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #d9e2ec; border-radius: 8px; padding: 12px 14px; }
.card h3 { font-size: .85rem; font-weight: 600; color: #52606d; margin: 0 0 6px; }
.card .figure { font-size: 1.25rem; font-weight: 700; }
.card p { margin: 4px 0 0; font-size: .85rem; color: #3e4c59; }
.advice { background: #fff4e0; border-left: 4px solid #c77c02; padding: 10px 14px; margin: 16px 0; font-weight: 600; }
.empty { background: #fff; border: 1px solid #d9e2ec; border-radius: 8px; padding: 16px; font-size: 1.1rem; }
figure { background: #fff; border: 1px solid #d9e2ec; border-radius: 8px; margin: 12px 0; padding: 12px; }
figcaption { font-size: .85rem; color: #52606d; margin-top: 6px; }
svg.chart { display: block; width: 100%; height: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: .9rem; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e4e7eb; text-align: left; vertical-align: top; }
th { background: #eef2f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 700; background: #f8fafc; }
.note { font-size: .85rem; color: #52606d; margin: 6px 0 0; }
@media (max-width: 600px) { figure { overflow-x: auto; } svg.chart { min-width: 560px; } }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(
    x: float, y: float, content: str, *, size: int = 12, anchor: str = "start", fill: str = INK, bold: bool = False
) -> str:
    weight = ' font-weight="600"' if bold else ""
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{weight}>'
        f"{_e(content)}</text>"
    )


def _rect(x: float, y: float, width: float, height: float, fill: str, label: str | None = None) -> str:
    tip = f"<title>{_e(label)}</title>" if label else ""
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(width, 0.0))}" height="{_n(max(height, 0.0))}" '
        f'fill="{fill}">{tip}</rect>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, dash: str = "") -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" stroke-width="1.5"{dashed}/>'
    )


def _svg(label: str, height: float, body: Sequence[str]) -> str:
    height = math.ceil(height)
    return (
        f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" font-family="system-ui, sans-serif"><title>{_e(label)}</title>{"".join(body)}</svg>'
    )


def _figure(label: str, caption: str, svg: str) -> str:
    return f'<figure aria-label="{_e(label)}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _short(text: str, most: int = 52) -> str:
    """A label that fits its panel; the tables beside the chart give it whole."""
    return text if len(text) <= most else text[: most - 1] + "…"


def _nothing(label: str, message: str) -> str:
    return _svg(label, 48, [_text(16, 30, message, size=14, fill="#52606d")])


def funnel_chart(report: MonthlyReport) -> str:
    label = "Funnel from new lead to won"
    if not any(count for _, count in report.funnel):
        return _nothing(label, "No lead moved through the funnel this month.")
    top = max(count for _, count in report.funnel)
    new = report.funnel[0][1]
    left, right, row = 150, 150, 34
    span = WIDTH - left - right
    body = []
    for i, (stage, count) in enumerate(report.funnel):
        y = 12 + i * row
        share = percent(count / new) if new else NONE
        width = span * count / top if top else 0
        colour = GREEN if i == len(report.funnel) - 1 else BLUE
        body.append(_text(left - 10, y + 17, stage, anchor="end"))
        body.append(_rect(left, y, width, row - 10, colour, f"{stage}: {count:,} ({share} of new leads)"))
        body.append(_text(left + width + 8, y + 17, f"{count:,} ({share})"))
    return _svg(label, 12 + len(report.funnel) * row, body)


def _bins(stage: StageTime) -> tuple[int, list[int]]:
    """The histogram's bin width in days and the leads in each bin."""
    last = max(stage.days)
    width = max(1, math.ceil((last + 1) / MAX_BINS))
    counts = [0] * (last // width + 1)
    for day, leads in stage.days.items():
        counts[day // width] += leads
    return width, counts


def _histogram(stage: StageTime, x0: float, panel: float, height: float) -> list[str]:
    name = f"{stage_name(stage.from_stage)} → {stage_name(stage.to_stage)}"
    body = [_text(x0, 16, name, bold=True)]
    if not stage.days:
        return [*body, _text(x0, 50, f"No lead moved from {stage_name(stage.from_stage)} this month.", fill="#52606d")]
    width, counts = _bins(stage)
    top, plot_top, plot_bottom = max(counts), 52.0, height - 30
    step = panel / len(counts)
    days_span = width * len(counts)

    def x_of(day: float) -> float:
        return x0 + panel * day / days_span

    def bar_of(day: float) -> int:
        return int(day // width)

    body.append(
        _text(x0, 34, f"{stage.leads} leads: median {_day(stage.median_days)}, p75 {_day(stage.p75_days)}", size=11)
    )
    for i, leads in enumerate(counts):
        if leads:
            bar = (plot_bottom - plot_top) * leads / top
            days = f"day {i * width}" if width == 1 else f"days {i * width}{DASH}{(i + 1) * width - 1}"
            body.append(
                _rect(x0 + i * step + 0.5, plot_bottom - bar, max(step - 1, 1.0), bar, BLUE, f"{days}: {leads} leads")
            )
    body.append(_line(x0, plot_bottom, x0 + panel, plot_bottom, GREY))
    marks = [(stage.median_days, "median", "4 3", "end"), (stage.p75_days, "p75", "1 3", "start")]
    if (
        stage.median_days is not None
        and stage.p75_days is not None
        and bar_of(stage.median_days) == bar_of(stage.p75_days)
    ):
        marks = [(stage.median_days, "median and p75", "4 3", "end")]
    for value, mark, dash, anchor in marks:
        if value is None:
            continue
        x = x_of(bar_of(value) * width + width / 2)  # the middle of the value's bar
        if anchor == "start" and x + 30 > x0 + panel:
            anchor = "end"
        if anchor == "end" and x - 6 * len(mark) < x0:
            anchor = "start"
        body.append(_line(x, plot_top - 6, x, plot_bottom, AMBER, dash))
        body.append(_text(x + (-4 if anchor == "end" else 4), plot_top, mark, size=10, anchor=anchor, fill=AMBER))
    body.append(_text(x0, plot_bottom + 16, "0 days", size=10, fill="#52606d"))
    body.append(_text(x0 + panel, plot_bottom + 16, f"{days_span - 1} days", size=10, anchor="end", fill="#52606d"))
    body.append(_text(x0 + panel, 34, f"most in one bar: {top}", size=10, anchor="end", fill="#52606d"))
    return body


def _day(value: float | None) -> str:
    return NONE if value is None else f"{value:g} d"


def stage_time_chart(report: MonthlyReport) -> str:
    label = "Stage-time distributions: days in awareness before consideration and in consideration before decision"
    panel, gap, height = (WIDTH - 40) / 2, 40, 220
    body = []
    for i, stage in enumerate(report.stage_times):
        body.extend(_histogram(stage, i * (panel + gap), panel, height))
    return _svg(label, height, body)


def _month_label(month: str, first: bool) -> str:
    year, number = month.split("-")
    name = calendar.month_abbr[int(number)]
    return f"{name} {year[2:]}" if first or number == "01" else name


def _compact(value: float) -> str:
    for size, suffix in ((1e6, "m"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _scale(top: float, plot_top: float, plot_bottom: float) -> Callable[[float], float]:
    """Where a value sits between the plot's bottom (0) and its top (`top`)."""

    def y_of(value: float) -> float:
        return plot_bottom - (plot_bottom - plot_top) * value / top

    return y_of


def trend_chart(report: MonthlyReport) -> str:
    label = "The four metrics by month"
    # (title, the trend's key, how its numbers read, the benchmark band shaded, the advice threshold dashed)
    panels: list[tuple[str, str, str, tuple[float, float] | None, float | None]] = [
        ("MQL-to-SQL conversion", "mql_to_sql", "rate", BENCHMARKS["mql_to_sql"], None),
        ("Median days in awareness", "median_days_in_awareness", "days", None, None),
        ("Revenue won, nurtured", "won_nurtured", "amount", None, None),
        ("Suppression rate", "suppression_rate", "rate", None, SUPPRESSION_ADVICE_ABOVE),
    ]
    months = report.trend
    if not months:
        return _nothing(label, "No month to show.")
    panel_w, panel_h, gap = (WIDTH - 30) / 2, 150.0, 30.0
    body = []
    for p, (name, key, kind, band, threshold) in enumerate(panels):
        x0, y0 = (p % 2) * (panel_w + gap), (p // 2) * (panel_h + gap)
        values = [month.get(key) for month in months]
        numbers = [float(v) for v in values if isinstance(v, int | float)]
        top = max([*numbers, *(band or ()), threshold or 0.0], default=0.0) or 1.0
        plot_top, plot_bottom = y0 + 40, y0 + panel_h - 20
        y_of = _scale(top, plot_top, plot_bottom)
        body.append(_text(x0, y0 + 16, name, bold=True))
        if band is not None:
            body.append(_rect(x0, y_of(band[1]), panel_w, y_of(band[0]) - y_of(band[1]), BAND))
            body.append(_text(x0 + panel_w, y0 + 16, f"benchmark {benchmark(key)} (shaded)", size=10, anchor="end"))
        if threshold is not None:
            body.append(_line(x0, y_of(threshold), x0 + panel_w, y_of(threshold), AMBER, "4 3"))
            body.append(
                _text(x0 + panel_w, y0 + 16, f"advice above {threshold * 100:g}% (dashed)", size=10, anchor="end")
            )
        step = panel_w / len(months)
        for i, (month, value) in enumerate(zip(months, values, strict=True)):
            x = x0 + i * step
            body.append(
                _text(
                    x + step / 2, plot_bottom + 14, _month_label(str(month["month"]), i == 0), size=9, anchor="middle"
                )
            )
            if not isinstance(value, int | float):
                body.append(_text(x + step / 2, plot_bottom - 4, NONE, size=10, anchor="middle", fill="#52606d"))
                continue
            shown = percent(value) if kind == "rate" else _compact(value) if kind == "amount" else f"{value:g}"
            colour = GREEN if i == len(months) - 1 else BLUE
            y = y_of(float(value))
            body.append(_rect(x + step * 0.15, y, step * 0.7, plot_bottom - y, colour, f"{month['month']}: {shown}"))
            body.append(_text(x + step / 2, y - 4, shown, size=9 if len(months) > 6 else 10, anchor="middle"))
        body.append(_line(x0, plot_bottom, x0 + panel_w, plot_bottom, GREY))
    return _svg(label, 2 * panel_h + gap, body)


def email_chart(report: MonthlyReport) -> str:
    label = "Email performance: open and click rates per email"
    rows = [row for row in report.emails if row.base]
    if not rows:
        return _nothing(label, "No email was delivered this month.")
    panel_w, gap, row_h, head = (WIDTH - 40) / 2, 40.0, 44.0, 44.0
    body = []
    for p, (name, key, rate, colour) in enumerate(
        (
            ("Open rate (inflated by privacy proxies)", "open_rate", "open", GREY),
            ("Click rate", "click_rate", "click", BLUE),
        )
    ):
        x0 = p * (panel_w + gap)
        low, high = BENCHMARKS[key]
        top = max([high * 1.25, *((r.rates[rate] or 0.0) for r in rows)])
        body.append(_text(x0, 16, name, bold=True))
        body.append(_text(x0, 32, f"benchmark {benchmark(key)} (shaded)", size=10, fill="#52606d"))
        band_x = x0 + panel_w * low / top
        body.append(_rect(band_x, head - 4, panel_w * (high - low) / top, row_h * len(rows), BAND))
        for i, row in enumerate(rows):
            y = head + i * row_h
            value = row.rates[rate] or 0.0
            width = (panel_w - 60) * value / top
            body.append(_text(x0, y + 12, _short(f"{stage_name(row.sequence)} · {row.content_id}"), size=11))
            body.append(_rect(x0, y + 17, width, 16, colour, f"{row.content_id}: {percent(value)} {rate}"))
            body.append(_text(x0 + width + 6, y + 30, percent(value), size=11))
    return _svg(label, head + row_h * len(rows) + 4, body)


def ab_chart(report: MonthlyReport) -> str:
    label = "A/B subject tests: open rate per variant, with the verdict"
    if not report.ab_tests:
        return _nothing(label, "No email was sent with more than one subject this month.")
    left, row_h = 110.0, 26.0
    span = WIDTH - left - 180
    top = max(0.1, *(v.rate(v.opened) or 0.0 for test in report.ab_tests for v in test.variants)) * 1.1
    body, y = [], 0.0
    for test in report.ab_tests:
        body.append(_text(0, y + 16, _short(test.content_id, 100), bold=True))
        body.append(_text(0, y + 34, test.verdict, size=11, fill=GREEN if test.winner is not None else AMBER))
        y += 44
        for variant in test.variants:
            rate = variant.rate(variant.opened)
            won = variant.variant is not None and variant.variant == test.winner
            width = span * (rate or 0.0) / top
            name = f"variant {variant.variant}"
            body.append(_text(left - 10, y + 15, name, size=11, anchor="end"))
            body.append(_rect(left, y + 3, width, row_h - 8, GREEN if won else BLUE, f"{name}: {percent(rate)} opened"))
            shown = f"{percent(rate)} ({variant.opened:,} of {variant.base:,})" + (" winner" if won else "")
            body.append(_text(left + width + 8, y + 15, shown, size=11, bold=won))
            y += row_h
        y += 12
    return _svg(label, y, body)


def _headline_cards(report: MonthlyReport) -> str:
    cards = []
    for line in headlines(report):
        extra = "".join(f"<p>{_e(text)}</p>" for text in (*line.details, line.benchmark, line.change) if text)
        cards.append(
            f'<div class="card"><h3>{_e(line.metric)}</h3><div class="figure">{_e(line.figure)}</div>{extra}</div>'
        )
    advice = "".join(f'<p class="advice">{_e(line.advice)}</p>' for line in headlines(report) if line.advice)
    return (
        '<section aria-label="The four metrics"><h2>The four metrics</h2>'
        f'<div class="cards">{"".join(cards)}</div>{advice}</section>'
    )


def _table(section: Section) -> str:
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in section.notes)
    if not section.rows:
        return notes
    head = "".join(
        f'<th scope="col"{"" if section.left(i) else NUM}>{_e(column)}</th>' for i, column in enumerate(section.columns)
    )
    body = []
    for r, row in enumerate(section.rows):
        cells = "".join(f"<td{'' if section.left(i) else NUM}>{_e(cell.strip())}</td>" for i, cell in enumerate(row))
        body.append(f"<tr{STRONG if r in section.strong else ''}>{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{notes}'
    )


def _page(heading: str, sub: str, content: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_e(heading)}</title><style>{CSS}</style></head>"
        f'<body><main><h1>{_e(heading)}</h1><p class="sub">{_e(sub)}</p>{content}</main></body></html>\n'
    )


def render_html(report: MonthlyReport) -> str:
    """The review as one HTML document that needs no network; an empty month says so and draws nothing."""
    if report.empty:
        return _page(title(report), "Nurture programme", f'<p class="empty">{_e(empty_message(report))}</p>')
    funnel, emails, ab, stages, model = sections(report)
    sub = f"Nurture programme, month {report.month}" + (f", compared with {report.baseline}" if report.baseline else "")
    content = (
        _headline_cards(report),
        f"<h2>{_e(funnel.title)}</h2>",
        _figure(
            "Funnel chart",
            "Leads at each step this month, from new lead to won; the share is out of the month's new leads.",
            funnel_chart(report),
        ),
        _table(funnel),
        "<h2>Time in stage</h2>",
        _figure(
            "Stage-time chart",
            "How many days leads spent in a stage before moving on (moves made this month). Dashed line: the "
            "median; dotted line: the 75th percentile.",
            stage_time_chart(report),
        ),
        "<h2>Metrics by month</h2>",
        _figure(
            "Metrics by month chart",
            "The four metrics for each month shown, this month in green.",
            trend_chart(report),
        ),
        f"<h2>{_e(emails.title)}</h2>",
        _figure(
            "Email performance chart",
            f"Unique opens and clicks per email delivered. {OPEN_CAVEAT} Scanner clicks are left out.",
            email_chart(report),
        ),
        _table(emails),
        f"<h2>{_e(ab.title)}</h2>",
        _figure(
            "A/B results chart",
            "Unique opens per email delivered, by subject variant; the verdict of a two-proportion z-test at 5%.",
            ab_chart(report),
        ),
        _table(ab),
        f"<h2>{_e(stages.title)}</h2>",
        _table(stages) or '<p class="note">No sequence activity this month.</p>',
        f"<h2>{_e(model.title)}</h2>",
        _table(model),
    )
    return _page(title(report), sub, "".join(content))
