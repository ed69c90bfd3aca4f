"""Rendering emails: the sandbox, Markdown into HTML and text, the footer, links, A/B subjects, profiling, snapshots.

Snapshots of every starter email live in tests/snapshots/emails; after an intended change to an email or to the
layout, refresh them with `UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_rendering.py -k snapshot` and
review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import time
import tracemalloc
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nurture.domain import rendering
from nurture.domain.content import ContentError, Email, EmailFrontMatter, parse_email
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Profiling, SenderDetails, Stage
from nurture.domain.rendering import RenderContext, RenderedEmail, choose_variant, render, sample_context
from tests.support import ROOT, starter

EMAILS = sorted((ROOT / "content" / "emails").glob("*.md"))
SNAPSHOTS = ROOT / "tests" / "snapshots" / "emails"
UNSUBSCRIBE = "https://nurture.example/v1/unsubscribe?token=UNSUB-TOKEN"
SENDER = SenderDetails(name="The Northstar team", company="Northstar", postal_address="1 Example Street, London")
PROFILING = Profiling(form_url="https://example.com/form", budget_question_url="https://example.com/budget")
CONTEXT = RenderContext(sender=SENDER, profiling=PROFILING, unsubscribe_url=UNSUBSCRIBE)
NO_TRAITS = LeadTraits()
FULL = LeadTraits(
    email="ada@northwind.example",
    first_name="Ada",
    last_name="Lovelace",
    company="Northwind",
    company_size=240,
    title="VP Marketing",
    seniority="vp",
    industry="Software",
    country="DE",
    timezone="Europe/Berlin",
    problem="slow follow-up",
    budget_authority=True,
    timeline="this quarter",
)


def email_with(
    body: str,
    subject: str = "A note",
    sequence: Stage = Stage.AWARENESS,
    subjects: list[str] | None = None,
    **meta: Any,
) -> Email:
    fields: dict[str, Any] = {"subjects": subjects} if subjects else {"subject": subject}
    return Email(meta=EmailFrontMatter(id="test-email", sequence=sequence, **fields, **meta), body=body)


def starter_email(path: Path) -> Email:
    return parse_email(path.read_text(encoding="utf-8"), path.name)


class Anchors(HTMLParser):
    """The links of an HTML part as a mail client shows them: href, text and class."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = {"href": "", "class": "", **{k: v or "" for k, v in attrs}, "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append(self._open)
            self._open = None


def links(rendered: RenderedEmail) -> dict[str, str]:
    """Each link's text -> its address."""
    return {a["text"].strip(): a["href"] for a in Anchors(rendered.html).links}


# --- the starter emails ---------------------------------------------------------------------
@pytest.mark.parametrize("traits", [NO_TRAITS, FULL], ids=["no-traits", "full-lead"])
@pytest.mark.parametrize("path", EMAILS, ids=[p.stem for p in EMAILS])
def test_every_starter_email_renders_without_printing_a_missing_trait(path: Path, traits: LeadTraits) -> None:
    # Given a starter email
    email = starter_email(path)
    # When it is rendered for the lead
    rendered = render(email, traits, sample_context(starter()))
    # Then no trait came out as Python's "None" (the copy itself may say "None of these…")
    assert rendered.subject.count("None") == email.meta.subject_options[0].count("None")
    assert rendered.text.count("None") == email.body.count("None")
    assert rendered.subject
    assert rendered.text


SNAPSHOT_LEAD = LeadTraits(first_name="Ada", company="Northwind", industry="financial_services", seniority="vp")
SNAPSHOT_CONTEXT = RenderContext(
    sender=starter().sender,
    profiling=starter().profiling,
    unsubscribe_url="https://nurture.example/v1/unsubscribe?token=SAMPLE",
    link_token="SAMPLE-CLICK-TOKEN",
)
REFRESH = "UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_rendering.py -k snapshot"


def _matches_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(f"no snapshot {path.relative_to(ROOT)}: write it with `{REFRESH}` and review it")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "snapshot", "rendered", lineterm="")
        shown = "\n".join(list(diff)[:60])
        pytest.fail(
            f"{path.relative_to(ROOT)} differs from the rendered email:\n{shown}\n"
            f"If the change is intended, refresh the snapshots with `{REFRESH}` and review the diff."
        )


@pytest.mark.parametrize("path", EMAILS, ids=[p.stem for p in EMAILS])
def test_each_starter_email_renders_as_its_html_and_text_snapshots(path: Path) -> None:
    # Given a starter email and a lead who told us some things and not others
    email = starter_email(path)
    # When it is rendered
    rendered = render(email, SNAPSHOT_LEAD, SNAPSHOT_CONTEXT)
    # Then both parts are exactly what was reviewed
    _matches_snapshot(f"{email.meta.id}.html", rendered.html)
    text = f"Subject: {rendered.subject}\nPreheader: {rendered.preheader}\n\n{rendered.text}"
    _matches_snapshot(f"{email.meta.id}.txt", text)


def test_every_snapshot_belongs_to_a_starter_email() -> None:
    emails = {starter_email(p).meta.id for p in EMAILS}
    orphans = sorted(p.name for p in SNAPSHOTS.glob("*") if p.stem not in emails)
    if orphans and os.environ.get("UPDATE_SNAPSHOTS") == "1":
        for name in orphans:
            (SNAPSHOTS / name).unlink()
        return
    assert orphans == [], f"snapshots of emails that no longer exist: remove them or run `{REFRESH}`"


# --- the sandbox ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        "{{ lead.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ lead['__class__'] }}",
        "{{ lead.first_name|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ sender.__class__.__subclasses__() }}",
    ],
)
def test_the_sandbox_refuses_attribute_tricks(body: str) -> None:
    with pytest.raises(ContentError, match="unsafe"):
        render(email_with(body), FULL, CONTEXT)


def test_an_attribute_trick_in_the_subject_is_refused_too() -> None:
    with pytest.raises(ContentError, match="unsafe"):
        render(email_with("Hi", subject="{{ lead.__class__ }}"), FULL, CONTEXT)


@pytest.mark.parametrize("body", ["{{ sender.update({'name': 'Evil Corp'}) }}", "{{ lead.update({'company': 'X'}) }}"])
def test_a_template_cannot_change_what_later_emails_see(body: str) -> None:
    # Given a template that tries to change the sender details (or the lead) for every later email
    with pytest.raises(ContentError, match="unsafe"):
        render(email_with(body), FULL, CONTEXT)
    # Then the next email, with the same context, still comes from the real sender
    rendered = render(email_with("{{ sender.name }} at {{ lead.company }}"), FULL, CONTEXT)
    assert rendered.text.startswith("The Northstar team at Northwind")
    assert CONTEXT.sender.name == "The Northstar team"


@pytest.mark.parametrize("body", ["{{ unsubscribe_link }}", "{{ lead.favourite_colour }}", "{{ sender.phone }}"])
def test_an_undefined_variable_is_a_content_error_not_a_blank(body: str) -> None:
    with pytest.raises(ContentError, match=r"undefined|no attribute"):
        render(email_with(body), FULL, CONTEXT)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{{ 1 / 0 }}", id="division-by-zero"),
        pytest.param("{% for i in range(10 ** 9) %}{% endfor %}", id="sandbox-capped-range"),
        pytest.param("{{ lead.company_size + ' staff' }}", id="int-plus-str"),
        pytest.param("{{ lead.first_name | nosuchfilter }}", id="unknown-filter"),
        pytest.param("{% if %}", id="syntax-error"),
    ],
)
def test_a_template_that_fails_is_a_content_error(body: str) -> None:
    with pytest.raises(ContentError, match="does not render"):
        render(email_with(body), FULL, CONTEXT)


def _refused_fast(body: str, subject: str = "A note") -> ContentError:
    """Render a hostile template: it must be refused as broken content within half a second, having allocated
    little memory (tracemalloc counts every Python allocation, so a huge string made and then refused fails)."""
    email = email_with(body, subject=subject)
    started = time.perf_counter()
    with pytest.raises(ContentError) as refused:
        render(email, FULL, CONTEXT)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.2f} s to refuse"
    tracemalloc.start()  # a second time, measuring memory (tracemalloc slows allocations down, so not timed)
    try:
        with pytest.raises(ContentError):
            render(email, FULL, CONTEXT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, f"allocated {peak / 1e6:.0f} MB before refusing"
    return refused.value


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{{ 'x' * 400000000 }}", id="string-times-huge"),
        pytest.param("{{ ['x' * 99999] * 100000 }}", id="list-of-big-strings-times-many"),
        pytest.param("{{ 10 ** 1000000 }}", id="huge-power"),
        pytest.param("{{ 'x'.ljust(400000000) }}", id="str-method-padding"),
        pytest.param("{{ 'x' | center(400000000) }}", id="center-filter"),
        pytest.param("{{ '%400000000s' % 'x' }}", id="percent-format-width"),
        pytest.param("{{ '{:>400000000}'.format('x') }}", id="format-method-width"),
        pytest.param("{{ '%400000000s' | format('x') }}", id="format-filter-width"),
        pytest.param("{{ ('x' * 99999) | join('y' * 99999) }}", id="join-filter"),
        pytest.param("{{ ('y' * 99999).join('x' * 99999) }}", id="join-method"),
        pytest.param("{{ ('x' * 99999) | replace('x', 'y' * 99999) }}", id="replace-filter"),
        pytest.param("{{ ('x' * 99999).replace('x', 'y' * 99999) }}", id="replace-method"),
        pytest.param("{{ ('x' * 99999) | indent(99999) }}", id="indent-filter"),
        pytest.param("{{ [1] | batch(400000000, 'x') | list }}", id="batch-fill"),
        pytest.param(
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            id="doubling-with-tilde",
        ),
        pytest.param(
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            id="doubling-with-plus",
        ),
        pytest.param("{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 40) }}", id="macro"),
        pytest.param(
            "{% set s %}{% for i in range(9000) %}{{ 'x' * 99999 }}{% endfor %}{% endset %}{{ s | length }}",
            id="set-block-buffer",
        ),
        pytest.param("{{ range(9000) | map('center', 99999) | list | length }}", id="many-big-values"),
    ],
)
def test_a_template_cannot_make_the_sender_build_something_huge(body: str) -> None:
    error = _refused_fast(body)
    assert "too much" in str(error)
    assert "test-email" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ 'Over %s users, %d%%' % ('1000000', 5) }}", "Over 1000000 users, 5%"),
        ("{{ '%-4s|%05.1f' % ('ab', 2.5) }}", "ab |002.5"),  # printed values are one line, spaces collapsed
        ("{{ '{:,} staff*'.format(lead.company_size * 1000) }}", "240,000 staff*"),
        ("{{ 'Over 1000000 {}'.format('users') }}", "Over 1000000 users"),
        ("{{ '%.2f' | format(2.5) }}", "2.50"),
    ],
)
def test_ordinary_formatting_still_works(body: str, expected: str) -> None:
    assert render(email_with(body), FULL, CONTEXT).text.startswith(expected + "\n")


def test_a_huge_subject_is_refused_too() -> None:
    assert "too much" in str(_refused_fast("Hi", subject="{{ 'x' * 400000000 }}"))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", id="range-100000"
        ),
        pytest.param("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", id="nested"),
        pytest.param(
            "{% for i in range(10000) %}{% for c in 'x' * 10000 %}{% endfor %}{% endfor %}", id="nested-over-a-string"
        ),
        pytest.param("{% for i in range(9000) %}{{ range(9000) | sum }}{% endfor %}", id="filters-in-a-loop"),
        pytest.param(
            "{% set r = range(10000) | list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
            id="nested-over-one-list",
        ),
    ],
)
def test_nested_loops_fail_fast_instead_of_running_for_seconds(body: str) -> None:
    assert "too much" in str(_refused_fast(body))


def test_a_render_that_runs_out_of_time_is_broken_content(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a render allowed no time at all (the same check stops a slow template after RENDER_SECONDS)
    monkeypatch.setattr(rendering, "RENDER_SECONDS", 0.0)
    # Then a template that loops is refused for taking too long
    with pytest.raises(ContentError, match="took longer than"):
        render(email_with("{% for i in range(3) %}{{ i }}{% endfor %}"), FULL, CONTEXT)


def test_a_body_over_the_size_limit_is_refused() -> None:
    # 200,000 characters built from small pieces: each piece is fine, the email is not
    body = "{% for i in range(2000) %}{{ 'x' * 99 }}{% endfor %}"
    with pytest.raises(ContentError, match="body is over 100000 characters"):
        render(email_with(body), FULL, CONTEXT)


def test_a_subject_over_200_characters_is_refused() -> None:
    with pytest.raises(ContentError, match="subject is over 200"):
        render(email_with("Hi", subject="{{ 'x' * 250 }}"), FULL, CONTEXT)


def test_running_out_of_memory_is_broken_content_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a template whose evaluation runs out of memory (as `'x' * 400000000` did in a small Lambda)
    def out_of_memory(*_: object) -> None:
        raise MemoryError

    monkeypatch.setattr(rendering, "_check_binop", out_of_memory)
    # Then it is broken content (skipped, never retried), not an error that fails the invocation
    with pytest.raises(ContentError, match="runs out of memory"):
        render(email_with("{{ 1 + 1 }}"), FULL, CONTEXT)


def test_a_template_that_calls_itself_forever_is_broken_content() -> None:
    with pytest.raises(ContentError, match="does not render"):
        render(email_with("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"), FULL, CONTEXT)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{{ {}[lead.first_name] }}", id="name-as-a-key"),
        pytest.param("{{ lead.first_name ~ lead.company | int(strict) }}", id="name-beside-an-error"),
        pytest.param("{{ lead.company_size | attr(lead.last_name) | upper }}", id="name-as-an-attribute"),
        pytest.param("{{ lead[lead.title] }}", id="title-as-a-key"),
    ],
)
def test_an_error_names_the_email_and_the_line_never_the_lead(body: str) -> None:
    # Given a lead whose name could end up in an error text
    lead = LeadTraits(first_name="Zephyrine", last_name="Quarrington", company="Northwind", title="Chief Scribe")
    # When a template that quotes it fails
    with pytest.raises(ContentError) as refused:
        render(email_with(f"Hello\n\n{body}"), lead, CONTEXT)
    # Then the error names the email and where, and none of the lead's words
    message = str(refused.value)
    assert "email test-email does not render (body line 3)" in message
    for word in ("Zephyrine", "Quarrington", "Chief Scribe"):
        assert word not in message
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


# --- traits in human words ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        (LeadTraits(seniority="c_level"), "C-level"),
        (LeadTraits(seniority="vp"), "VP"),
        (LeadTraits(seniority="ic"), "individual contributor"),
        (LeadTraits(industry="financial_services"), "financial services"),
        (LeadTraits(industry="saas"), "SaaS"),
        (LeadTraits(industry="medical devices"), "medical devices"),
        (LeadTraits(timeline="this_quarter"), "this quarter"),
        (LeadTraits(budget_authority=True), "yes"),
        (LeadTraits(budget_authority=False), "no"),
    ],
)
def test_traits_reach_prospects_in_human_words(traits: LeadTraits, expected: str) -> None:
    body = "[{{ lead.seniority }}{{ lead.industry }}{{ lead.timeline }}{{ lead.budget_authority }}]"
    assert render(email_with(body), traits, CONTEXT).text.startswith(f"[{expected}]")


def test_the_industry_case_study_speaks_of_the_leads_industry_in_words() -> None:
    email = starter_email(ROOT / "content" / "emails" / "decision-02-industry-case-study.md")
    rendered = render(email, LeadTraits(industry="financial_services"), CONTEXT)
    assert "with financial services in mind" in rendered.text
    assert "financial_services" not in rendered.text + rendered.html


def test_a_trait_the_lead_has_not_given_renders_as_nothing_not_none() -> None:
    rendered = render(email_with("Hello {{ lead.first_name }}, from {{ lead.company }}."), NO_TRAITS, CONTEXT)
    assert rendered.text.startswith("Hello , from .\n")


def test_a_trait_can_still_choose_what_the_email_says() -> None:
    body = "{% if lead.budget_authority %}You hold the budget.{% else %}Who holds the budget?{% endif %}"
    assert render(email_with(body), LeadTraits(budget_authority=False), CONTEXT).text.startswith("Who holds")
    assert render(email_with(body), LeadTraits(budget_authority=True), CONTEXT).text.startswith("You hold")


def test_a_leads_own_words_cannot_add_markdown_or_html() -> None:
    # Given a lead whose company name is Markdown and HTML
    company = "<b>Acme</b> **bold** [click](https://evil.example) & Co."
    rendered = render(
        email_with("Hello {{ lead.company }}\n\n# {{ lead.first_name }}"), LeadTraits(company=company), CONTEXT
    )
    # Then it reads literally in both parts, and adds no tag, emphasis or link
    assert "Hello &lt;b&gt;Acme&lt;/b&gt; **bold** [click](https://evil.example) &amp; Co." in rendered.html
    assert "<strong>" not in rendered.html
    assert "<b>" not in rendered.html
    assert all("evil" not in href for href in links(rendered).values())
    assert rendered.text.startswith(f"Hello {company}\n")


def test_raw_html_in_a_template_is_shown_as_text_not_run() -> None:
    rendered = render(email_with('<script>alert(1)</script> <img src=x onerror="alert(2)">'), FULL, CONTEXT)
    assert "<script>" not in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;script&gt;" in rendered.html


# --- Markdown, the layout and the footer ----------------------------------------------------
MARKDOWN = """Hi {{ lead.first_name }},

This is **important** and *quite* good: read [the guide](https://example.com/guide).

- first point
- second point

1. one
2. two

Best wishes,

{{ sender.name }}"""


def test_markdown_becomes_html_with_bold_links_and_lists() -> None:
    rendered = render(email_with(MARKDOWN), FULL, CONTEXT)
    assert "<strong>important</strong>" in rendered.html
    assert "<em>quite</em>" in rendered.html
    assert links(rendered)["the guide"] == "https://example.com/guide"
    assert "<ul" in rendered.html
    assert "<ol" in rendered.html
    assert "**" not in rendered.html


def test_the_text_part_reads_without_markdown_and_shows_each_link_as_label_and_address() -> None:
    rendered = render(email_with(MARKDOWN), FULL, CONTEXT)
    assert rendered.text.startswith(
        "Hi Ada,\n\nThis is important and quite good: read the guide (https://example.com/guide).\n\n"
        "- first point\n- second point\n\n1. one\n2. two\n\nBest wishes,\n\nThe Northstar team\n\n"
    )


def test_the_html_is_a_responsive_email_with_its_css_inlined() -> None:
    rendered = render(email_with(MARKDOWN), FULL, CONTEXT)
    assert 'content="width=device-width, initial-scale=1"' in rendered.html  # the viewport, for phones
    assert "max-width: 600px" in rendered.html  # a readable column on a desktop, full width on a phone
    assert '<p style="margin: 0 0 16px 0;">' in rendered.html  # inlined: Gmail drops <style> rules
    assert "@media (max-width: 620px)" in rendered.html
    assert "font-family: Helvetica, Arial, sans-serif" in rendered.html


def test_the_preheader_is_a_hidden_line_at_the_top_of_the_html() -> None:
    rendered = render(email_with("Hi", preheader="What this email is about"), FULL, CONTEXT)
    assert rendered.preheader == "What this email is about"
    body = rendered.html.split("<body", 1)[1]
    span = body.split("<span", 1)[1].split("</span>", 1)[0]
    assert "display: none" in span
    assert span.endswith(">What this email is about")


def test_a_call_to_action_is_a_button_in_html_and_a_line_in_text() -> None:
    email = email_with("Hi", cta="download", cta_label="Get the guide", cta_url="https://example.com/g")
    rendered = render(email, FULL, CONTEXT)
    [button] = [a for a in Anchors(rendered.html).links if a["class"] == "button"]
    assert (button["text"], button["href"]) == ("Get the guide", "https://example.com/g")
    assert "color: #ffffff" in button["style"]  # readable on the button's colour
    assert "Get the guide (https://example.com/g)" in rendered.text


def test_an_email_without_a_call_to_action_has_no_button() -> None:
    rendered = render(email_with("Hi", cta="none"), FULL, CONTEXT)
    assert [a for a in Anchors(rendered.html).links if a["class"] == "button"] == []


def test_a_call_to_action_that_is_not_https_is_broken_content() -> None:
    with pytest.raises(ContentError, match="https"):
        render(email_with("Hi", cta="read", cta_label="Read", cta_url="http://example.com/g"), FULL, CONTEXT)


def test_every_email_ends_with_the_sender_postal_address_and_a_visible_unsubscribe_link() -> None:
    rendered = render(email_with("Hi"), FULL, CONTEXT)
    assert links(rendered)["Unsubscribe"] == UNSUBSCRIBE
    footer = rendered.html.split('class="footer"', 1)[1]
    assert "The Northstar team, Northstar" in footer
    assert "1 Example Street, London" in footer
    assert "because you signed up for or downloaded something from Northstar" in footer
    assert rendered.text.endswith(
        "-- \nThe Northstar team, Northstar\n1 Example Street, London\n"
        "You are receiving this email because you signed up for or downloaded something from Northstar.\n"
        f"Unsubscribe ({UNSUBSCRIBE})\n"
    )


# --- signed click tokens on links -----------------------------------------------------------
def test_https_links_and_the_call_to_action_carry_the_leads_click_token() -> None:
    body = "[a](https://example.com/a) [b](https://example.com/b?utm=x#top) [c](http://example.com/c) [d](mailto:x@y.z)"
    email = email_with(body, cta="read", cta_label="Go", cta_url="https://example.com/go")
    rendered = render(email, NO_TRAITS, RenderContext(SENDER, PROFILING, UNSUBSCRIBE, link_token="T0K.en"))
    found = links(rendered)
    assert found["a"] == "https://example.com/a?nt=T0K.en"
    assert found["b"] == "https://example.com/b?utm=x&nt=T0K.en#top"
    assert found["c"] == "http://example.com/c"  # only https links are tracked
    assert found["d"] == "mailto:x@y.z"
    assert found["Go"] == "https://example.com/go?nt=T0K.en"
    assert found["Tell us a little about your team"] == "https://example.com/form?nt=T0K.en"
    assert found["Unsubscribe"] == UNSUBSCRIBE  # the unsubscribe link has its own token
    assert "a (https://example.com/a?nt=T0K.en)" in rendered.text
    assert "Go (https://example.com/go?nt=T0K.en)" in rendered.text


def test_without_a_click_token_links_are_left_as_written() -> None:
    rendered = render(email_with("[a](https://example.com/a)"), NO_TRAITS, CONTEXT)
    assert "?nt=" not in rendered.html + rendered.text


# --- progressive profiling ------------------------------------------------------------------
FORM = "https://example.com/form"
BUDGET = "https://example.com/budget"
KNOWN = LeadTraits(company_size=50, seniority="director", budget_authority=True, timeline="next quarter")


@pytest.mark.parametrize("stage", [Stage.AWARENESS, Stage.CONSIDERATION])
def test_early_emails_link_the_form_while_sales_is_missing_something(stage: Stage) -> None:
    rendered = render(email_with("Hi", sequence=stage), LeadTraits(company_size=50), CONTEXT)
    assert links(rendered)["Tell us a little about your team"] == FORM
    assert f"Tell us a little about your team ({FORM})" in rendered.text
    assert BUDGET not in rendered.html + rendered.text


def test_decision_emails_ask_the_budget_question_instead() -> None:
    rendered = render(email_with("Hi", sequence=Stage.DECISION), LeadTraits(seniority="vp"), CONTEXT)
    assert links(rendered)["who owns the budget, and when?"] == BUDGET
    assert f"who owns the budget, and when? ({BUDGET})" in rendered.text
    assert FORM not in rendered.html + rendered.text


@pytest.mark.parametrize(
    ("stage", "traits", "context"),
    [
        pytest.param(Stage.AWARENESS, KNOWN, CONTEXT, id="everything-known"),
        pytest.param(Stage.DECISION, KNOWN, CONTEXT, id="everything-known-decision"),
        pytest.param(Stage.AWARENESS, NO_TRAITS, RenderContext(SENDER, Profiling(), UNSUBSCRIBE), id="no-form-url"),
        pytest.param(Stage.RE_ENGAGEMENT, NO_TRAITS, CONTEXT, id="re-engagement"),
    ],
)
def test_no_profiling_ask_when_nothing_is_missing_or_nowhere_to_ask(
    stage: Stage, traits: LeadTraits, context: RenderContext
) -> None:
    rendered = render(email_with("Hi", sequence=stage), traits, context)
    assert "P.S." not in rendered.text
    assert FORM not in rendered.html
    assert BUDGET not in rendered.html


def test_an_email_that_lists_its_profiling_fields_asks_only_for_those() -> None:
    # Given an email that asks only about the problem, for a lead who told us everything else
    email = email_with("Hi", profiling=["problem"])
    # Then it asks while the problem is unknown, and stops once it is known
    assert FORM in render(email, KNOWN, CONTEXT).text
    assert FORM not in render(email, KNOWN.model_copy(update={"problem": "slow handoff"}), CONTEXT).text
    # And an email asking only for company size does not ask a lead who gave it, whatever else is missing
    assert FORM not in render(email_with("Hi", profiling=["company_size"]), LeadTraits(company_size=9), CONTEXT).text


# --- A/B subjects ---------------------------------------------------------------------------
AB = email_with("Hi", subjects=["Subject A", "Subject B"])


def _leads(n: int) -> Iterator[str]:
    return (f"lead-{i:05d}" for i in range(n))


def test_a_lead_gets_the_same_subject_variant_every_time() -> None:
    assert {choose_variant("lead-42", AB) for _ in range(5)} == {choose_variant("lead-42", AB)}


def test_subject_variants_are_spread_evenly_over_leads() -> None:
    three = email_with("Hi", subjects=["A", "B", "C"])
    counts = [0, 0, 0]
    for lead_id in _leads(3000):
        counts[choose_variant(lead_id, three)] += 1
    assert all(900 <= c <= 1100 for c in counts), counts


def test_a_leads_variant_of_one_email_says_nothing_about_the_next() -> None:
    other = Email(meta=AB.meta.model_copy(update={"id": "another-email"}), body="Hi")
    same = sum(choose_variant(lead_id, AB) == choose_variant(lead_id, other) for lead_id in _leads(1000))
    assert 400 <= same <= 600


def test_the_chosen_variant_decides_the_subject_and_is_reported() -> None:
    second = render(AB, FULL, RenderContext(SENDER, PROFILING, UNSUBSCRIBE, variant=1))
    assert (second.subject, second.variant) == ("Subject B", 1)
    assert "<title>Subject B</title>" in second.html
    # An email edited down to fewer subjects still renders one of them
    assert render(AB, FULL, RenderContext(SENDER, PROFILING, UNSUBSCRIBE, variant=3)).subject == "Subject B"


def test_a_subject_is_one_line_whatever_a_trait_holds() -> None:
    rendered = render(
        email_with("Hi", subject="News for {{ lead.company }}"), LeadTraits(company="A\r\nBcc: x"), CONTEXT
    )
    assert rendered.subject == "News for A Bcc: x"
    assert render(email_with("Hi", subject="Line one\nLine two"), FULL, CONTEXT).subject == "Line one Line two"


# --- nurture content preview ----------------------------------------------------------------
def test_preview_prints_every_subject_the_preheader_and_the_text_and_writes_the_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurture.tools.cli import main

    # Given a lead file
    lead = tmp_path / "lead.json"
    lead.write_text('{"first_name": "Grace", "company": "Hopper & Co", "seniority": "c_level"}', encoding="utf-8")
    out = tmp_path / "email.html"
    # When a marketer previews an A/B email for that lead
    code = main(["content", "preview", "awareness-01-why-drips-stall", "--lead", str(lead), "--out", str(out)])
    # Then both subjects, the preheader and the text part are printed, and the HTML is written
    printed = capsys.readouterr().out
    assert code == 0
    assert "Subject (variant 0 of 2): Why most nurture drips stall\n" in printed
    assert 'Subject (variant 1 of 2): The problem with "six emails over 30 days"\n' in printed
    assert "Preheader: It usually isn't the emails that fail" in printed
    assert "Hi Grace," in printed
    assert "Unsubscribe (https://example.com/v1/unsubscribe?token=sample)" in printed
    assert "Hi Grace," in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("email_id", "body", "complaint"),
    [
        pytest.param("no-such-email", None, "no email 'no-such-email'", id="unknown"),
        pytest.param(
            "broken", "{{ lead.favourite_colour }}", "6: template-variable: `lead.favourite_colour`", id="broken"
        ),
    ],
)
def test_preview_of_an_unknown_or_broken_email_exits_1_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], email_id: str, body: str | None, complaint: str
) -> None:
    from nurture.tools.cli import main

    (tmp_path / "emails").mkdir()
    (tmp_path / "programme.yaml").write_text((ROOT / "content" / "programme.yaml").read_text(encoding="utf-8"))
    if body is not None:
        (tmp_path / "emails" / f"{email_id}.md").write_text(
            f"---\nid: {email_id}\nsequence: awareness\nsubject: Hi\n---\n{body}\n", encoding="utf-8"
        )
    out = tmp_path / "out.html"
    assert main(["content", "preview", email_id, "--content", str(tmp_path), "--out", str(out)]) == 1
    assert complaint in capsys.readouterr().err
    assert not out.exists()


def test_preview_names_each_wrong_trait_of_the_lead_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nurture.tools.cli import main

    lead = tmp_path / "lead.json"
    lead.write_text(json.dumps({"company_size": "lots", "first_name": 5}), encoding="utf-8")
    assert main(["content", "preview", "awareness-01-why-drips-stall", "--lead", str(lead)]) == 1
    err = capsys.readouterr().err
    assert "company_size: Input should be a valid integer" in err
    assert "first_name: Input should be a valid string" in err
