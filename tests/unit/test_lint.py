"""Content lint: the starter content is clean, and each rule catches one bad file of its kind.

Each test changes one thing in the clean starter folder and expects that rule's problem, on the right
file and line, so removing a rule fails its test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nurture.domain.lint import ContentFolder, Problem, errors, lint
from nurture.tools.cli import main
from nurture.tools.content_lint import read_folder
from tests.support import ROOT

CONTENT = ROOT / "content"
AWARENESS = "awareness-05-field-notes"  # cta: none
CONSIDERATION = "consideration-01-how-teams-like-yours"


@pytest.fixture(scope="module")
def starter_folder() -> ContentFolder:
    return read_folder(CONTENT)


def _path(email_id: str) -> str:
    return str(CONTENT / "emails" / f"{email_id}.md")


def _edit(folder: ContentFolder, email_id: str, old: str, new: str) -> ContentFolder:
    text = folder.emails[_path(email_id)]
    assert old in text, f"{old!r} is not in {email_id}"
    return replace(folder, emails={**folder.emails, _path(email_id): text.replace(old, new, 1)})


def _edit_programme(folder: ContentFolder, old: str, new: str) -> ContentFolder:
    assert folder.programme is not None
    assert old in folder.programme
    return replace(folder, programme=folder.programme.replace(old, new, 1))


def _only(problems: list[Problem], rule: str) -> list[Problem]:
    found = [p for p in problems if p.rule == rule]
    assert found, f"no {rule} problem in {[str(p) for p in problems]}"
    return found


def _line_of(folder: ContentFolder, path: str, text: str) -> int:
    source = folder.programme if path == folder.programme_path else folder.emails[path]
    assert source is not None
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_the_starter_content_lints_clean(starter_folder: ContentFolder) -> None:
    assert [str(p) for p in lint(starter_folder)] == []


# --- Front matter ----------------------------------------------------------------------------------
def test_front_matter_that_is_not_yaml_is_an_error_with_its_line(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "preheader: Common", "preheader: : Common: [")
    [problem] = _only(lint(folder), "front-matter")
    assert problem.severity == "error"
    assert problem.line == _line_of(folder, _path(AWARENESS), "preheader:")


def test_an_unknown_front_matter_key_is_named(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "cta: none", "cta: none\nsubjet: typo")
    [problem] = _only(lint(folder), "front-matter")
    assert "subjet" in problem.message
    assert problem.line == _line_of(folder, _path(AWARENESS), "subjet:")


def test_a_front_matter_key_given_twice_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "cta: none", "cta: book_demo")
    folder = _edit(folder, AWARENESS, 'cta_url: ""', 'cta_url: ""\ncta: none')
    [problem] = _only(lint(folder), "front-matter")
    assert "`cta` is given twice" in problem.message
    assert problem.line == _line_of(folder, _path(AWARENESS), "cta: none")


def test_a_file_without_front_matter_is_an_error(starter_folder: ContentFolder) -> None:
    folder = replace(starter_folder, emails={**starter_folder.emails, _path(AWARENESS): "Hello there"})
    assert _only(lint(folder), "front-matter")[0].line == 1


def test_a_file_named_after_another_id_is_an_error(starter_folder: ContentFolder) -> None:
    text = starter_folder.emails[_path(AWARENESS)]
    emails = {k: v for k, v in starter_folder.emails.items() if k != _path(AWARENESS)}
    folder = replace(starter_folder, emails={**emails, str(CONTENT / "emails" / "field-notes.md"): text})
    assert _only(lint(folder), "file-name")[0].severity == "error"


# --- Calls to action by stage ------------------------------------------------------------------------
def test_an_awareness_email_with_a_book_demo_cta_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder,
        AWARENESS,
        'cta: none\ncta_label: ""\ncta_url: ""',
        "cta: book_demo\ncta_label: See it\ncta_url: https://example.com/walkthrough",
    )
    [problem] = _only(lint(folder), "awareness-sales-cta")
    assert problem.line == _line_of(folder, _path(AWARENESS), "cta: book_demo")


@pytest.mark.parametrize(
    "ask",
    ["Book a demo", "request a demo", "book a call", "Schedule a quick call", "talk to sales", "Book a 30-minute demo"],
)
def test_an_awareness_email_asking_for_a_call_in_its_body_is_an_error(starter_folder: ContentFolder, ask) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"Ready? {ask} today.\n\nBest wishes,")
    [problem] = _only(lint(folder), "awareness-sales-cta")
    assert problem.line == _line_of(folder, _path(AWARENESS), f"{ask} today")


def test_an_awareness_email_with_a_booking_cta_label_is_an_error(starter_folder: ContentFolder) -> None:
    email = "awareness-01-why-drips-stall"
    folder = _edit(starter_folder, email, 'cta_label: "Read: let behaviour set the pace"', "cta_label: Book a call")
    assert _only(lint(folder), "awareness-sales-cta")[0].line == _line_of(folder, _path(email), "cta_label")


def test_an_awareness_cta_linking_to_a_booking_page_is_an_error(starter_folder: ContentFolder) -> None:
    email = "awareness-01-why-drips-stall"
    folder = _edit(starter_folder, email, "https://example.com/guides/behaviour-not-calendar", "https://calendly.com/x")
    [problem] = _only(lint(folder), "awareness-sales-cta")
    assert problem.line == _line_of(folder, _path(email), "cta_url")


def test_quoting_book_a_call_is_not_asking_for_one(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder,
        AWARENESS,
        "Best wishes,",
        'Sending a "book a call" CTA too early ends relationships.\n\nBest wishes,',
    )
    assert lint(folder) == []


def test_a_consideration_email_requesting_a_demo_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, CONSIDERATION, "cta: read", "cta: book_demo")
    [problem] = _only(lint(folder), "consideration-gentle-cta")
    assert problem.file == _path(CONSIDERATION)


def test_a_consideration_email_saying_request_a_demo_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, CONSIDERATION, "Best wishes,", "Request a demo today.\n\nBest wishes,")
    assert _only(lint(folder), "consideration-gentle-cta")


def test_a_decision_email_may_book_a_demo(starter_folder: ContentFolder) -> None:
    text = starter_folder.emails[_path("decision-04-next-step")]
    assert "cta: book_demo" in text
    assert not [p for p in lint(starter_folder) if p.file == _path("decision-04-next-step")]


def test_a_sequence_with_no_email_without_a_cta_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder,
        "consideration-05-no-ask-benchmark",
        'cta: none\ncta_label: ""\ncta_url: ""',
        "cta: read\ncta_label: Read more\ncta_url: https://example.com/benchmark",
    )
    for other in [p for p in folder.emails if "consideration-0" in p]:
        assert "cta: none" not in folder.emails[other]
    [problem] = _only(lint(folder), "no-cta-email")
    assert "consideration" in problem.message
    assert problem.line == _line_of(folder, folder.programme_path, "consideration-01")


def test_a_decision_sequence_without_a_next_step_is_an_error(starter_folder: ContentFolder) -> None:
    folder = starter_folder
    for email_id, cta in [
        ("decision-01-roi-calculator", "roi_calculator"),
        ("decision-03-budget-question", "reply"),
        ("decision-04-next-step", "book_demo"),
        ("decision-05-questions-for-any-vendor", "next_step"),
    ]:
        folder = _edit(folder, email_id, f"cta: {cta}", "cta: case_study")
    [problem] = _only(lint(folder), "decision-next-step")
    assert problem.severity == "error"


def test_a_cta_without_an_address_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder, CONSIDERATION, 'cta_url: "https://example.com/stories/moving-off-the-calendar"', 'cta_url: ""'
    )
    assert _only(lint(folder), "cta-url")[0].line == _line_of(folder, _path(CONSIDERATION), "cta: read")


# --- Lengths -------------------------------------------------------------------------------------------
def test_a_subject_over_60_characters_is_a_warning(starter_folder: ContentFolder) -> None:
    long = "A subject line that goes on well past what an inbox shows today"
    folder = _edit(starter_folder, CONSIDERATION, "How teams like yours moved off the calendar", long)
    [problem] = _only(lint(folder), "subject-length")
    assert problem.severity == "warning"
    assert errors(lint(folder)) == []


def test_a_subject_over_the_hard_limit_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, CONSIDERATION, "How teams like yours moved off the calendar", "x" * 101)
    assert _only(lint(folder), "subject-length")[0].severity == "error"


@pytest.mark.parametrize(
    ("preheader", "severity"), [("Short.", "warning"), ("y" * 131, "warning"), ("z" * 201, "error")]
)
def test_preheader_lengths(starter_folder: ContentFolder, preheader: str, severity: str) -> None:
    folder = _edit(
        starter_folder,
        AWARENESS,
        "preheader: Common, fixable patterns, and nothing to click at the end.",
        f"preheader: {preheader}",
    )
    assert _only(lint(folder), "preheader-length")[0].severity == severity


# --- Templates --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expression",
    [
        "{{ lead.favourite_colour }}",
        "{{ lead.email }}",
        "{{ sender.update({}) }}",
        "{{ config }}",
        "{{ lead }}",
        "{{ sender.phone }}",
    ],
)
def test_unknown_template_variables_are_errors(starter_folder: ContentFolder, expression: str) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"Note: {expression}\n\nBest wishes,")
    [problem] = _only(lint(folder), "template-variable")
    assert problem.line == _line_of(folder, _path(AWARENESS), expression)


def test_loop_variables_and_known_fields_are_fine(starter_folder: ContentFolder) -> None:
    body = "{% for word in ['a', 'b'] %}{{ word }}{{ loop.index }}{% endfor %} {{ lead['company'] or 'you' }}"
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"{body}\n\nBest wishes,")
    assert lint(folder) == []


def test_a_template_that_does_not_parse_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", "Hi {{ lead.first_name \n\nBest wishes,")
    assert _only(lint(folder), "template-syntax")[0].severity == "error"


def test_an_email_that_fails_for_a_hostile_lead_is_an_error(starter_folder: ContentFolder) -> None:
    # Renders for a lead with a short name; fails for the hostile sample's 200-character one.
    body = "{% if (lead.first_name or '')|length > 100 %}{{ 1 / 0 }}{% endif %}"
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"{body}\n\nBest wishes,")
    [problem] = _only(lint(folder), "render")
    assert "hostile" in problem.message


def test_an_email_that_fails_for_a_lead_who_told_us_nothing_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", "{{ lead.company_size + 1 }}\n\nBest wishes,")
    assert "told us nothing" in _only(lint(folder), "render")[0].message


# --- Links -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "link",
    [
        "[the guide](http://example.com/guide)",
        "[the guide](example.com/guide)",
        "<http://example.com>",
        "[x](https://exa mple.com)",
        "[x](javascript:alert(1))",
        "see http://example.com/plain",
        "[x](https://localhost/a)",
    ],
)
def test_links_that_are_malformed_or_not_https_are_errors(starter_folder: ContentFolder, link: str) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"Read {link} later.\n\nBest wishes,")
    [problem] = _only(lint(folder), "link")
    assert problem.line == _line_of(folder, _path(AWARENESS), "later.")


def test_a_cta_url_that_is_not_https_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder,
        CONSIDERATION,
        "https://example.com/stories/moving-off-the-calendar",
        "http://example.com/stories",
    )
    assert _only(lint(folder), "link")[0].line == _line_of(folder, _path(CONSIDERATION), "cta_url")


def test_https_and_mailto_links_are_fine(starter_folder: ContentFolder) -> None:
    links = "[guide](https://example.com/a?b=1#c), <https://example.com>, [mail](mailto:hello@example.com)"
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"{links}\n\nBest wishes,")
    assert lint(folder) == []


# --- The programme and its emails ---------------------------------------------------------------------
def test_a_programme_naming_an_email_that_does_not_exist_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit_programme(
        starter_folder,
        "      - decision-04-next-step\n",
        "      - decision-04-next-step\n      - decision-09-missing\n",
    )
    [problem] = _only(lint(folder), "unknown-email")
    assert (problem.file, problem.line) == (
        folder.programme_path,
        _line_of(folder, folder.programme_path, "decision-09-missing"),
    )


def test_an_email_in_no_sequence_is_a_warning(starter_folder: ContentFolder) -> None:
    folder = _edit_programme(starter_folder, "      - awareness-06-reading-list\n", "")
    [problem] = _only(lint(folder), "email-in-no-sequence")
    assert (problem.file, problem.severity) == (_path("awareness-06-reading-list"), "warning")


def test_an_email_listed_under_another_sequence_is_an_error(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, CONSIDERATION, "sequence: consideration", "sequence: decision")
    [problem] = _only(lint(folder), "sequence-mismatch")
    assert problem.line == _line_of(folder, _path(CONSIDERATION), "sequence: decision")


def test_unknown_topics_and_personas_are_errors(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder,
        AWARENESS,
        "topics: [lead_scoring]\npersonas: [practitioner]",
        "topics: [seo, gardening]\npersonas: [pirate]",
    )
    problems = lint(folder)
    assert "gardening" in _only(problems, "unknown-topic")[0].message
    assert "pirate" in _only(problems, "unknown-persona")[0].message


def test_a_sequence_too_short_for_its_timeout_is_a_warning(starter_folder: ContentFolder) -> None:
    folder = _edit_programme(starter_folder, "      - awareness-07-questions-to-ask\n", "")
    problems = lint(folder)
    [problem] = _only(problems, "sequence-too-short")
    assert problem.severity == "warning"
    assert "needs 7 emails; it has 6" in problem.message


def test_an_empty_postal_address_is_an_error(starter_folder: ContentFolder) -> None:
    assert starter_folder.programme is not None
    address = next(line for line in starter_folder.programme.splitlines() if "postal_address:" in line)
    folder = _edit_programme(starter_folder, address, '  postal_address: ""')
    [problem] = _only(lint(folder), "postal-address")
    assert problem.line == _line_of(folder, folder.programme_path, "postal_address")


def test_a_programme_that_does_not_load_is_reported_with_its_line(starter_folder: ContentFolder) -> None:
    folder = _edit_programme(starter_folder, "cadence_days: 14", "cadence_days: -14")
    [problem] = _only(lint(folder), "programme")
    assert problem.line == _line_of(folder, folder.programme_path, "cadence_days: -14")


# --- The command ------------------------------------------------------------------------------------
@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    (folder / "emails").mkdir(parents=True)
    (folder / "programme.yaml").write_text((CONTENT / "programme.yaml").read_text())
    for email in (CONTENT / "emails").glob("*.md"):
        (folder / "emails" / email.name).write_text(email.read_text())
    return folder


def test_content_lint_on_the_starter_exits_0(capsys) -> None:
    assert main(["content", "lint", str(CONTENT)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out


def test_content_lint_prints_one_line_per_problem_and_exits_1(content_copy: Path, capsys) -> None:
    email = content_copy / "emails" / f"{AWARENESS}.md"
    email.write_text(
        email.read_text().replace(
            'cta: none\ncta_label: ""\ncta_url: ""', "cta: book_demo\ncta_url: https://example.com/x"
        )
    )
    assert main(["content", "lint", str(content_copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    line = next(i for i, text in enumerate(email.read_text().splitlines(), 1) if text == "cta: book_demo")
    assert out[0].startswith(f"{email}:{line}: awareness-sales-cta: an awareness email asks for a demo")
    assert "(fix: " in out[0]
    assert out[-1] == "1 error, 0 warnings"


def test_content_lint_exits_0_on_warnings_alone(content_copy: Path, capsys) -> None:
    email = content_copy / "emails" / f"{AWARENESS}.md"
    email.write_text(email.read_text().replace("Common, fixable patterns, and nothing to click at the end.", "Hi."))
    assert main(["content", "lint", str(content_copy)]) == 0
    assert "preheader-length" in capsys.readouterr().out


def test_content_lint_json_lists_every_problem(content_copy: Path, capsys) -> None:
    email = content_copy / "emails" / f"{AWARENESS}.md"
    email.write_text(email.read_text().replace("Best wishes,", "{{ lead.shoe_size }}\n\nBest wishes,"))
    assert main(["content", "lint", str(content_copy), "--json"]) == 1
    [problem] = json.loads(capsys.readouterr().out)
    assert set(problem) == {"file", "line", "rule", "severity", "message", "fix"}
    assert (problem["file"], problem["rule"], problem["severity"]) == (str(email), "template-variable", "error")


def test_content_lint_of_a_missing_folder_exits_1(tmp_path: Path, capsys) -> None:
    assert main(["content", "lint", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err


def test_programme_check_includes_the_lint_of_its_folder(content_copy: Path, capsys) -> None:
    programme = content_copy / "programme.yaml"
    programme.write_text(
        programme.read_text().replace(
            "      - decision-04-next-step\n", "      - decision-04-next-step\n      - decision-09-gone\n"
        )
    )
    assert main(["programme", "check", str(programme)]) == 1
    out = capsys.readouterr().out
    assert "unknown-email" in out
    assert "decision-09-gone" in out


def test_programme_check_fails_on_a_demo_cta_in_awareness(content_copy: Path, capsys) -> None:
    email = content_copy / "emails" / f"{AWARENESS}.md"
    email.write_text(
        email.read_text().replace(
            'cta: none\ncta_label: ""\ncta_url: ""', "cta: book_demo\ncta_url: https://example.com/x"
        )
    )
    assert main(["programme", "check", str(content_copy / "programme.yaml")]) == 1
    assert "awareness-sales-cta" in capsys.readouterr().out


def test_programme_check_shows_topics_without_an_email_per_sequence(content_copy: Path, capsys) -> None:
    assert main(["programme", "check", str(content_copy / "programme.yaml")]) == 0
    out = capsys.readouterr().out
    gaps = out.split("Topics with no email in a sequence")[1].split("\n\n")[0]
    assert "  seo: awareness" in gaps


# --- The upload check (pipeline), with an in-memory bucket ---------------------------------------------
class _Bucket:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get(self, key: str) -> str | None:
        body = self.objects.get(key)
        return None if body is None else body.decode("utf-8")

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def put(self, key: str, text: str) -> None:
        self.objects[key] = text.encode()

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


class _Topic:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def publish(self, subject: str, message: str) -> None:
        self.messages.append((subject, message))


def _starter_bucket(prefixes: tuple[str, ...] = ("", "incoming/")) -> _Bucket:
    objects = {}
    for prefix in prefixes:
        objects[f"{prefix}programme.yaml"] = (CONTENT / "programme.yaml").read_bytes()
        for email in (CONTENT / "emails").glob("*.md"):
            objects[f"{prefix}emails/{email.name}"] = email.read_bytes()
    return _Bucket(objects)


def test_an_upload_that_adds_an_error_stays_out_and_the_marketer_is_told_where(starter_folder) -> None:
    from nurture.pipeline.content_check import ContentCheck

    bucket, topic = _starter_bucket(), _Topic()
    key = f"incoming/emails/{AWARENESS}.md"
    original = bucket.objects[f"emails/{AWARENESS}.md"]
    bucket.put(key, original.decode().replace("Best wishes,", "Book a demo now.\n\nBest wishes,"))

    [checked] = ContentCheck(bucket, topic).uploaded(key)

    assert checked.outcome == "rejected"
    assert bucket.objects[f"emails/{AWARENESS}.md"] == original
    [(subject, message)] = topic.messages
    assert subject == f"nurture: content rejected: {key}"
    line = next(i for i, text in enumerate(bucket.get(key).splitlines(), 1) if "Book a demo" in text)  # type: ignore[union-attr]
    assert f"{key}:{line}: awareness-sales-cta:" in message
    assert "(fix: " in message


def test_a_clean_upload_is_published_even_when_the_live_folder_has_an_unrelated_error() -> None:
    from nurture.pipeline.content_check import ContentCheck

    bucket, topic = _starter_bucket(prefixes=("incoming/",)), _Topic()  # nothing live yet: no programme
    key = f"incoming/emails/{AWARENESS}.md"

    first, *waiting = ContentCheck(bucket, topic).uploaded(key)

    assert first.outcome == "published"
    assert bucket.objects[f"emails/{AWARENESS}.md"] == bucket.objects[key]
    assert topic.messages == []
    # the rest of incoming/ was waiting: each file is checked again and goes live once it passes
    assert {checked.outcome for checked in waiting} == {"published"}
    assert bucket.objects["programme.yaml"] == bucket.objects["incoming/programme.yaml"]


def test_an_upload_that_is_not_text_is_rejected() -> None:
    from nurture.pipeline.content_check import ContentCheck

    bucket, topic = _starter_bucket(), _Topic()
    bucket.objects[f"incoming/emails/{AWARENESS}.md"] = b"\xff\xfe\x00binary"

    [checked] = ContentCheck(bucket, topic).uploaded(f"incoming/emails/{AWARENESS}.md")

    assert (checked.outcome, checked.problems[0].rule) == ("rejected", "encoding")
    assert bucket.get(f"emails/{AWARENESS}.md") is not None


# --- Found by trying the tools as a marketer ----------------------------------------------------------
def test_a_file_that_is_not_utf8_is_an_encoding_error_and_the_rest_is_still_linted(content_copy: Path, capsys) -> None:
    bad = content_copy / "emails" / "awareness-01-why-drips-stall.md"
    bad.write_bytes(bad.read_bytes() + b"\xff\xfe")
    pushy = content_copy / "emails" / f"{AWARENESS}.md"
    pushy.write_text(pushy.read_text().replace("Best wishes,", "Book a demo now.\n\nBest wishes,"))
    lines = len(bad.read_bytes().splitlines())

    assert main(["content", "lint", str(content_copy)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:{lines}: encoding: the file is not UTF-8 text" in out
    assert "awareness-sales-cta" in out  # the other files are still linted
    assert "unknown-email" not in out  # the file is there

    assert main(["programme", "check", str(content_copy / "programme.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:{lines}: encoding:" in out
    assert "unknown-email" not in out


def test_a_file_with_bad_front_matter_is_not_also_reported_missing(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "cta: none", "cta: none\nsubjekt: typo")
    problems = lint(folder)
    assert [p.rule for p in errors(problems)] == ["front-matter"]
    assert problems[0].message == "`subjekt` is not a front matter key"


@pytest.mark.parametrize(
    "ask",
    [
        "If you want, book a\ncall today.",
        "Book&nbsp;a call today.",
        "Let's hop on a call.",
        "Grab 15 minutes on my calendar: https://calendly.com/x",
        "Pick a time that suits: https://meetings.hubspot.com/ada",
        "See <https://cal.com/ada/intro>.",
        "Here: https://acme.chilipiper.com/book/me",
    ],
)
def test_sales_asks_are_found_as_the_reader_sees_them(starter_folder: ContentFolder, ask: str) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"Ready?\n{ask}\n\nBest wishes,")
    problems = _only(lint(folder), "awareness-sales-cta")
    assert problems[0].line == _line_of(folder, _path(AWARENESS), ask.splitlines()[0])


def test_a_quoted_phrase_wrapped_over_two_lines_is_still_talked_about(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", 'A "book a\ncall" CTA too early ends it.\n\nBest wishes,')
    assert lint(folder) == []


@pytest.mark.parametrize(
    ("expression", "fix"),
    [
        ("{{ 1/0 }}", "do not calculate"),
        ("{% for x in 'x' * 30000 %}{{ x }}{% endfor %}", "keep the template simple"),
        ("{{ 'x' * 200000 }}", "keep the template simple"),
        ("{{ sender.name.__class__ }}", "internals"),
    ],
)
def test_a_render_error_points_at_its_file_line_with_a_fix_for_its_kind(
    starter_folder: ContentFolder, expression: str, fix: str
) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", f"Some text.\n\n{expression}\n\nBest wishes,")
    [problem] = _only(lint(folder), "render")
    assert problem.line == _line_of(folder, _path(AWARENESS), expression)
    assert "body line" not in problem.message
    assert fix in problem.fix


def test_a_cta_url_that_is_not_https_is_reported_once(starter_folder: ContentFolder) -> None:
    folder = _edit(
        starter_folder, CONSIDERATION, "https://example.com/stories/moving-off-the-calendar", "http://example.com/s"
    )
    assert [p.rule for p in errors(lint(folder))] == ["link"]


def test_a_link_with_parentheses_is_named_whole(starter_folder: ContentFolder) -> None:
    folder = _edit(starter_folder, AWARENESS, "Best wishes,", "Read [x](javascript:alert(1)) later.\n\nBest wishes,")
    assert "`javascript:alert(1)`" in _only(lint(folder), "link")[0].message


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "nurture.tools.cli", "programme", "check", str(CONTENT / "programme.yaml")]
    result = subprocess.run(
        f"{' '.join(command)} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_preview_of_an_email_that_fails_lint_exits_1_naming_the_problems(content_copy: Path, capsys) -> None:
    email = content_copy / "emails" / f"{AWARENESS}.md"
    email.write_text(
        email.read_text().replace("Best wishes,", "{{ lead }} {{ sender }} {{ lead.items() }}\n\nBest wishes,")
    )
    out = content_copy / "out.html"

    assert main(["content", "preview", AWARENESS, "--content", str(content_copy), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "would not go live" in captured.err
    assert "template-variable: `lead` is used whole" in captured.err
    assert "{'" not in captured.out + captured.err  # no internal data
    assert not out.exists()


def test_the_starter_serves_every_topic_it_defines_where_it_can(content_copy: Path, capsys) -> None:
    assert main(["programme", "check", str(content_copy / "programme.yaml")]) == 0
    gaps = capsys.readouterr().out.split("Topics with no email in a sequence")[1].split("\n\n")[0]
    assert "  lead_scoring: re_engagement" in gaps.splitlines()
    personas = {
        persona
        for text in read_folder(CONTENT).emails.values()
        for persona in ("executive", "practitioner")
        if f"personas: [{persona}]" in text
    }
    assert personas == {"executive", "practitioner"}


def test_the_guide_s_example_email_is_a_real_starter_file() -> None:
    import yaml

    guide = (ROOT / "docs" / "content.md").read_text()
    example = guide.split("```markdown\n", 1)[1].split("```", 1)[0]
    front = yaml.safe_load(example.split("---\n")[1])
    real = (CONTENT / "emails" / f"{front['id']}.md").read_text()
    assert front == yaml.safe_load(real.split("---\n")[1])
    assert example.split("---\n", 2)[2].split("...")[0].rstrip(" .") in real
