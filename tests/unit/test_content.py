"""Email content: front matter, the seeds' content rules, and the ETag cache (rendering: test_rendering.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nurture.constants import CONTENT_EMAILS_PREFIX, CONTENT_PROGRAMME_KEY
from nurture.domain.content import ContentError, Email, parse_email
from nurture.domain.programme import SEQUENCES, Stage
from nurture.pipeline.content import CachedContent
from tests.support import ROOT, starter, starter_yaml

EMAILS = sorted((ROOT / "content" / "emails").glob("*.md"))


def starter_email(path: Path) -> Email:
    return parse_email(path.read_text(encoding="utf-8"), path.name)


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
