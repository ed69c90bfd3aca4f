"""The `nurture` command: check a programme, replay a journey file, run the local stack or the demo, and
write the OpenAPI document."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from nurture.domain.content import ContentError, parse_email
from nurture.domain.messages import as_utc
from nurture.domain.programme import SEQUENCES, EmailTags, Programme, ProgrammeError, load_programme
from nurture.tools import REPO

STARTER_PROGRAMME = REPO / "content" / "programme.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nurture", description="Behavioural B2B lead-nurture engine.")
    commands = parser.add_subparsers(dest="command", required=True)

    programme = commands.add_parser("programme", help="work with a programme file")
    programme_commands = programme.add_subparsers(dest="programme_command", required=True)
    check = programme_commands.add_parser("check", help="check a programme; print its summary or every problem")
    check.add_argument("file", type=Path)

    content = commands.add_parser("content", help="check and preview the emails marketers write")
    content_commands = content.add_subparsers(dest="content_command", required=True)
    lint = content_commands.add_parser(
        "lint", help="check a content folder (programme and emails) like the upload check"
    )
    lint.add_argument("dir", type=Path, nargs="?", default=STARTER_PROGRAMME.parent, help="default: content/")
    lint.add_argument("--json", action="store_true", help="one JSON array of problems, for machines")
    preview = content_commands.add_parser("preview", help="render one email as a lead would get it")
    preview.add_argument("email_id", metavar="EMAIL_ID")
    preview.add_argument("--lead", type=Path, default=None, help="a JSON file of the lead's traits (default: a sample)")
    preview.add_argument("--out", type=Path, default=None, help="write the HTML here")
    preview.add_argument("--content", type=Path, default=STARTER_PROGRAMME.parent, help="default: content/")

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

    local = commands.add_parser("local", help="run the whole engine on this machine, with moto as AWS")
    _stack_options(local)
    local.add_argument(
        "--clock", choices=["real", "manual"], default="real", help="manual: time moves only by POST /_local/clock"
    )
    local.add_argument("--start", type=_instant, default=None, help="manual clock: start here (default: now)")
    local.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a website (such as http://localhost:3000) whose pages may send events with nurture.js: repeat for more; "
        "adds to NURTURE_ALLOWED_ORIGINS (default: none, so browsers are refused)",
    )
    local.add_argument(
        "--content",
        type=Path,
        default=None,
        help="the content folder to serve and watch: saved files that lint clean go live (default: content/)",
    )
    local.add_argument(
        "--slack-webhook",
        metavar="URL",
        default=os.environ.get("NURTURE_SLACK_WEBHOOK", ""),
        help="post sales alerts to this Slack incoming webhook (default: $NURTURE_SLACK_WEBHOOK; none: Slack off)",
    )

    demo = commands.add_parser("demo", help="play three scripted buyers through the local stack")
    _stack_options(demo)

    rebuild = commands.add_parser(
        "rebuild", help="re-project leads from the events table (after an outage, or to try a programme)"
    )
    _rebuild_options(rebuild)

    forget = commands.add_parser(
        "forget", help="erase a lead's personal data and events everywhere (GDPR erasure; docs/privacy.md)"
    )
    _forget_options(forget)

    report = commands.add_parser(
        "report", help="the monthly review: the four metrics, emails, A/B tests (terminal, --json or --html)"
    )
    from nurture.tools.report.command import add_arguments as report_arguments

    report_arguments(report)

    export = commands.add_parser(
        "export", help="write the history (messages, leads' profiles, sales outcomes) as JSON Lines or Parquet"
    )
    from nurture.tools.analytics.export import add_arguments as export_arguments

    export_arguments(export)

    calibrate = commands.add_parser(
        "calibrate", help="fit intent points and thresholds to sales outcomes; write a suggested programme"
    )
    from nurture.tools.analytics.calibrate import add_arguments as calibrate_arguments

    calibrate_arguments(calibrate)

    simulate = commands.add_parser(
        "simulate", help="synthetic buyers through the engine (and a classic drip): a simulation, not your data"
    )
    from nurture.tools.simulate.command import add_arguments as simulate_arguments

    simulate_arguments(simulate)

    openapi = commands.add_parser("openapi", help="print the API's OpenAPI document (generated from the code)")
    openapi.add_argument("--output", type=Path, default=None, help="write it here instead of printing")

    args = parser.parse_args(argv)
    try:
        if args.command == "programme":
            return _check(args.file)
        if args.command == "content" and args.content_command == "lint":
            from nurture.tools.content_lint import main as lint_content

            return lint_content(args)
        if args.command == "content":
            from nurture.tools.preview import main as preview_email

            return preview_email(args)
        if args.command == "local":
            return _local(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "openapi":
            return _openapi(args.output)
        if args.command == "rebuild":
            from nurture.tools.rebuild_cli import rebuild as run_rebuild

            return run_rebuild(args)
        if args.command == "forget":
            from nurture.tools.forget import forget as run_forget

            return run_forget(args)
        if args.command == "report":
            from nurture.tools.report.command import report as run_report

            return run_report(
                args,
                load_programme(args.programme.read_text(encoding="utf-8"), source=str(args.programme))
                if args.programme
                else read_programme(None),
            )
        if args.command == "export":
            from nurture.tools.analytics.export import main as run_export

            return run_export(args)
        if args.command == "calibrate":
            from nurture.tools.analytics.calibrate import main as run_calibrate

            return run_calibrate(args)
        if args.command == "simulate":
            from nurture.tools.simulate.command import run as run_simulation

            return run_simulation(args, read_programme(args.programme))
        return _replay(args)
    except ProgrammeError as error:
        print(error, file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader closed stdout (`| head`): stop quietly, as other commands do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain again
        return 141  # 128 + SIGPIPE, what a shell reports for a command stopped by a closed pipe
    except OSError as error:
        print(f"nurture: {error.strerror}: {error.filename}", file=sys.stderr)
        return 1


def _stack_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (0: any free port)")
    command.add_argument("--programme", type=Path, default=None, help="default: content/programme.yaml")


def _rebuild_options(command: argparse.ArgumentParser) -> None:
    from nurture.tools.rebuild import add_target_options

    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--lead", action="append", metavar="ID", help="this lead (repeat for more)")
    which.add_argument("--all", action="store_true", help="every lead, and every profile no lead is linked to")
    command.add_argument("--programme", type=Path, default=None, help="a proposed programme (default: the stack's)")
    command.add_argument("--dry-run", action="store_true", help="print what would change; write and publish nothing")
    add_target_options(command)
    command.add_argument("--now", type=_instant, default=None, help="default: the local stack's clock, else now")


def _forget_options(command: argparse.ArgumentParser) -> None:
    from nurture.tools.rebuild import add_target_options

    who = command.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDRESS", help="every lead with this email")
    who.add_argument("--lead", metavar="ID", help="this lead")
    add_target_options(command)


def _instant(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO date such as 2026-12-31") from error


def read_programme(path: Path | None) -> Programme:
    """A programme file, knowing the topics and personas of the emails in the `emails/` folder beside it."""
    path = path or STARTER_PROGRAMME
    programme = load_programme(path.read_text(encoding="utf-8"), source=str(path))

    def describe(content_id: str) -> EmailTags | None:
        file = path.parent / "emails" / f"{content_id}.md"
        try:
            return parse_email(file.read_text(encoding="utf-8"), str(file)).meta.tags
        except (OSError, UnicodeDecodeError, ContentError):
            return None  # `nurture content lint` reports it

    return programme.with_emails(describe)


def _check(path: Path) -> int:
    from nurture.tools.content_lint import check_folder_of

    try:
        programme = read_programme(path)
    except UnicodeDecodeError:
        print(f"nurture: {path} is not UTF-8 text", file=sys.stderr)
        return check_folder_of(path, sys.stdout)  # names the line and the fix (`encoding`)
    print(summary(programme))
    return check_folder_of(path, sys.stdout)


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
    from nurture.tools.engine import Engine
    from nurture.tools.replay import BadLine, print_json, print_timelines, read_messages, shown

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
        f"\n{len(messages)} messages, {len(engine.leads)} profiles, {len(shown(engine.effects))} effects "
        f"in {elapsed:.2f}s{f'; {bad} malformed lines skipped' if bad else ''}",
        file=sys.stderr,
    )
    return 0


def _openapi(output: Path | None) -> int:
    import json

    from nurture.api.openapi import openapi_document

    text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return 0


def _start_stack(args: argparse.Namespace, manual_start: datetime | None) -> tuple[Any, Any]:
    """The local stack and its HTTP server, started; the programme is checked before anything runs."""
    import shutil
    import tempfile

    from nurture.constants import ENV_LOCAL_ADMIN_TOKEN, ENV_LOCAL_WRITE_KEY
    from nurture.tools.local.runtime import LocalStack
    from nurture.tools.local.server import LocalServer

    content = getattr(args, "content", None) or STARTER_PROGRAMME.parent
    read_programme(args.programme or content / "programme.yaml")  # fail fast, with the programme's own errors
    if args.programme is not None:
        copy = Path(tempfile.mkdtemp(prefix="nurture-content-"))
        shutil.copytree(content, copy, dirs_exist_ok=True)
        shutil.copy(args.programme, copy / "programme.yaml")
        content = copy
    write_key = os.environ.get(ENV_LOCAL_WRITE_KEY, "local-write-key")
    admin_token = os.environ.get(ENV_LOCAL_ADMIN_TOKEN, "local-admin-token")
    slack_webhook = getattr(args, "slack_webhook", "") or ""
    stack = LocalStack(content, write_key, admin_token, manual_start, slack_webhook=slack_webhook).start()
    try:
        server = LocalServer(stack, args.port).start()
    except OSError as error:
        stack.stop()
        raise OSError(error.errno, f"cannot listen on 127.0.0.1:{args.port} ({error.strerror})") from error
    return stack, server


def _local(args: argparse.Namespace) -> int:
    import signal
    import threading
    from datetime import UTC

    from nurture.domain.lint import errors, lint
    from nurture.tools.content_lint import print_problems, read_folder

    manual_start = (args.start or datetime.now(UTC)) if args.clock == "manual" else None
    watched = args.content or STARTER_PROGRAMME.parent
    problems = errors(lint(read_folder(watched, args.programme)))
    if problems:  # the stack starts from content that passes the checks it applies to every later change
        print_problems(problems, sys.stderr)
        return 1
    print("starting the local stack (moto as AWS)...", file=sys.stderr)
    if args.allowed_origin:  # read by the local stack's settings, as the deployed API reads the stack's
        from nurture.constants import ENV_ALLOWED_ORIGINS

        given = os.environ.get(ENV_ALLOWED_ORIGINS, "").split(",")
        os.environ[ENV_ALLOWED_ORIGINS] = ",".join(o.strip() for o in [*given, *args.allowed_origin] if o.strip())
    stack, server = _start_stack(args, manual_start)
    stop_watching = stack.watch_content(watched, lambda line: print(line, file=sys.stderr, flush=True))
    from nurture.tools.rebuild import remove_local_state, write_local_state

    write_local_state(server.url, stack.endpoint, os.environ["AWS_REGION"])  # found by `nurture rebuild`
    print(
        f"nurture local is running at {server.url}\n"
        f"  write key:   {stack.write_key}\n"
        f"  admin token: {stack.admin_token}\n"
        f"  clock:       {args.clock}{f', now {stack.now().isoformat()}' if args.clock == 'manual' else ''}\n"
        f'  snippet:     <script async src="{server.url}/nurture.js" data-write-key="{stack.write_key}"></script>\n'
        f"  try: curl -u {stack.write_key}: -H 'content-type: application/json' -d "
        f'\'{{"userId":"u1","event":"Demo Requested"}}\' {server.url}/v1/track\n'
        "Ctrl-C stops it.",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping...", file=sys.stderr)
        stop_watching.set()
        remove_local_state()
        server.stop()
        stack.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from datetime import UTC

    from nurture.tools.local.demo import Client, play

    print("starting the local stack (moto as AWS, manual clock)...", file=sys.stderr)
    stack, server = _start_stack(args, datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    started = time.perf_counter()
    try:
        play(
            Client(server.url, stack.write_key, stack.admin_token),
            sys.stdout,
            lambda line: print(line, file=sys.stderr, flush=True),
        )
    finally:
        server.stop()
        stack.stop()
    print(f"\ndemo finished in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
