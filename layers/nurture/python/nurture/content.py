"""Content marketers edit: the programme and one Markdown email per file, read from S3 (or a folder).

Both are cached and keyed on the object's ETag, so an edited programme takes effect on the next
invocation without a deploy, and an unchanged one costs a conditional GET at most every 30 seconds.
Emails are rendered by a sandboxed Jinja2 environment: a template can read the lead's fields and
nothing else.
"""

from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nurture.constants import CONTENT_EMAILS_PREFIX, CONTENT_PROGRAMME_KEY
from nurture.messages import LeadTraits
from nurture.observability import logger, metrics
from nurture.ports import ContentSource
from nurture.programme import Programme, ProgrammeError, Stage, load_programme

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

RECHECK_SECONDS = 30.0
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


class CachedContent:
    """Programme and emails from a content source, re-read only when their ETag changes."""

    def __init__(self, source: ContentSource, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.source = source
        self.recheck_seconds = recheck_seconds
        self._cache: dict[str, tuple[str, Any, float]] = {}  # key -> (etag, parsed, checked at)
        self._lock = threading.Lock()

    def programme(self) -> Programme:
        programme: Programme = self._get(
            CONTENT_PROGRAMME_KEY, lambda text: load_programme(text, CONTENT_PROGRAMME_KEY)
        )
        return programme

    def email(self, content_id: str) -> Email:
        key = f"{CONTENT_EMAILS_PREFIX}{content_id}.md"
        email: Email = self._get(key, lambda text: parse_email(text, key))
        return email

    def _get(self, key: str, parse: Any) -> Any:
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[2] < self.recheck_seconds:
                return cached[1]
            fresh = self.source.read(key, etag=cached[0] if cached else None)
            if fresh is None:
                assert cached is not None
                self._cache[key] = (cached[0], cached[1], time.monotonic())
                return cached[1]
            text, etag = fresh
            try:
                parsed = parse(text)
            except (ProgrammeError, ContentError):
                if cached is None:
                    raise
                # A broken edit must not stop the engine: keep the last good version, say so loudly,
                # and look again at the next re-check (the marketer's fix will have a new ETag).
                metrics.add_metric(name="ContentRejected", unit="Count", value=1)
                logger.exception("content rejected; still using the last good version", extra={"key": key})
                self._cache[key] = (etag, cached[1], time.monotonic())
                return cached[1]
            self._cache[key] = (etag, parsed, time.monotonic())
            return parsed


class FolderContent:
    """A content source backed by a folder (the repo's `content/`), for tests and tools."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str, etag: str | None = None) -> tuple[str, str] | None:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(f"no content at {path}")
        stamp = str(path.stat().st_mtime_ns)
        return None if stamp == etag else (path.read_text(encoding="utf-8"), stamp)
