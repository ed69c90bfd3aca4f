"""`nurture report --html`'s page opened in real headless Chromium (Debian's, through Playwright) with the network cut:
the charts are drawn and seen, the page is not blank, and nothing leaves it. A screenshot stays in pytest's tmp dir.

Without /usr/bin/chromium the tests are skipped locally and fail in CI (`CI=true`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from nurture.tools.report.figures import MonthlyReport, monthly_report
from nurture.tools.report.html import render_html

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHARTS = 5


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"],
        )
        yield browser
        browser.close()


def _month() -> MonthlyReport:
    """A small month with something in every chart: a funnel, stage times, two months, two emails, an A/B test."""
    emails: dict[str, float] = {}
    for variant, opened in ((0, 80), (1, 140)):
        for what, n in (("sent", 400), ("delivered", 396), ("opened", opened), ("clicked", 12 + variant * 6)):
            emails[f"email|awareness|aw-1-intro|{variant}|{what}"] = n
    for what, n in (("sent", 300), ("delivered", 298), ("opened", 70), ("clicked", 4)):
        emails[f"email|consideration|co-1-case-study|0|{what}"] = n
    november = {
        "leads|new": 60,
        "stage|entered|consideration": 30,
        "mql|alerts": 12,
        "mql|accepted": 5,
        "accuracy|accepted": 5,
        "sales|opportunity": 3,
        "sales|won": 2,
        "days|awareness|consideration|4": 6,
        "days|awareness|consideration|11": 14,
        "days|awareness|consideration|25": 5,
        "days|consideration|decision|6": 8,
        "days|consideration|decision|15": 4,
        "revenue|won|nurtured": 96_000,
        "deals|won|nurtured": 2,
        "reengagement|entered": 10,
        "reengagement|suppressed": 4,
        **emails,
    }
    october = {"mql|alerts": 10, "mql|accepted": 3, "revenue|won|nurtured": 40_000}
    return monthly_report({"2026-10": october, "2026-11": november}, "2026-11", baseline="2026-10")


def _open_offline(browser: Browser, path: Path, width: int) -> tuple[Page, list[str], list[str]]:
    """The page at `path` with every request that is not the file itself refused; what it asked for, and any
    console error (a load the page's Content-Security-Policy refused shows there, not as a request)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    def offline(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto(path.as_uri())
    return page, requested, errors


def _distinct_colours(browser: Browser, png: bytes) -> int:
    """How many different colours a screenshot has, counted by the browser's own PNG decoder on a blank page."""
    counter = browser.new_page()
    try:
        counted: int = counter.evaluate(
            """async (url) => {
                const image = new Image();
                image.src = url;
                await image.decode();
                const canvas = document.createElement("canvas");
                canvas.width = image.width;
                canvas.height = image.height;
                const context = canvas.getContext("2d");
                context.drawImage(image, 0, 0);
                const pixels = context.getImageData(0, 0, image.width, image.height).data;
                const colours = new Set();
                for (let i = 0; i < pixels.length; i += 4) {
                    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
                }
                return colours.size;
            }""",
            "data:image/png;base64," + base64.b64encode(png).decode(),
        )
    finally:
        counter.close()
    return counted


@pytest.mark.parametrize(("width"), [1280, 375], ids=["desktop", "phone"])
def test_the_html_report_shows_its_charts_offline_in_a_browser(browser: Browser, tmp_path: Path, width: int) -> None:
    # Given the HTML report of a month, written to a file as `nurture report --html` does
    report = tmp_path / "report.html"
    report.write_text(render_html(_month()), encoding="utf-8")

    # When it is opened in Chromium with the network cut
    page, requested, errors = _open_offline(browser, report, width)
    try:
        # Then every chart is drawn, visible and of a readable size
        charts = page.locator("svg.chart")
        assert charts.count() == CHARTS
        for i in range(CHARTS):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            assert chart.is_visible()
            box = chart.bounding_box()
            assert box is not None
            assert box["width"] > 300
            assert box["height"] > 40
            # And has something drawn in it: bars, lines and text, not one flat colour
            assert _distinct_colours(browser, chart.screenshot()) > 10
        # And the page as a whole is a report, not a blank page (the screenshot is kept to look at)
        screenshot = tmp_path / f"report-{width}.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert _distinct_colours(browser, screenshot.read_bytes()) > 50
        assert page.get_by_text("MQL-to-SQL conversion").first.is_visible()
        # And the page itself never scrolls sideways (a wide chart scrolls inside its own frame)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # And nothing was asked of the network, nor refused by the page's policy
        assert requested == [report.as_uri()]
        assert errors == []
    finally:
        page.close()


def test_an_empty_month_reads_as_one_plain_sentence_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    # Given the HTML report of a month nothing was counted in
    report = tmp_path / "empty.html"
    report.write_text(render_html(monthly_report({}, "2026-12")), encoding="utf-8")

    page, requested, errors = _open_offline(browser, report, 1280)
    try:
        # Then it says so, and draws no chart
        assert page.get_by_text("Nothing was counted in 2026-12:").is_visible()
        assert page.locator("svg").count() == 0
        page.screenshot(path=str(tmp_path / "empty.png"))
        assert requested == [report.as_uri()]
        assert errors == []
    finally:
        page.close()
