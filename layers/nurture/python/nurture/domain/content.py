"""Emails as marketers write them: one Markdown file per email with front matter, and its rendering.

Rendered by a sandboxed Jinja2 environment: a template can read the lead's fields and nothing else,
and one that fails raises ContentError instead of reaching a prospect.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Stage

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)


class ContentError(ValueError):
    """An email that must not reach a prospect: bad front matter or a template that does not render."""


class EmailFrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    sequence: Stage
    subject: str = Field(min_length=1, max_length=200)
    subject_variants: list[str] = Field(default_factory=list)
    preheader: str = ""
    cta: Literal["none", "read", "reply", "download", "book_demo", "roi_calculator", "profile"] = "none"
    cta_label: str = ""
    cta_url: str = ""


@dataclass(frozen=True)
class Email:
    meta: EmailFrontMatter
    body: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def parse_email(text: str, source: str) -> Email:
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ContentError(f"{source}: no front matter (a block between two '---' lines at the top)")
    try:
        meta = EmailFrontMatter.model_validate(yaml.safe_load(match.group(1)))
    except (yaml.YAMLError, ValidationError) as error:
        raise ContentError(f"{source}: bad front matter: {error}") from error
    return Email(meta=meta, body=match.group(2))


@cache
def _environment() -> SandboxedEnvironment:
    # Imported here, not at the top: only the sender renders, so only its cold start pays for Jinja2.
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    # A field the lead has not told us renders as nothing, never as "None".
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=lambda value: "" if value is None else value
    )


def render(email: Email, traits: LeadTraits, sender: dict[str, str]) -> RenderedEmail:
    """Render an email for one lead. Raises ContentError rather than send a broken one."""
    from jinja2 import TemplateError

    lead = traits.model_dump(exclude={"email"})
    environment = _environment()
    try:
        text = environment.from_string(email.body).render(lead=lead, sender=sender).strip()
        subject = environment.from_string(email.meta.subject).render(lead=lead, sender=sender).strip()
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as error:
        # Not only Jinja's errors: `{{ 1 / 0 }}` or a sandbox-capped `range` raise plain Python ones.
        raise ContentError(f"email {email.meta.id} does not render: {error}") from error
    if email.meta.cta != "none" and email.meta.cta_url:
        text += f"\n\n{email.meta.cta_label or 'Read more'}: {email.meta.cta_url}"
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return RenderedEmail(subject=subject, text=text, html=paragraphs)
