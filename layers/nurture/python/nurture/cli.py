"""The `nurture` command: check a programme, replay a journey file (and, later, run the local stack)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from nurture.messages import as_utc
from nurture.programme import SEQUENCES, Programme, ProgrammeError, load_programme

STARTER_PROGRAMME = Path(__file__).resolve().parents[4] / "content" / "programme.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nurture", description="Behavioural B2B lead-nurture engine.")
    commands = parser.add_subparsers(dest="command", required=True)

    programme = commands.add_parser("programme", help="work with a programme file")
    programme_commands = programme.add_subparsers(dest="programme_command", required=True)
    check = programme_commands.add_parser("check", help="check a programme; print its summary or every problem")
    check.add_argument("file", type=Path)

    replay = commands.add_parser("replay", help="run a JSON Lines file of Segment messages through the engine")
    replay.add_argument("messages", type=Path, help="one Segment message (track, page, identify) per line")
    replay.add_argument("--programme", type=Path, default=None, help="default: the starter programme")
    replay.add_argument(
        "--until",
        type=_instant,
        default=None,
        help="keep the clock running to this ISO date (default: the last message)",
    )
    replay.add_argument("--json", action="store_true", help="one JSON object per transition, send and alert")

    args = parser.parse_args(argv)
    try:
        if args.command == "programme":
            return _check(args.file)
        return _replay(args)
    except ProgrammeError as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"nurture: {error.strerror}: {error.filename}", file=sys.stderr)
        return 1


def _instant(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO date such as 2026-12-31") from error


def read_programme(path: Path | None) -> Programme:
    path = path or STARTER_PROGRAMME
    return load_programme(path.read_text(encoding="utf-8"), source=str(path))


def _check(path: Path) -> int:
    programme = read_programme(path)
    print(summary(programme))
    return 0


def summary(p: Programme) -> str:
    lines = [
        f"{p.name}  (revision {p.revision})",
        "",
        f"Intent (half-life {p.intent.half_life_days:g} days; thresholds: consideration "
        f"{p.thresholds.consideration}, decision {p.thresholds.decision})",
    ]
    for rule in p.intent.rules:
        extras = [
            f"only the {_ordinal(rule.nth)}" if rule.nth else "",
            f"at most {rule.cap.points} per {rule.cap.per_days} days" if rule.cap else "",
            "routes to sales" if rule.route_to_sales else "",
        ]
        extra = ", ".join(e for e in extras if e)
        target = ", ".join(rule.when.path) if rule.when.type == "page" else rule.when.event
        lines.append(f"  {rule.points:>4}  {rule.label:<30} {rule.when.type} {target}{f'  ({extra})' if extra else ''}")
    lines += ["", "Sequences"]
    for stage in SEQUENCES:
        seq = p.sequence(stage)
        exits = []
        if seq.timeout:
            exits.append(f"after {seq.timeout.after_days} days -> {seq.timeout.to}")
        if seq.suppress_after_emails:
            exits.append(f"suppressed after {seq.suppress_after_emails} unanswered emails")
        if seq.alert_sales_on_entry:
            exits.append("alerts sales on entry")
        lines.append(
            f"  {stage.value:<14} every {seq.cadence_days:g} days, {len(seq.emails)} emails"
            f"{'; ' + '; '.join(exits) if exits else ''}"
        )
    window = p.schedule.send_window
    cap = p.schedule.frequency_cap
    lines += [
        "",
        f"Send window {'/'.join(window.days)} {window.start:%H:%M}-{window.end:%H:%M} "
        f"(default time zone {p.schedule.default_timezone}); at most {cap.max_emails} emails "
        f"per {cap.per_days} days",
        f"Fit: {len(p.fit.company_size)} size bands, {len(p.fit.seniority)} seniorities, "
        f"{len(p.fit.industry)} industries; excluded: {len(p.fit.exclude.competitor_domains)} competitor "
        f"domains, countries {', '.join(p.fit.exclude.countries) or 'none'}",
    ]
    return "\n".join(lines)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _replay(args: argparse.Namespace) -> int:
    from nurture.engine import Engine
    from nurture.replay import BadLine, print_json, print_timelines, read_messages

    programme = read_programme(args.programme)
    messages = []
    bad = 0
    with args.messages.open(encoding="utf-8") as lines:
        for item in read_messages(lines):
            if isinstance(item, BadLine):
                bad += 1
                print(f"{args.messages}:{item.number}: skipped: {item.problem}", file=sys.stderr)
            else:
                messages.append(item)
    until: datetime | None = args.until or max((m.timestamp for m in messages), default=None)
    if until is not None and any(m.timestamp > until for m in messages):
        kept = [m for m in messages if m.timestamp <= until]
        print(
            f"{len(messages) - len(kept)} messages after {until:%Y-%m-%d %H:%M} were not replayed",
            file=sys.stderr,
        )
        messages = kept
    engine = Engine(programme)
    started = time.perf_counter()
    engine.run(messages, until=until)
    elapsed = time.perf_counter() - started
    if args.json:
        print_json(engine, sys.stdout)
    elif until is not None:
        print_timelines(engine, until, sys.stdout)
    print(
        f"\n{len(messages)} messages, {len(engine.leads)} profiles, {len(engine.effects)} effects "
        f"in {elapsed:.2f}s{f'; {bad} malformed lines skipped' if bad else ''}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
