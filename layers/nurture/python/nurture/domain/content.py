"""Emails as marketers write them: one Markdown file per email with front matter.

`nurture.domain.rendering` turns one into the email a lead gets; a file that does not parse, or an email that
does not render, raises ContentError instead of reaching a prospect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nurture.domain.programme import EmailTags, Stage

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)


class ContentError(ValueError):
    """An email that must not reach a prospect: bad front matter or a template that does not render."""


CtaKind = Literal[
    "none",
    "read",
    "reply",
    "download",
    "case_study",
    "comparison",
    "roi_calculator",
    "profile",
    "book_demo",
    "next_step",
]
"""What an email asks the reader to do. `book_demo` (a demo or a call with sales) belongs in Decision only."""

ProfilingField = Literal["company_size", "seniority", "budget_authority", "timeline", "problem"]


class EmailFrontMatter(BaseModel):
    """The block between the two `---` lines at the top of an email file (docs/content.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    sequence: Stage
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    subjects: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=5, description="A/B: each lead gets one of these, the same every time"
    )
    preheader: str = Field(default="", max_length=300)
    cta: CtaKind = "none"
    cta_label: str = Field(default="", max_length=100)
    cta_url: str = Field(default="", max_length=500)
    profiling: list[ProfilingField] = Field(
        default_factory=list, description="What this email asks for when the lead has not told us yet"
    )
    topics: list[str] = Field(default_factory=list, description="Programme topics this email serves")
    personas: list[str] = Field(default_factory=list, description="Programme personas this email is written for")

    @model_validator(mode="after")
    def _one_way_to_give_the_subject(self) -> EmailFrontMatter:
        if (self.subject is None) == (not self.subjects):
            raise ValueError("give either `subject` (one line) or `subjects` (a list, for an A/B test), not both")
        return self

    @property
    def tags(self) -> EmailTags:
        """The topics and personas this email serves, for choosing a lead's next email."""
        return EmailTags(topics=tuple(self.topics), personas=tuple(self.personas))

    @property
    def subject_options(self) -> tuple[str, ...]:
        """The subject lines a lead may get: one, or the A/B variants in order (variant 0 is the first)."""
        return tuple(self.subjects) if self.subjects else (self.subject or "",)


@dataclass(frozen=True)
class Email:
    meta: EmailFrontMatter
    body: str


def parse_email(text: str, source: str) -> Email:
    import yaml  # here: only the functions that read emails import PyYAML

    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ContentError(f"{source}: no front matter (a block between two '---' lines at the top)")
    try:
        meta = EmailFrontMatter.model_validate(yaml.safe_load(match.group(1)))
    except (yaml.YAMLError, ValidationError) as error:
        raise ContentError(f"{source}: bad front matter: {error}") from error
    return Email(meta=meta, body=match.group(2))
