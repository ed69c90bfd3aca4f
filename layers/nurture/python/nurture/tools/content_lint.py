"""`nurture content lint [DIR] [--json]`, and the lint part of `nurture programme check`.

Reads a content folder (DIR/programme.yaml and DIR/emails/*.md) and applies `nurture.domain.lint`, the same
rules the upload check applies in AWS and `nurture local` applies to a saved file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from nurture.domain.lint import ContentFolder, Problem, decode, errors, lint, topic_gaps


def read_folder(directory: Path, programme: Path | None = None) -> ContentFolder:
    """The folder's programme (or `programme`, a file elsewhere) and its emails, named as the user sees them."""
    programme = programme or directory / "programme.yaml"
    emails: dict[str, str] = {}
    not_text: dict[str, tuple[int, str]] = {}
    text: str | None = None
    for path in [programme, *sorted((directory / "emails").glob("*.md"))]:
        if not path.is_file():
            continue
        decoded = decode(path.read_bytes())
        if isinstance(decoded, tuple):
            not_text[str(path)] = decoded
        elif path == programme:
            text = decoded
        else:
            emails[str(path)] = decoded
    return ContentFolder(programme=text, emails=emails, programme_path=str(programme), not_text=not_text)


def print_problems(problems: list[Problem], out: TextIO) -> None:
    for problem in problems:
        print(problem, file=out)
    found = len(errors(problems))
    print(
        f"{found} error{'s' * (found != 1)}, {len(problems) - found} warning{'s' * (len(problems) - found != 1)}",
        file=out,
    )


def main(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if not directory.is_dir():
        print(f"nurture: {directory} is not a folder (give the folder that holds programme.yaml)", file=sys.stderr)
        return 1
    problems = lint(read_folder(directory))
    if args.json:
        print(json.dumps([problem.as_dict() for problem in problems], indent=2, ensure_ascii=False))
    else:
        print_problems(problems, sys.stdout)
    return 1 if errors(problems) else 0


def check_folder_of(programme: Path, out: TextIO) -> int:
    """After `nurture programme check` prints the summary: topic gaps, then the lint of the programme's folder."""
    folder = read_folder(programme.parent, programme)
    gaps = {topic: stages for topic, stages in topic_gaps(folder).items() if stages}
    if gaps:
        print("\nTopics with no email in a sequence", file=out)
        for topic, stages in gaps.items():
            print(f"  {topic}: {', '.join(stage.value for stage in stages)}", file=out)
    problems = lint(folder)
    print(f"\nContent lint of {programme.parent}/ (programme and emails/)", file=out)
    print_problems(problems, out)
    return 1 if errors(problems) else 0
