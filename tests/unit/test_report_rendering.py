"""`nurture report`'s two renderings of a hand-made month: the terminal summary (rich) and the self-contained HTML.

They are read as their reader would: the terminal's text as printed, the HTML's figures, charts and what it loads.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rich.console import Console

from nurture.tools.report.figures import MonthlyReport, monthly_report
from nurture.tools.report.html import render_html
from nurture.tools.report.terminal import print_report

HOSTILE = "<script>alert(1)</script>[/]"  # HTML for the page, and rich markup that would break the terminal
EN = "\N{EN DASH}"  # between the numbers of a range, and for a figure there is none of
OCTOBER: dict[str, float] = {"mql|alerts": 10, "mql|accepted": 3}  # the baseline: 30.0%


def _email(sequence: str, content_id: str, variant: int, **counts: int) -> dict[str, float]:
    return {f"email|{sequence}|{content_id}|{variant}|{what}": float(n) for what, n in counts.items()}


def november(content_id: str = "aw-2-case-study") -> dict[str, float]:
    """10 MQLs, 4 accepted; known stage times, revenue and suppression; two emails sent with two subjects each."""
    return {
        "leads|new": 40,
        "stage|entered|consideration": 20,
        "mql|alerts": 10,
        "mql|accepted": 4,
        "accuracy|accepted": 4,
        "accuracy|accepted_flagged_first": 3,
        "sales|opportunity": 3,
        "sales|won": 2,
        # awareness -> consideration: 2 leads after 3 days, 5 after 12, 3 after 20: median 12, p75 20
        "days|awareness|consideration|3": 2,
        "days|awareness|consideration|12": 5,
        "days|awareness|consideration|20": 3,
        # consideration -> decision: 4 after 7 days, 2 after 14: median 7, p75 14
        "days|consideration|decision|7": 4,
        "days|consideration|decision|14": 2,
        # the first email's subjects are too close to call; the second's differ clearly
        **_email("awareness", "aw-1-intro", 0, sent=100, delivered=98, opened=30, clicked=5, clicked_automated=3),
        **_email("awareness", "aw-1-intro", 1, sent=100, delivered=97, opened=36, clicked=6),
        **_email("awareness", content_id, 0, sent=400, delivered=400, opened=80, clicked=4, bounced=2),
        **_email("awareness", content_id, 1, sent=400, delivered=400, opened=140, clicked=8, complained=1),
        "unsubscribed|total": 2,
        f"unsubscribed|awareness|{content_id}": 2,
        "revenue|won|nurtured": 120_000,
        "deals|won|nurtured": 2,
        "revenue|won|not_nurtured": 30_000,
        "deals|won|not_nurtured": 1,
        "revenue|opportunity|nurtured": 300_000,
        "revenue|opportunity|not_nurtured": 50_000,
        "reengagement|entered": 10,
        "reengagement|suppressed": 7,
        "waiting|awareness": 3,
        "sequence|awareness|completed": 3,
        "score|consideration|sum": 300,
        "score|consideration|count": 10,
    }


def review(
    content_id: str = "aw-2-case-study", aws_cost: float | None = None, content_cost: float | None = None
) -> MonthlyReport:
    months = {"2026-10": OCTOBER, "2026-11": november(content_id)}
    return monthly_report(months, "2026-11", baseline="2026-10", aws_cost=aws_cost, content_cost=content_cost)


def printed(report: MonthlyReport) -> str:
    console = Console(record=True, width=120)
    print_report(report, console)
    return console.export_text()


class _Page(HTMLParser):
    """What a reader of the page meets: its text, and each chart with the figure and caption around it."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.charts: list[dict[str, str | None]] = []
        self.captions = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "svg" and attributes.get("class") == "chart":
            self.charts.append({"aria-label": attributes.get("aria-label"), "inside": self.open[-1]})
        if tag == "figcaption" and self.open[-1] == "figure":
            self.captions += 1
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


# --- the terminal ---------------------------------------------------------------------------------------------
def test_the_terminal_summary_leads_with_the_four_metrics_beside_their_benchmark_and_baseline() -> None:
    # Given November's review against October
    # When it is printed
    text = printed(review())

    # Then the seeds' four metrics come first, with their figures
    assert text.index("MQL-to-SQL conversion") < text.index("Funnel")
    assert "Nurture monthly review: 2026-11, against 2026-10" in text
    assert f"40.0%   benchmark 30{EN}40%" in text  # the benchmark beside the figure
    assert "4 of 10 MQLs accepted by sales" in text
    assert "+10.0 points against 2026-10 (30.0%)" in text
    assert "median 12 days, p75 20 days" in text
    assert "median 7 days, p75 14 days" in text
    assert "120,000 won nurtured, 30,000 not nurtured" in text
    assert "deals won: 2 nurtured, 1 not nurtured" in text
    assert "pipeline: 300,000 nurtured, 50,000 not" in text
    assert "7 of 10 re-engaged leads suppressed" in text
    assert "70.0%   benchmark under 60% (above it, fix lead quality at acquisition)" in text
    # And, as more than 60% were suppressed, the seed's advice
    assert "More than 60% of re-engaged leads were suppressed: fix lead quality at acquisition" in text


def test_the_terminal_tables_give_email_rates_with_their_caveats_and_each_subject_tests_verdict() -> None:
    text = printed(review())

    # The email table: click rates beside the benchmark, opens marked as inflated, scanners' clicks apart
    assert f"Click (3{EN}7%)" in text
    assert f"Open* (20{EN}30%)" in text
    assert "inflated by privacy proxies" in text
    assert re.search(r"aw-1-intro\s+200\s+97\.5%\s+33\.8%\s+5\.6%", text)  # sent, delivered, open, click
    assert "counted apart and left out above: 3 clicks" in text
    # The A/B table: a verdict per email
    assert "variant 1 wins (p = 0.000)" in text
    assert "not yet, need about" in text
    # The funnel, the sequences and the model
    assert re.search(r"decision \(MQL\)\s+10\s+25\.0%", text)
    assert re.search(rf"awareness\s+3\s+3\s+{EN}\s+after aw-1-intro", text)  # completed, waiting, score, drop-off
    assert re.search(r"Accepted leads the model flagged first\s+75\.0%", text)


def test_roi_asks_for_the_costs_until_they_are_given() -> None:
    assert "Programme ROI                            set --aws-cost and --content-cost" in printed(review())

    # (120,000 - 2,100) / 2,100
    text = printed(review(aws_cost=100, content_cost=2_000))
    assert "5,614.3% (120,000 won nurtured against 2,100 spent: AWS 100, content 2,000)" in text


def test_an_email_id_is_printed_as_written_not_read_as_rich_markup() -> None:
    text = printed(review(content_id=HOSTILE))

    assert HOSTILE in text


def test_an_empty_month_says_so_in_one_line_in_the_terminal() -> None:
    # Given a month nothing was counted in (October has counters, December none)
    report = monthly_report({"2026-10": OCTOBER}, "2026-12", baseline="2026-10")

    lines = printed(report).strip().splitlines()

    assert len(lines) == 1
    assert lines[0].startswith("Nothing was counted in 2026-12: ")


# --- the HTML page ----------------------------------------------------------------------------------------------
def test_the_html_report_draws_five_labelled_charts_each_in_a_captioned_figure() -> None:
    page = read(render_html(review()))

    labels = [chart["aria-label"] for chart in page.charts]
    assert len(labels) == 5
    assert all(chart["inside"] == "figure" for chart in page.charts)
    assert page.captions == 5
    assert [label.split(":")[0] if label else None for label in labels] == [
        "Funnel from new lead to won",
        "Stage-time distributions",
        "The four metrics by month",
        "Email performance",
        "A/B subject tests",
    ]


def test_the_html_report_says_what_the_terminal_says() -> None:
    text = " ".join(" ".join(read(render_html(review())).text).split())

    for figure in (
        "MQL-to-SQL conversion",
        "40.0%",
        "4 of 10 MQLs accepted by sales",
        f"benchmark 30{EN}40%",
        "+10.0 points against 2026-10 (30.0%)",
        "median 12 days, p75 20 days",
        "median 7 days, p75 14 days",
        "120,000 won nurtured, 30,000 not nurtured",
        "7 of 10 re-engaged leads suppressed",
        "fix lead quality at acquisition",
        "inflated by privacy proxies",
        "variant 1 wins (p = 0.000)",
        "not yet, need about",
        "set --aws-cost and --content-cost",
    ):
        assert figure in text, figure
    # And the charts carry the numbers they draw
    assert "10 (25.0%)" in text  # the funnel's MQLs, of 40 new leads
    assert "35.0% (140 of 400) winner" in text  # the winning subject


def test_the_html_report_loads_nothing_from_the_network_and_stays_under_two_megabytes() -> None:
    page = render_html(review())

    assert not re.search(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(|@import|<script|<link|<iframe|<img", page, re.IGNORECASE)
    assert "default-src 'none'" in page  # and the browser is told to refuse any load
    assert len(page.encode()) < 2_000_000


def test_a_large_programmes_year_still_fits_under_two_megabytes() -> None:
    # Given twelve months of a programme with 80 emails, each with two subjects
    months = {}
    for number in range(1, 13):
        counters = dict(november())
        for i in range(80):
            counters |= _email("consideration", f"c-{i:02d}-a-rather-long-email-name", 0, sent=900, delivered=890)
            counters |= _email("consideration", f"c-{i:02d}-a-rather-long-email-name", 1, sent=900, opened=200)
        months[f"2026-{number:02d}"] = counters

    page = render_html(monthly_report(months, "2026-12", baseline="2026-01"))

    assert len(read(page).charts) == 5
    assert len(page.encode()) < 2_000_000


def test_a_hostile_email_id_is_shown_as_text_not_run() -> None:
    page = render_html(review(content_id=HOSTILE))

    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[/]" in page
    assert HOSTILE in "".join(read(page).text)


def test_a_month_without_email_still_draws_five_charts_and_says_what_is_missing() -> None:
    # Given a month of sales updates only
    report = monthly_report({"2026-11": {"mql|alerts": 5, "mql|accepted": 2}}, "2026-11")

    page = read(render_html(report))

    assert len(page.charts) == 5
    text = " ".join(page.text)
    assert "No email was delivered this month." in text
    assert "No email was sent with more than one subject this month." in text


def test_an_empty_month_says_so_plainly_and_draws_nothing() -> None:
    page = render_html(monthly_report({"2026-10": OCTOBER}, "2026-12", baseline="2026-10"))

    assert "Nothing was counted in 2026-12: " in page
    assert "<svg" not in page
    assert "<table" not in page
