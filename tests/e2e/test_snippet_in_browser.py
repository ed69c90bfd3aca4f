"""nurture.js in real headless Chromium (Debian's, through Playwright) on a website of another origin, against
`nurture local --allowed-origin`: what a visitor does becomes what an admin sees of the lead (`GET /v1/leads`).

A page load, a history navigation, a form submit and a click-through from a real email (its signed `nt` token) reach
the lead; the token leaves the address bar before anything is sent; a site not allowed has nothing stored; with
consent withheld, or Global Privacy Control on, nothing is sent or stored. Without /usr/bin/chromium the tests are
skipped locally and fail in CI (`CI=true`).
"""

from __future__ import annotations

import gzip
import html
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Route, sync_playwright

from tests.e2e.conftest import Local, start_local
from tests.support import ROOT

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
SNIPPET = ROOT / "layers" / "nurture" / "python" / "nurture" / "static" / "nurture.js"
T = TypeVar("T")

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script async src="{api}/nurture.js" data-api="{api}" data-write-key="{key}"{consent}></script></head>
<body><h1>{title}</h1>
<button type="button" onclick="history.pushState({{}}, '', '/pricing')">See pricing</button>
<form action="/thanks{query}" method="post" onsubmit="nurture.identify({{email: this.email.value}})">
<label>Work email <input name="email" type="email"></label><button type="submit">Get the guide</button></form>
</body></html>"""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a browser leaving mid-answer is no error
            super().handle_error(request, client_address)


class Website:
    """A marketing site on its own origin (127.0.0.1 on another port): every path is a page with the snippet.
    `?consent=required` makes the page wait for consent (`data-consent="required"`)."""

    def __init__(self) -> None:
        self.api = ""
        self.write_key = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                consent = parse_qs(url.query).get("consent") == ["required"]
                body = PAGE.format(
                    title=html.escape(url.path),
                    api=site.api,
                    key=site.write_key,
                    consent=' data-consent="required"' if consent else "",
                    query="?consent=required" if consent else "",
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # the form's answer: a thank-you page, which has the snippet too
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.do_GET()

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    website = Website()
    yield website
    website.close()


@pytest.fixture(scope="module")
def other_site() -> Iterator[Website]:
    """A site whose origin the stack does not allow."""
    website = Website()
    yield website
    website.close()


@pytest.fixture(scope="module")
def local(site: Website, other_site: Website) -> Iterator[Local]:
    """`nurture local` allowing `site`'s origin only (the `--allowed-origin` flag), on a manual clock."""
    with start_local("--allowed-origin", site.url, environment={"NURTURE_ALLOWED_ORIGINS": ""}) as stack:
        for website in (site, other_site):
            website.api, website.write_key = stack.url, stack.write_key
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"],
        )
        yield chromium
        chromium.close()


@dataclass
class Traffic:
    """What the browser sent to the stack's API (beacons included), and the answers it got."""

    api: str
    requests: list[Request] = field(default_factory=list)

    def messages(self) -> list[dict[str, Any]]:
        return [m for r in self.requests for m in json.loads(r.post_data or "{}").get("batch", [])]

    def bodies(self) -> list[str]:
        return [r.post_data or "" for r in self.requests]


def watch(context: BrowserContext, api: str) -> Traffic:
    traffic = Traffic(api)
    context.on("request", lambda r: traffic.requests.append(r) if r.url.startswith(f"{api}/v1/") else None)
    return traffic


def eventually(local: Local, check: Callable[[], T], seconds: float = 30) -> T:
    """`check()` once the stack has scored what the browser sent: beacons and batches arrive when they arrive."""
    deadline = time.monotonic() + seconds
    while True:
        local.drain()
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def lead_or_none(local: Local, email: str) -> dict[str, Any] | None:
    status, lead = local.call(
        "GET", f"/v1/leads?email={email}", headers={"authorization": f"Bearer {local.admin_token}"}
    )
    assert status in (200, 404), lead
    return lead if status == 200 else None


def signals(lead: dict[str, Any]) -> dict[str, int]:
    """Matching messages per intent rule, as the lead view explains the score."""
    counts: dict[str, int] = {}
    for contribution in lead["intent_explained"]:
        counts[contribution["rule"]] = counts.get(contribution["rule"], 0) + contribution["count"]
    return counts


def stored_nothing_in(page: Page, context: BrowserContext) -> None:
    assert [c["name"] for c in context.cookies() if c["name"].startswith("nurture")] == []
    assert page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('nurture'))") == []


def submit_form(page: Page, email: str) -> None:
    page.get_by_label("Work email").fill(email)
    with page.expect_navigation():
        page.get_by_role("button", name="Get the guide").click()


def settle(page: Page) -> None:
    """Long enough for the snippet's batch (sent half a second after the first message) to have gone."""
    page.wait_for_timeout(1500)


# --- the snippet is served ----------------------------------------------------------------------
def test_the_snippet_is_served_as_javascript_under_3_kb_gzipped(local: Local) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{local.url}/nurture.js", timeout=30) as answer:
        served, headers = answer.read(), answer.headers
    assert served == SNIPPET.read_bytes()
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=300"
    assert headers["x-content-type-options"] == "nosniff"
    size = len(gzip.compress(served, compresslevel=9))
    print(f"\nnurture.js: {len(served):,} bytes, {size:,} gzipped")
    assert size < 3_000


# --- a visit becomes a lead ---------------------------------------------------------------------
def test_page_views_a_history_navigation_and_a_form_submit_make_a_lead_with_the_visitors_history(
    local: Local, site: Website, browser: Browser
) -> None:
    # Given a visitor on the website, who has never been here
    context = browser.new_context()
    page = context.new_page()
    traffic = watch(context, local.url)
    try:
        # When she reads a blog post, goes to pricing (pushState), comes back (popstate) and fills in the form
        page.goto(f"{site.url}/blog/welcome")
        page.get_by_role("button", name="See pricing").click()
        assert page.url == f"{site.url}/pricing"
        page.go_back()
        assert page.url == f"{site.url}/blog/welcome"
        submit_form(page, "ada@northwind.example")
        # Then her lead has her email and every page she saw before giving it, each once
        lead = eventually(local, lambda: _lead_with(local, "ada@northwind.example", blog_post_read=2))
        assert signals(lead) == {"blog_post_read": 2, "pricing_page_visit": 1}
        # And she is one visitor, kept in a first-party cookie and localStorage alike
        [cookie] = [c for c in context.cookies() if c["name"] == "nurture_aid"]
        assert page.evaluate("localStorage.getItem('nurture.aid')") == cookie["value"]
        assert {m["anonymousId"] for m in traffic.messages()} == {cookie["value"]}
        # And each page view was a `page` message for the path shown, the form an identify with her email
        pages = {m["properties"]["path"] for m in traffic.messages() if m["type"] == "page"}
        assert pages == {"/blog/welcome", "/pricing", "/thanks"}
        identify = [m for m in traffic.messages() if m["type"] == "identify"]
        assert {m["traits"]["email"] for m in identify} == {"ada@northwind.example"}
    finally:
        context.close()


def _lead_with(local: Local, email: str, **expected: int) -> dict[str, Any]:
    lead = lead_or_none(local, email)
    assert lead is not None
    assert {rule: signals(lead).get(rule) for rule in expected} == expected, signals(lead)
    return lead


# --- a click-through from an email --------------------------------------------------------------
def test_an_email_click_through_ties_the_anonymous_browsing_to_the_lead_and_leaves_no_token(
    local: Local, site: Website, browser: Browser
) -> None:
    # Given Bea, known from a form on her laptop, who got her first nurture email (its links carry her click token)
    email = "bea@northwind.example"
    now = local.drain()
    identify = {"anonymousId": "a-bea-laptop", "messageId": "bea-form", "timestamp": now, "traits": {"email": email}}
    assert local.send("identify", identify)[0] == 200
    local.advance(1)
    lead_id = local.lead(email)["lead_id"]
    [(index, _)] = [(i, m) for i, m in enumerate(local.call("GET", "/_local/outbox")[1]) if m["to"] == email]
    # And, on her phone, she read the pricing page without telling us who she is
    context = browser.new_context()
    page = context.new_page()
    traffic = watch(context, local.url)
    try:
        page.goto(f"{site.url}/pricing")
        settle(page)
        assert lead_or_none(local, email)["intent"] == 0  # type: ignore[index]
        # When she opens the email on the phone and clicks its call to action (the link's site is our website)
        context.route("https://**/*", lambda route: _to_site(route, site))
        page.goto(f"{local.url}/_local/outbox/{index}.html")
        link = page.locator("a.button")
        href = link.get_attribute("href") or ""
        [token] = parse_qs(urlsplit(href).query)["nt"]
        with page.expect_navigation():
            link.click()
        settle(page)
        # Then the token is gone from the address bar, the rest of the link kept
        landed = urlsplit(page.url)
        assert (landed.scheme + "://" + landed.netloc, landed.path) == (site.url, urlsplit(href).path)
        assert "nt" not in parse_qs(landed.query)
        assert parse_qs(landed.query) == {k: v for k, v in parse_qs(urlsplit(href).query).items() if k != "nt"}
        # And the token left the browser once, in an identify, never in a page view's URL
        assert sum(body.count(token) for body in traffic.bodies()) >= 1
        carrying = [m for m in traffic.messages() if token in json.dumps(m)]
        assert {m["type"] for m in carrying} == {"identify"}
        assert all(m["context"]["nurture"] == {"click_token": token} for m in carrying)
        landing = [m for m in traffic.messages() if m["type"] == "page" and m["properties"]["path"] != "/pricing"]
        assert landing
        assert all("nt=" not in json.dumps(m) for m in landing)
        # And her phone's pricing visit is now on her lead, which kept its id
        lead = eventually(local, lambda: _lead_with(local, email, pricing_page_visit=1))
        assert lead["lead_id"] == lead_id
        # And what she does next on the phone lands on her lead too
        page.evaluate("history.pushState({}, '', '/pricing/enterprise')")
        eventually(local, lambda: _lead_with(local, email, pricing_page_visit=2))
        status, by_id = local.call(
            "GET", f"/v1/leads/{lead_id}", headers={"authorization": f"Bearer {local.admin_token}"}
        )
        assert (status, signals(by_id)["pricing_page_visit"]) == (200, 2)
    finally:
        context.close()


def _to_site(route: Route, site: Website) -> None:
    """The email's https link, answered as the marketing site would be: the same path and query on our website."""
    target = urlsplit(route.request.url)
    route.fulfill(status=302, headers={"location": f"{site.url}{target.path}?{target.query}"})


def test_a_forged_click_token_links_nothing_and_still_leaves_the_address_bar(
    local: Local, site: Website, browser: Browser
) -> None:
    # Given Cy's lead, and a link whose token was altered (someone guessing at other people's links)
    email = "cy@northwind.example"
    now = local.drain()
    assert local.send("identify", {"anonymousId": "a-cy", "messageId": "cy-form", "timestamp": now,
                                   "traits": {"email": email}})[0] == 200  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    try:
        # When a visitor reads pricing and arrives by the forged link
        page.goto(f"{site.url}/pricing")
        page.goto(f"{site.url}/blog/launch?utm_source=email&nt=eyJwIjoiY2xpY2siLCJsIjoieCIsImUiOjk5OTk5OTk5OTl9.forged")
        settle(page)
        # Then the token is still removed, and Cy's lead gains nothing from the visitor
        assert page.url == f"{site.url}/blog/launch?utm_source=email"
        local.drain()
        lead = lead_or_none(local, email)
        assert lead is not None
        assert signals(lead) == {}
    finally:
        context.close()


# --- what must not be sent ----------------------------------------------------------------------
def test_a_page_from_an_origin_not_allowed_has_nothing_stored(
    local: Local, other_site: Website, browser: Browser
) -> None:
    # Given the snippet on a site the stack does not allow
    context = browser.new_context()
    page = context.new_page()
    traffic = watch(context, local.url)
    try:
        # When a visitor reads pricing there and gives her email in the form (a beacon, as the page unloads)
        page.goto(f"{other_site.url}/pricing")
        settle(page)
        submit_form(page, "dot@northwind.example")
        settle(page)
        # Then the browser did send, and the stack stored nothing: no lead
        assert "dot@northwind.example" in "".join(traffic.bodies())
        local.drain()
        assert lead_or_none(local, "dot@northwind.example") is None
        # And it is the stack that refuses (a 403 naming the origin), not only the browser hiding its answer
        [beacon] = [r for r in traffic.requests if "dot@northwind.example" in (r.post_data or "")][:1]
        # (a browser names the page's origin on every cross-origin POST, beacons included: the Fetch standard)
        headers = {"origin": other_site.url, "content-type": "text/plain;charset=UTF-8"}
        status, answer = local.call("POST", "/v1/batch", raw=beacon.post_data_buffer, headers=headers)
        assert (status, other_site.url in answer["message"]) == (403, True)
    finally:
        context.close()


def test_with_consent_withheld_nothing_is_sent_or_stored_until_it_is_given(
    local: Local, site: Website, browser: Browser
) -> None:
    # Given a site that asks for consent first, and a visitor who has not given it
    context = browser.new_context()
    page = context.new_page()
    traffic = watch(context, local.url)
    try:
        # When she reads pricing, navigates, and fills in the form
        page.goto(f"{site.url}/pricing?consent=required")
        page.evaluate("history.pushState({}, '', '/blog/one?consent=required')")
        submit_form(page, "eve@northwind.example")
        settle(page)
        # Then nothing reached the API, nothing is kept in her browser, and there is no lead
        assert traffic.requests == []
        stored_nothing_in(page, context)
        local.drain()
        assert lead_or_none(local, "eve@northwind.example") is None
        # When she then gives consent, the page she is on is recorded (and nothing from before it)
        with page.expect_request(lambda r: r.url == f"{local.url}/v1/batch"):
            page.evaluate("nurture.consent(true)")
        assert [m["type"] for m in traffic.messages()] == ["page"]
        assert page.evaluate("localStorage.getItem('nurture.consent')") == "1"
    finally:
        context.close()


def test_with_global_privacy_control_nothing_is_sent_or_stored(local: Local, site: Website, browser: Browser) -> None:
    # Given a browser that sends the Global Privacy Control signal
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    traffic = watch(context, local.url)
    try:
        # When the visitor reads pricing, navigates, the site even grants consent, and she fills in the form
        page.goto(f"{site.url}/pricing")
        assert page.evaluate("navigator.globalPrivacyControl") is True
        page.evaluate("history.pushState({}, '', '/blog/one')")
        page.evaluate("nurture.consent(true)")
        submit_form(page, "gpc@northwind.example")
        settle(page)
        # Then nothing reached the API, nothing is kept in her browser, and there is no lead
        assert traffic.requests == []
        stored_nothing_in(page, context)
        local.drain()
        assert lead_or_none(local, "gpc@northwind.example") is None
    finally:
        context.close()
