"""An email as a browser shows it: `nurture content preview --out` opened in headless Chromium (Debian's).

Mail clients are browsers with opinions; this catches an email that renders blank, hides its unsubscribe link or
overflows a phone's screen. Without /usr/bin/chromium the test is skipped locally and fails in CI (`CI=true`).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
EMAIL = "awareness-03-cost-of-slow-follow-up"  # a list, a call to action and (for the sample lead) a profiling ask


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


@pytest.fixture(scope="module")
def preview(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("preview") / f"{EMAIL}.html"
    answer = subprocess.run(
        [sys.executable, "-m", "nurture.tools.cli", "content", "preview", EMAIL, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert "Unsubscribe (" in answer.stdout  # the text part, printed
    return out


def _distinct_colours(page: Page, png: bytes) -> int:
    """How many different colours a screenshot has, counted by the browser's own PNG decoder."""
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    counted: int = page.evaluate(
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
        data_url,
    )
    return counted


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (375, 740)], ids=["desktop", "phone"])
def test_a_previewed_email_shows_its_text_button_and_unsubscribe_link_in_a_browser(
    browser: Browser, preview: Path, width: int, height: int
) -> None:
    # Given the email written by `nurture content preview --out`, opened as a desktop and as a phone would
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(preview.as_uri())
        # Then the screenshot is an email, not a blank page: text in several colours, a button, a grey frame
        png = page.screenshot(full_page=True)
        blank = browser.new_page()
        try:
            assert _distinct_colours(blank, png) > 50
        finally:
            blank.close()
        # And its call to action and its unsubscribe link can be seen
        button = page.get_by_role("link", name="Download the follow-up audit worksheet")
        assert button.is_visible()
        unsubscribe = page.get_by_role("link", name="Unsubscribe")
        unsubscribe.scroll_into_view_if_needed()
        assert unsubscribe.is_visible()
        box = unsubscribe.bounding_box()
        assert box is not None
        assert box["width"] > 20
        assert box["height"] > 8
        assert box["x"] + box["width"] <= width
        # And nothing is wider than the screen (no sideways scrolling on a phone)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.close()
