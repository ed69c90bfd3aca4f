"""Checked on upload, on the local stack: marketers write under `incoming/`; the bucket's S3 events invoke the
content check (functions/5_content_check), which publishes a clean file to the key the Lambdas read or reports
why not on the operations topic. What the leads get is read where they would get it: SES."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nurture import constants as c
from nurture.tools.local import resources
from nurture.tools.local.lambda_events import http_event
from nurture.tools.local.runtime import LocalStack
from tests.integration.conftest import WRITE_KEY
from tests.support import ROOT

FIRST = "emails/awareness-01-why-drips-stall.md"
ORIGINAL = (ROOT / "content" / FIRST).read_text()
PROGRAMME = (ROOT / "content" / "programme.yaml").read_text()
ORIGINAL_SUBJECTS = {"Why most nurture drips stall", 'The problem with "six emails over 30 days"'}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """A stack of this module's own: these tests change the live content and move the clock, which the session's
    shared stack must not see. (This module sorts first, before the shared stack starts.)"""
    local = LocalStack(ROOT / "content", WRITE_KEY, "it-admin-token", manual_start=datetime(2026, 1, 5, 10, tzinfo=UTC))
    local.start()
    yield local
    local.stop()


def _live(stack: LocalStack, key: str) -> str | None:
    try:
        body = stack.client("s3").get_object(Bucket=resources.CONTENT_BUCKET, Key=key)["Body"].read()
    except stack.client("s3").exceptions.NoSuchKey:
        return None
    return str(body.decode())


def _first_email_of_a_new_lead(stack: LocalStack, user: str) -> str:
    """A new lead's first email, as SES received it: its subject."""
    address = f"{user}@northwind.example"
    body = {"userId": user, "messageId": f"{user}-1", "traits": {"email": address, "first_name": "Ada"}}
    event = http_event(
        "POST",
        "/v1/identify",
        "",
        {"x-write-key": WRITE_KEY, "content-type": "application/json"},
        json.dumps(body).encode(),
        stack.now(),
    )
    assert stack.invoke("ingest", event)["statusCode"] == 200
    stack.drain()
    stack.advance(timedelta(days=3))
    [email] = [e for e in stack.emails() if address in e.to]
    return email.subject


def test_a_broken_template_uploaded_is_rejected_and_the_last_good_version_keeps_sending(stack: LocalStack) -> None:
    broken = ORIGINAL.replace("Hi {{ lead.first_name", "Hi {{ lead.favourite_colour").replace(
        "  - Why most nurture drips stall", "  - BROKEN subject"
    )

    [rejection] = stack.upload_content(FIRST, broken)

    assert _live(stack, FIRST) == ORIGINAL
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "favourite_colour" in text)
    assert f"incoming/{FIRST}:{line}: template-variable: `lead.favourite_colour`" in rejection["message"]
    assert "(fix: " in rejection["message"]
    assert rejection["subject"] == f"nurture: content rejected: incoming/{FIRST}"
    assert _first_email_of_a_new_lead(stack, "u-content-1") in ORIGINAL_SUBJECTS
    assert stack.content_rejections()[-1] == rejection


def test_a_demo_cta_moved_into_awareness_is_rejected(stack: LocalStack) -> None:
    pushy = ORIGINAL.replace("cta: read", "cta: book_demo")
    [rejection] = stack.upload_content(FIRST, pushy)
    assert "awareness-sales-cta" in rejection["message"]
    assert _live(stack, FIRST) == ORIGINAL


def test_a_good_edit_goes_live_and_the_next_lead_gets_it(stack: LocalStack) -> None:
    edited = ORIGINAL.replace("  - Why most nurture drips stall", "  - Why nurture drips stall").replace(
        '  - The problem with "six emails over 30 days"', "  - Why nurture drips stall"
    )

    assert stack.upload_content(FIRST, edited) == []

    assert _live(stack, FIRST) == edited
    assert _first_email_of_a_new_lead(stack, "u-content-2") == "Why nurture drips stall"


def test_deleting_an_email_the_programme_still_lists_is_refused(stack: LocalStack) -> None:
    [rejection] = stack.upload_content(FIRST, None)
    assert "unknown-email" in rejection["message"]
    assert _live(stack, FIRST) is not None


def test_a_programme_naming_an_email_uploaded_after_it_goes_live_with_that_email(stack: LocalStack) -> None:
    listed = PROGRAMME.replace(
        "      - awareness-07-questions-to-ask\n", "      - awareness-07-questions-to-ask\n      - awareness-08-new\n"
    )
    [rejection] = stack.upload_content("programme.yaml", listed)
    assert "unknown-email" in rejection["message"]
    assert _live(stack, "programme.yaml") == PROGRAMME

    email = (
        ORIGINAL.replace("id: awareness-01-why-drips-stall", "id: awareness-08-new")
        .replace("cta: read", "cta: none")
        .replace('cta_label: "Read: let behaviour set the pace"\n', "")
        .replace('cta_url: "https://example.com/guides/behaviour-not-calendar"\n', "")
    )
    assert stack.upload_content("emails/awareness-08-new.md", email) == []

    assert _live(stack, "emails/awareness-08-new.md") == email
    assert _live(stack, "programme.yaml") == listed  # waiting in incoming/, published once it passed


def test_files_outside_the_content_layout_are_ignored(stack: LocalStack) -> None:
    assert stack.upload_content("notes/ideas.txt", "not an email") == []
    assert _live(stack, "notes/ideas.txt") is None
    assert c.CONTENT_INCOMING_PREFIX == "incoming/"


# --- `nurture local --content DIR`: the watcher --------------------------------------------------------
def _watched_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    (folder / "emails").mkdir(parents=True)
    for path in [ROOT / "content" / "programme.yaml", *sorted((ROOT / "content" / "emails").glob("*.md"))]:
        (folder / path.relative_to(ROOT / "content")).write_bytes(path.read_bytes())
    return folder


def _wait_for(reports: list[str], text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in reports):
        assert time.monotonic() < deadline, f"no {text!r} in {reports}"
        time.sleep(0.05)


@pytest.fixture
def watched(stack: LocalStack, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    folder, reports = _watched_copy(tmp_path), list[str]()
    stop = stack.watch_content(folder, reports.append, interval=0.1)
    time.sleep(0.3)  # the watcher has taken its first look
    yield folder, reports
    stop.set()
    time.sleep(0.3)


def test_a_file_that_is_not_text_is_rejected_once_named_and_holds_nothing_back(
    stack: LocalStack, watched: tuple[Path, list[str]]
) -> None:
    folder, reports = watched
    stack.upload_content(FIRST, ORIGINAL)  # as the starter, whatever earlier tests left live
    seen = len(stack.content_rejections())
    bad = folder / "emails" / "awareness-02-three-buyer-signals.md"
    assert bad.is_file()
    bad.write_bytes(bad.read_bytes() + b"\xff\xfe")
    edited = ORIGINAL.replace("  - Why most nurture drips stall", "  - Why drips stall")
    (folder / FIRST).write_text(edited)

    _wait_for(reports, f"content: {FIRST} saved; checked and live")
    _wait_for(reports, "content: emails/awareness-02-three-buyer-signals.md saved; rejected")
    time.sleep(0.5)  # several more polls: nothing is uploaded again

    [rejection] = stack.content_rejections()[seen:]
    assert "incoming/emails/awareness-02-three-buyer-signals.md:" in rejection["message"]
    assert "encoding" in rejection["message"]
    assert sum(f"{FIRST} saved; checked and live" in line for line in reports) == 1
    assert not any("could not read" in line for line in reports)
    assert _live(stack, FIRST) == edited
    stack.upload_content(FIRST, ORIGINAL)


def test_the_console_says_what_happened_to_new_and_deleted_files(
    stack: LocalStack, watched: tuple[Path, list[str]]
) -> None:
    folder, reports = watched
    new = folder / "emails" / "awareness-09-new.md"
    new.write_text(
        ORIGINAL.replace("id: awareness-01-why-drips-stall", "id: awareness-09-new").replace(
            "cta: read", "cta: book_demo"
        )
    )
    _wait_for(reports, "content: emails/awareness-09-new.md saved; rejected")
    _wait_for(reports, "nothing was live before")
    assert not any("awareness-09-new.md was not published: the last good version" in line for line in reports)

    new.unlink()
    _wait_for(reports, "content: emails/awareness-09-new.md removed; it was never live, so nothing changed")

    (folder / FIRST).unlink()
    _wait_for(reports, f"content: {FIRST} removed; refused")
    _wait_for(reports, "the programme still lists it, so it cannot be deleted")
    message = next(line for line in reports if f"The deletion of incoming/{FIRST} was refused" in line)
    assert "remove `awareness-01-why-drips-stall` from the programme first" in message
    assert "add emails/" not in message
    assert _live(stack, FIRST) is not None
    stack.upload_content(FIRST, ORIGINAL)
