"""Email content: front matter, the sandboxed renderer, the seeds' content rules, and the ETag cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nurture.constants import CONTENT_EMAILS_PREFIX, CONTENT_PROGRAMME_KEY
from nurture.domain.content import ContentError, Email, EmailFrontMatter, parse_email, render
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import SEQUENCES, Stage
from nurture.pipeline.content import CachedContent
from nurture.pipeline.send import SENDER
from tests.support import ROOT, starter, starter_yaml

EMAILS = sorted((ROOT / "content" / "emails").glob("*.md"))
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


def starter_email(path: Path) -> Email:
    return parse_email(path.read_text(encoding="utf-8"), path.name)


def email_with(body: str, subject: str = "A note") -> Email:
    return Email(meta=EmailFrontMatter(id="test-email", sequence=Stage.AWARENESS, subject=subject), body=body)


# --- the starter emails ---------------------------------------------------------------------
@pytest.mark.parametrize("traits", [NO_TRAITS, FULL], ids=["no-traits", "full-lead"])
@pytest.mark.parametrize("path", EMAILS, ids=[p.stem for p in EMAILS])
def test_every_starter_email_renders_without_printing_a_missing_trait(path: Path, traits: LeadTraits) -> None:
    # Given a starter email
    email = starter_email(path)
    # When it is rendered for the lead
    rendered = render(email, traits, SENDER)
    # Then no trait came out as Python's "None" (the copy itself may say "None of these…")
    assert rendered.subject.count("None") == email.meta.subject_options[0].count("None")
    assert rendered.text.count("None") == email.body.count("None")
    assert rendered.subject
    assert rendered.text


def test_a_leads_own_words_are_escaped_in_the_html_part() -> None:
    rendered = render(email_with("Hello {{ lead.company }}"), LeadTraits(company="<b>Acme</b> & Co"), SENDER)
    assert rendered.html == "<p>Hello &lt;b&gt;Acme&lt;/b&gt; &amp; Co</p>"


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
        render(email_with(body), FULL, SENDER)


def test_an_attribute_trick_in_the_subject_is_refused_too() -> None:
    with pytest.raises(ContentError, match="unsafe"):
        render(email_with("Hi", subject="{{ lead.__class__ }}"), FULL, SENDER)


@pytest.mark.parametrize("body", ["{{ unsubscribe_link }}", "{{ lead.favourite_colour }}", "{{ sender.phone }}"])
def test_an_undefined_variable_is_a_content_error_not_a_blank(body: str) -> None:
    with pytest.raises(ContentError, match=r"undefined|no attribute"):
        render(email_with(body), FULL, SENDER)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{{ 1 / 0 }}", id="division-by-zero"),
        pytest.param("{% for i in range(10 ** 9) %}{% endfor %}", id="sandbox-capped-range"),
        pytest.param("{{ lead.company_size + ' staff' }}", id="int-plus-str"),
    ],
)
def test_a_template_that_fails_while_rendering_is_a_content_error(body: str) -> None:
    with pytest.raises(ContentError, match="does not render"):
        render(email_with(body), FULL, SENDER)


# --- front matter ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("Hi {{ lead.first_name }}\n", "no front matter", id="no-front-matter"),
        pytest.param(
            "---\nid: a\nsequence: awareness\nsubject: Hello\nsubjet: Typo\n---\nHi\n", "subjet", id="unknown-key"
        ),
        pytest.param("---\nid: a\nsequence: nurture\nsubject: Hello\n---\nHi\n", "sequence", id="unknown-sequence"),
        pytest.param("---\nid: a\nsequence: awareness\nsubject: Hello\ncta: call_us\n---\nHi\n", "cta", id="bad-cta"),
        pytest.param("---\n- a list\n---\nHi\n", "bad front matter", id="not-a-mapping"),
    ],
)
def test_an_email_file_with_bad_front_matter_is_rejected(text: str, complaint: str) -> None:
    with pytest.raises(ContentError, match=complaint):
        parse_email(text, "emails/x.md")


# --- the seeds' content rules ---------------------------------------------------------------
_SALES_ASK = re.compile(r"\b(demos?|book a call)\b", re.IGNORECASE)


def _all_text(email: Email) -> str:
    meta = email.meta
    return "\n".join([*meta.subject_options, meta.preheader, meta.cta_label, meta.cta_url, email.body])


@pytest.mark.parametrize("path", [p for p in EMAILS if p.name.startswith("awareness-")], ids=lambda p: p.stem)
def test_awareness_emails_never_ask_for_a_demo_or_a_call(path: Path) -> None:
    email = starter_email(path)
    assert email.meta.cta != "book_demo"
    assert _SALES_ASK.findall(_all_text(email)) == []


@pytest.mark.parametrize("stage", SEQUENCES, ids=lambda s: s.value)
def test_every_sequence_has_an_email_with_no_call_to_action(stage: Stage) -> None:
    ctas = {starter_email(ROOT / "content" / "emails" / f"{i}.md").meta.cta for i in starter().sequence(stage).emails}
    assert "none" in ctas


def test_every_programme_email_has_a_file_and_every_file_is_in_the_programme() -> None:
    programme = starter()
    listed = {i: stage for stage in SEQUENCES for i in programme.sequence(stage).emails}
    files = {p.stem: starter_email(p).meta for p in EMAILS}
    assert sorted(files) == sorted(listed)
    assert {stem: (meta.id, meta.sequence) for stem, meta in files.items()} == {i: (i, s) for i, s in listed.items()}


# --- the ETag cache -------------------------------------------------------------------------
class CountingSource:
    """A content source that answers conditional reads by ETag and counts what it was asked."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = dict(files)
        self.versions = dict.fromkeys(files, 1)
        self.checks = 0
        self.full_reads = 0

    def edit(self, key: str, text: str) -> None:
        self.files[key] = text
        self.versions[key] += 1

    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        self.checks += 1
        current = f'"v{self.versions[key]}"'
        if etag == current:
            return None
        self.full_reads += 1
        return self.files[key], current


def _email_file(subject: str) -> str:
    return f"---\nid: note\nsequence: awareness\nsubject: {subject}\n---\nHi\n"


NOTE = f"{CONTENT_EMAILS_PREFIX}note.md"


def test_an_unchanged_email_is_read_once_however_often_it_is_asked_for() -> None:
    # Given a cache that checks the ETag on every call
    source = CountingSource({NOTE: _email_file("First")})
    content = CachedContent(source, recheck_seconds=0)
    # When the email is asked for three times
    emails = [content.email("note") for _ in range(3)]
    # Then the ETag was checked each time but the file was read (and parsed) once
    assert (source.checks, source.full_reads) == (3, 1)
    assert emails[0] is emails[2]


def test_an_edited_email_is_read_again_when_its_etag_changes() -> None:
    source = CountingSource({NOTE: _email_file("First")})
    content = CachedContent(source, recheck_seconds=0)
    content.email("note")
    source.edit(NOTE, _email_file("Second"))
    assert content.email("note").meta.subject_options == ("Second",)
    assert source.full_reads == 2


def test_an_unchanged_programme_is_read_once() -> None:
    source = CountingSource({CONTENT_PROGRAMME_KEY: starter_yaml()})
    content = CachedContent(source, recheck_seconds=0)
    names = {content.programme().name for _ in range(3)}
    assert names == {starter().name}
    assert source.full_reads == 1


def test_within_the_recheck_interval_the_source_is_not_asked_at_all() -> None:
    source = CountingSource({NOTE: _email_file("First")})
    content = CachedContent(source, recheck_seconds=3600)
    content.email("note")
    source.edit(NOTE, _email_file("Second"))
    assert content.email("note").meta.subject_options == ("First",)
    assert source.checks == 1


def test_a_broken_programme_edit_keeps_the_last_good_programme_running() -> None:
    # Given a running engine with a good programme
    source = CountingSource({CONTENT_PROGRAMME_KEY: starter_yaml()})
    content = CachedContent(source, recheck_seconds=0)
    good = content.programme()
    # When a marketer uploads a programme with a mistake
    source.edit(CONTENT_PROGRAMME_KEY, starter_yaml().replace("cadence_days: 14", "cadence_days: -14"))
    # Then the engine keeps the last good one (and does not re-parse the broken file on every call)
    assert content.programme() is good
    assert content.programme() is good
    assert source.full_reads == 2
    # And the fix takes effect as soon as it is uploaded
    source.edit(CONTENT_PROGRAMME_KEY, starter_yaml().replace("points: 30", "points: 35"))
    assert content.programme().rules_by_id["pricing_page_visit"].points == 35


def test_a_broken_programme_with_no_good_one_before_it_fails_loudly() -> None:
    from nurture.domain.programme import ProgrammeError

    source = CountingSource({CONTENT_PROGRAMME_KEY: "name: [unclosed"})
    with pytest.raises(ProgrammeError):
        CachedContent(source, recheck_seconds=0).programme()


def test_a_trait_the_lead_has_not_given_renders_as_nothing_not_none() -> None:
    rendered = render(email_with("Hello {{ lead.first_name }}, from {{ lead.company }}."), LeadTraits(), SENDER)
    assert rendered.text == "Hello , from ."
