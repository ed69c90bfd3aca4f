"""The programme and emails as the Lambdas read them: cached, keyed on the object's ETag.

An edited programme takes effect on the next invocation without a deploy, and an unchanged one costs
a conditional GET at most every 30 seconds. A broken edit never replaces the last good version.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nurture.constants import CONTENT_EMAILS_PREFIX, CONTENT_PROGRAMME_KEY
from nurture.domain.content import ContentError, Email, parse_email
from nurture.domain.programme import EmailTags, Programme, ProgrammeError, load_programme
from nurture.pipeline.ports import ContentSource
from nurture.runtime.observability import Metric, count, logger

RECHECK_SECONDS = 30.0


class CachedContent:
    """Programme and emails from a content source, re-read only when their ETag changes."""

    def __init__(self, source: ContentSource, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.source = source
        self.recheck_seconds = recheck_seconds
        self._cache: dict[str, tuple[str, Any, float]] = {}  # key -> (etag, parsed, checked at)
        self._lock = threading.Lock()

    def programme(self, email_tags: bool = False) -> Programme:
        """The programme; with `email_tags`, knowing each of its emails' topics and personas, which only choosing a
        lead's next email needs (the dispatcher's ticks): reading them costs a read of every email, and a function
        may read only `programme.yaml` (the scorer, the API, the alerts and email-events functions)."""
        programme: Programme = self._get(
            CONTENT_PROGRAMME_KEY, lambda text: load_programme(text, CONTENT_PROGRAMME_KEY)
        )
        return programme.with_emails(self._tags) if email_tags else programme

    def _tags(self, content_id: str) -> EmailTags | None:
        try:
            return self.email(content_id).meta.tags
        except Exception:  # missing, broken or unreadable: reported where it is sent; it offers no tags
            logger.warning("email not readable for its tags", extra={"content_id": content_id})
            return None

    def refresh(self) -> None:
        """Re-check every object at its next read instead of within `recheck_seconds` (the local stack, after the
        content check published a change; deployed functions rely on the re-check)."""
        with self._lock:
            self._cache = {key: (etag, parsed, float("-inf")) for key, (etag, parsed, _) in self._cache.items()}

    def version(self, content_id: str) -> str:
        """The version (ETag) of the email as last read: the same text, the same version."""
        cached = self._cache.get(f"{CONTENT_EMAILS_PREFIX}{content_id}.md")
        return cached[0].strip('"') if cached else ""

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
                count(Metric.CONTENT_REJECTED)
                logger.exception("content rejected; still using the last good version", extra={"key": key})
                self._cache[key] = (etag, cached[1], time.monotonic())
                return cached[1]
            self._cache[key] = (etag, parsed, time.monotonic())
            return parsed
