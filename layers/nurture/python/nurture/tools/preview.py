"""`nurture content preview EMAIL_ID`: one email as a lead would get it, rendered exactly as the sender renders it.

Prints each subject line (A/B variants numbered), the preheader and the plain-text part; `--out` writes the HTML
for a browser. Exit 1, saying why, for an unknown email, a broken one (one that fails `nurture content lint`), or a
lead file that is not a lead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from nurture.domain.content import ContentError, parse_email
from nurture.domain.lint import errors, lint
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import load_programme
from nurture.domain.rendering import render, sample_context
from nurture.tools.content_lint import read_folder

# Who the preview is for without --lead: some traits known, some not (so the profiling ask shows).
SAMPLE_LEAD = LeadTraits(first_name="Ada", company="Northwind", industry="software")


def main(args: argparse.Namespace) -> int:
    content: Path = args.content
    email_id = str(args.email_id).removesuffix(".md")
    programme_path = content / "programme.yaml"
    programme = load_programme(programme_path.read_text(encoding="utf-8"), source=str(programme_path))
    email_path = content / "emails" / f"{email_id}.md"
    if not email_path.is_file():
        known = sorted(p.stem for p in (content / "emails").glob("*.md"))
        print(f"nurture: no email {email_id!r} in {content / 'emails'}", file=sys.stderr)
        print(f"  Known emails: {', '.join(known) or 'none'}", file=sys.stderr)
        return 1
    # An email that would not go live is not previewed as if it were fine: the upload check's lint first.
    folder = read_folder(content)
    alone = replace(  # the programme and this one email: the folder's other files do not stop its preview
        folder,
        emails={k: v for k, v in folder.emails.items() if k == str(email_path)},
        not_text={k: v for k, v in folder.not_text.items() if k == str(email_path)},
    )
    problems = [p for p in errors(lint(alone)) if p.file == str(email_path)]
    if problems:
        print(f"nurture: {email_id} would not go live; fix these first:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    try:
        traits = _traits(args.lead)
    except ValueError as error:
        print(f"nurture: {args.lead} is not a lead's traits: {error}", file=sys.stderr)
        return 1
    try:
        email = parse_email(email_path.read_text(encoding="utf-8"), str(email_path))
        variants = [
            render(email, traits, sample_context(programme, variant=n)) for n in range(len(email.meta.subject_options))
        ]
    except ContentError as error:
        print(f"nurture: {error}", file=sys.stderr)
        return 1
    rendered = variants[0]
    for variant in variants:
        print(f"Subject (variant {variant.variant} of {len(variants)}): {variant.subject}")
    print(f"Preheader: {rendered.preheader}")
    print()
    print(rendered.text, end="")
    if args.out is not None:
        out: Path = args.out
        out.write_text(rendered.html, encoding="utf-8")
        print(f"\nHTML (variant 0) written to {out}", file=sys.stderr)
    return 0


def _traits(path: Path | None) -> LeadTraits:
    if path is None:
        return SAMPLE_LEAD
    try:
        return LeadTraits.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from error
    except ValidationError as error:
        # Each wrong trait by name, as the API's 400 names them: `company_size: Input should be a valid integer`.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'traits'}: {e['msg']}" for e in error.errors())
        raise ValueError(problems) from error
