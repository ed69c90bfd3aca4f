"""Checked on upload: a file marketers put under `incoming/` goes live only if it adds no lint error.

The candidate is the live folder with the one changed file replaced (or removed); it is linted as
`nurture content lint` would, and compared with the lint of the live folder as it is. A change that adds
no error is written to the live key (the exact text that was checked), where the Lambdas read it within
`CachedContent`'s 30 s re-check; one that adds an error is not used, and the marketer is told why on the
operations topic (file, line, rule, fix: content only, never a lead's data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from nurture.constants import CONTENT_EMAILS_PREFIX, CONTENT_INCOMING_PREFIX, CONTENT_PROGRAMME_KEY
from nurture.domain.lint import ContentFolder, Problem, errors, lint
from nurture.pipeline.ports import Notifier
from nurture.runtime.observability import Metric, count, logger

Outcome = Literal["published", "removed", "rejected", "unchanged", "ignored"]
SUBJECT_LIMIT = 100  # SNS subjects: at most 100 printable ASCII characters


class ContentStore(Protocol):
    """The content bucket, as the check needs it."""

    def get(self, key: str) -> str | None:
        """The object's text, or None when there is no such object. Raises UnicodeDecodeError for non-text."""

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix`."""

    def put(self, key: str, text: str) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Checked:
    """What happened to one uploaded (or removed) file."""

    key: str
    outcome: Outcome
    problems: tuple[Problem, ...] = field(default=())


def live_key(key: str) -> str | None:
    """The key the Lambdas read for an `incoming/` key; None for anything that is not a content file."""
    if not key.startswith(CONTENT_INCOMING_PREFIX):
        return None
    rest = key.removeprefix(CONTENT_INCOMING_PREFIX)
    if rest == CONTENT_PROGRAMME_KEY:
        return rest
    name = rest.removeprefix(CONTENT_EMAILS_PREFIX)
    if rest.startswith(CONTENT_EMAILS_PREFIX) and name.endswith(".md") and "/" not in name:
        return rest
    return None


class ContentCheck:
    def __init__(self, store: ContentStore, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier
        self._before: tuple[tuple[tuple[str, str], ...], set[tuple[str, str, str]]] | None = None

    def uploaded(self, key: str) -> list[Checked]:
        """A file was written under `incoming/`: publish it if it adds no error, else tell the marketer why.

        Once it is live, files uploaded earlier and still waiting (say, a programme that lists an email uploaded
        after it) are checked again and published if they now pass; they were reported when they were rejected.
        """
        checked = self._check(key, removed=False, notify=True)
        results = [checked]
        progress = checked.outcome in ("published", "removed")
        while progress:
            progress = False
            for pending in self._pending(exclude=key):
                result = self._check(pending, removed=False, notify=False)
                if result.outcome == "published":
                    results.append(result)
                    progress = True
        return results

    def removed(self, key: str) -> list[Checked]:
        """A file was deleted under `incoming/`: remove the live one too, unless that breaks the folder."""
        return [self._check(key, removed=True, notify=True)]

    def _check(self, key: str, *, removed: bool, notify: bool) -> Checked:
        target = live_key(key)
        if target is None:
            logger.info("content check: not a content file; ignored", extra={"key": key})
            return Checked(key, "ignored")
        live = self._live()
        try:
            text = None if removed else self.store.get(key)
        except UnicodeDecodeError:
            problem = Problem(key, 1, "encoding", "error", "is not UTF-8 text", "save the file as UTF-8 text")
            return self._reject(key, (problem,), notify, was_live=target in live)
        if not removed and text is None:
            return Checked(key, "ignored")  # deleted again before this event was handled
        if live.get(target) == text:
            return Checked(key, "unchanged")
        candidate = {k: v for k, v in live.items() if k != target}
        if text is not None:
            candidate[target] = text
        before = self._errors_of(live)
        after = lint(_folder(candidate))
        added = tuple(p for p in errors(after) if (p.file, p.rule, p.message) not in before)
        if added:
            if text is None:
                added = tuple(_refused_deletion(p, target) for p in added)
            return self._reject(key, added, notify, was_live=target in live, removed=text is None)
        if text is None:
            self.store.delete(target)
            logger.info("content check: removed from the live content", extra={"key": key})
            return Checked(key, "removed")
        self.store.put(target, text)
        count(Metric.CONTENT_PUBLISHED)
        warnings = tuple(p for p in after if p.file == key and p.severity == "warning")
        logger.info("content check: published", extra={"key": key, "warnings": [str(w) for w in warnings]})
        return Checked(key, "published", warnings)

    def _errors_of(self, live: dict[str, str]) -> set[tuple[str, str, str]]:
        """The live folder's errors, remembered while it is unchanged (waiting files are checked against it in turn)."""
        state = tuple(sorted((key, hashlib.sha256(text.encode()).hexdigest()) for key, text in live.items()))
        if self._before is None or self._before[0] != state:
            self._before = (state, _error_keys(lint(_folder(live))))
        return self._before[1]

    def _reject(
        self, key: str, problems: tuple[Problem, ...], notify: bool, *, was_live: bool, removed: bool = False
    ) -> Checked:
        if notify:  # a file still waiting, checked again after another went live, was reported when it was rejected
            count(Metric.CONTENT_REJECTED)
            logger.warning(
                "content check: rejected; the last good version stays live",
                extra={"key": key, "problems": [f"{p.file}:{p.line}: {p.rule}" for p in problems]},
            )
            self.notifier.publish(_subject(key), rejection_message(key, problems, was_live=was_live, removed=removed))
        return Checked(key, "rejected", problems)

    def _live(self) -> dict[str, str]:
        keys = [CONTENT_PROGRAMME_KEY, *self.store.keys(CONTENT_EMAILS_PREFIX)]
        live: dict[str, str] = {}
        for key in keys:
            if live_key(CONTENT_INCOMING_PREFIX + key) is None:
                continue
            try:
                text = self.store.get(key)
            except UnicodeDecodeError:
                continue
            if text is not None:
                live[key] = text
        return live

    def _pending(self, exclude: str) -> list[str]:
        live = self._live()
        pending = []
        for key in self.store.keys(CONTENT_INCOMING_PREFIX):
            target = live_key(key)
            if key == exclude or target is None:
                continue
            try:
                if self.store.get(key) != live.get(target):
                    pending.append(key)
            except UnicodeDecodeError:
                continue
        return pending


def rejection_message(key: str, problems: tuple[Problem, ...], *, was_live: bool = True, removed: bool = False) -> str:
    if removed:
        headline = f"The deletion of {key} was refused: the live file stays."
        advice = "Do what each fix says, then delete the file again."
    else:
        headline = (
            f"{key} was not published: the last good version stays live."
            if was_live
            else f"{key} was not published: nothing was live before, and nothing is now."
        )
        advice = "Fix the file and upload it again."
    lines = [
        headline,
        "",
        *(str(problem) for problem in problems),
        "",
        f"{advice} `nurture content lint` shows the same problems on your machine",
        "(docs/content.md explains each rule).",
    ]
    return "\n".join(lines)


def _refused_deletion(problem: Problem, target: str) -> Problem:
    """A deletion refused because the programme still lists the email: say so, rather than "add the file"."""
    email_id = target.removeprefix(CONTENT_EMAILS_PREFIX).removesuffix(".md")
    if problem.rule != "unknown-email" or f"`{email_id}`" not in problem.message:
        return problem
    return replace(
        problem,
        message=f"{problem.message.split(', but ')[0]}: the programme still lists it, so it cannot be deleted",
        fix=f"remove `{email_id}` from the programme first, then delete the file",
    )


def _subject(key: str) -> str:
    subject = f"nurture: content rejected: {key}"
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."


def _folder(live: dict[str, str]) -> ContentFolder:
    """Named as the marketer knows the files: the `incoming/` keys they upload."""
    return ContentFolder(
        programme=live.get(CONTENT_PROGRAMME_KEY),
        emails={CONTENT_INCOMING_PREFIX + k: v for k, v in live.items() if k != CONTENT_PROGRAMME_KEY},
        programme_path=CONTENT_INCOMING_PREFIX + CONTENT_PROGRAMME_KEY,
    )


def _error_keys(problems: list[Problem]) -> set[tuple[str, str, str]]:
    return {(p.file, p.rule, p.message) for p in errors(problems)}
