"""The programme file: the starter reproduces the seeds, and every marketer mistake is a clear error."""

from __future__ import annotations

import pytest

from nurture.domain.programme import ProgrammeError, Stage, load_programme
from nurture.tools.cli import main
from tests.support import STARTER, starter, starter_yaml


@pytest.mark.parametrize(
    ("rule_id", "points"),
    [
        ("pricing_page_visit", 30),
        ("case_study_download", 20),
        ("blog_post_read", 5),
        ("demo_request", 100),
        ("email_open", 1),
        ("third_product_page_visit", 25),
    ],
)
def test_starter_programme_weights_each_signal_as_the_seeds_do(rule_id: str, points: int) -> None:
    assert starter().rules_by_id[rule_id].points == points


def test_starter_programme_routes_only_demo_requests_to_sales() -> None:
    routed = [rule.id for rule in starter().intent.rules if rule.route_to_sales]
    assert routed == ["demo_request"]


def test_starter_programme_scores_only_the_third_product_page() -> None:
    assert starter().rules_by_id["third_product_page_visit"].nth == 3


def test_starter_programme_thresholds_are_40_and_80() -> None:
    assert (starter().thresholds.consideration, starter().thresholds.decision) == (40, 80)


@pytest.mark.parametrize(
    ("stage", "cadence_days"),
    [(Stage.AWARENESS, 14), (Stage.CONSIDERATION, 7), (Stage.DECISION, 3)],
)
def test_starter_sequences_have_the_seeds_cadence(stage: Stage, cadence_days: int) -> None:
    assert starter().sequence(stage).cadence_days == cadence_days


def test_starter_exits_match_the_sequence_table() -> None:
    sequences = starter().sequences
    assert sequences.awareness.timeout is not None
    assert (sequences.awareness.timeout.after_days, sequences.awareness.timeout.to) == (90, "re_engagement")
    assert sequences.decision.timeout is not None
    assert (sequences.decision.timeout.after_days, sequences.decision.timeout.to) == (14, "consideration")
    assert sequences.decision.timeout.measured_from == "last_engagement"
    assert sequences.decision.alert_sales_on_entry
    assert sequences.re_engagement.suppress_after_emails == 3


def test_starter_frequency_cap_fits_the_decision_cadence() -> None:
    cap = starter().schedule.frequency_cap
    assert (cap.max_emails, cap.per_days) == (3, 7)


def _problems(text: str) -> ProgrammeError:
    with pytest.raises(ProgrammeError) as raised:
        load_programme(text)
    return raised.value


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (("cadence_days: 14", "cadence_days: -14"), "sequences.awareness.cadence_days", "greater than 0"),
        (
            ("to: re_engagement", "to: reengagement"),
            "sequences.awareness.timeout.to",
            "did you mean 're_engagement'",
        ),
        (("to: consideration,", "to: decision,"), "sequences.decision.timeout.to", "another sequence"),
        (("decision: 80", "decision: 30"), "thresholds.decision", "must be above consideration"),
        (
            ("      - consideration-05-no-ask-benchmark", "      - awareness-01-why-drips-stall"),
            "sequences.consideration.emails.4",
            "already listed in sequences.awareness",
        ),
        (
            ('when: {type: page, path: "/blog/**"}', "when: {type: page, event: Blog Read}"),
            "intent.rules.2.when.event",
            "matches nothing",
        ),
        (
            ("when: {type: track, event: Case Study Downloaded}", "when: {type: track}"),
            "intent.rules.1.when.event",
            "needs the event name",
        ),
        (('path: "/blog/**"', 'path: "blog/**"'), "intent.rules.2.when.path.0", "start with '/'"),
        (
            ("cadence_days: 3", "cadance_days: 3"),
            "sequences.decision.cadance_days",
            "did you mean `cadence_days`",
        ),
        (
            ("suppress_after_emails: 3", "suppress_after_emails: 5"),
            "sequences.re_engagement.emails",
            "add emails",
        ),
        (
            ("{min: 50, max: 999, points: 20}", "{min: 40, max: 999, points: 20}"),
            "fit.company_size.1",
            "overlaps",
        ),
        (
            ("default_timezone: Europe/London", "default_timezone: Europe/Londres"),
            "schedule.default_timezone",
            "IANA",
        ),
        (
            ('start: "09:00", end: "17:00"', 'start: "17:00", end: "09:00"'),
            "schedule.send_window.end",
            "before it starts",
        ),
        (
            ("{max_emails: 3, per_days: 7,", "{max_emails: 1, per_days: 7,"),
            "schedule.frequency_cap.max_emails",
            "slower than the fastest cadence",
        ),
    ],
)
def test_each_marketer_mistake_names_the_yaml_path_and_the_fix(change: tuple[str, str], path: str, words: str) -> None:
    # Given the starter programme with one mistake
    old, new = change
    assert old in starter_yaml()
    text = starter_yaml().replace(old, new, 1)
    # When it is loaded, Then the error names where, what and how to fix it
    error = _problems(text)
    matching = [issue for issue in error.issues if issue.dotted == path]
    assert matching, str(error)
    assert words in matching[0].problem or words in matching[0].fix, str(error)
    assert matching[0].fix


def test_an_unreachable_threshold_says_what_limits_it() -> None:
    text = starter_yaml().replace("half_life_days: 90", "half_life_days: 90\n  max_score: 100")
    text = text.replace("decision: 80", "decision: 120")
    error = _problems(text)
    assert "`intent.max_score` is 100" in str(error)
    assert "thresholds.decision" in str(error)


def test_a_threshold_only_capped_rules_cannot_reach_is_reported() -> None:
    # Given a programme whose only rule scores once (nth) for 25 points
    text = starter_yaml()
    rules_start = text.index("  rules:")
    rules_end = text.index("  # Track events")
    only_nth = (
        "  rules:\n    - id: third_product_page_visit\n      label: Third product page\n"
        '      when: {type: page, path: "/products/**"}\n      points: 25\n      nth: 3\n'
    )
    error = _problems(text[:rules_start] + only_nth + text[rules_end:])
    assert {issue.dotted for issue in error.issues} == {"thresholds.consideration", "thresholds.decision"}
    assert "at most 25 points" in str(error)


def test_errors_carry_the_line_number_of_the_mistake() -> None:
    text = starter_yaml().replace("cadence_days: 7", "cadence_days: 0")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "cadence_days: 0" in row)
    assert f"line {line}, sequences.consideration.cadence_days" in str(_problems(text))


def test_every_problem_is_reported_at_once() -> None:
    text = starter_yaml().replace("cadence_days: 14", "cadence_days: -1").replace("cadence_days: 7", "cadence: 7", 1)
    assert len(_problems(text).issues) == 3  # the bad value, the unknown key and the missing cadence


def test_broken_yaml_is_reported_with_its_line() -> None:
    error = _problems("name: x\nintent: [\n")
    assert "not valid YAML" in str(error)
    assert "line" in str(error)


def test_programme_check_prints_a_summary_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["programme", "check", str(STARTER)]) == 0
    out = capsys.readouterr().out
    assert "Pricing page visit" in out
    assert "awareness      every 14 days" in out
    assert "after 90 days -> re_engagement" in out


def test_programme_check_prints_the_problems_and_exits_1(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "programme.yaml"
    broken.write_text(starter_yaml().replace("cadence_days: 14", "cadence_days: -14"))
    assert main(["programme", "check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "sequences.awareness.cadence_days" in err
    assert "Fix:" in err


def test_programme_check_on_a_missing_file_says_so(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["programme", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_the_revision_changes_when_the_programme_changes() -> None:
    changed = load_programme(starter_yaml().replace("points: 30", "points: 35"))
    assert changed.revision != starter().revision
    assert len(starter().revision) == 12
