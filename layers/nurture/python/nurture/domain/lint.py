"""Content lint: the rules every programme and email file must pass before it reaches a prospect.

Pure: a folder is given as texts (the programme and each email file by path), and the answer is a list of
problems, each with its file, line, rule, severity and how to fix it. The CLI (`nurture content lint`),
`nurture programme check`, the upload validator and `nurture local` all apply this one function.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from nurture.domain.content import _FRONT_MATTER, ContentError, Email, EmailFrontMatter
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import (
    SEQUENCES,
    Profiling,
    Programme,
    ProgrammeError,
    SenderDetails,
    Stage,
    _line_finder,
    load_programme,
)
from nurture.domain.rendering import SAMPLE_UNSUBSCRIBE_URL, RenderContext, TemplateFailure, render, sample_context

if TYPE_CHECKING:
    from jinja2 import nodes

Severity = Literal["error", "warning"]

SUBJECT_WARN = 60
SUBJECT_MAX = 100
PREHEADER_MIN = 40
PREHEADER_WARN = 130
PREHEADER_MAX = 200

NEXT_STEP_CTAS = frozenset({"book_demo", "next_step", "roi_calculator", "reply"})
SALES_CTAS = frozenset({"book_demo", "next_step"})
LEAD_FIELDS = frozenset(LeadTraits.model_fields) - {"email"}
SENDER_FIELDS = frozenset({"name", "company", "postal_address"})

# A request for a demo or a call with sales, as a reader would take it. A phrase in quotes is being talked
# about ('a "book a call" CTA'), not asked for, so quoted matches are left alone.
_SALES_ASK = re.compile(
    r"\b(?:book|request|schedule|arrange|set\s+up|grab|get)\s+(?:a|an|your|the|some)?\s*"
    r"(?:(?:free|quick|short|live|personal(?:i[sz]ed)?|discovery|sales|intro(?:ductory)?|\d+[- ]minute)\s+)*"
    r"(?:demo|demonstration|call|meeting|consultation|walkthrough)s?\b"
    r"|\b(?:talk|speak)\s+(?:to|with)\s+(?:our\s+|a\s+|the\s+)?sales\b"
    r"|\bcontact\s+(?:our\s+)?sales\b"
    r"|\b(?:hop|jump|get)\s+on\s+(?:a\s+)?(?:quick\s+|short\s+|brief\s+)?(?:call|zoom|teams\s+call|meeting|demo)\b"
    r"|\b(?:grab|book|schedule|find|take|give\s+(?:me|us))\s+(?:\d+|a\s+few|ten|fifteen|twenty|thirty)\s*"
    r"(?:minutes|mins?)\b"
    r"|\b(?:book|pick|choose|find|grab)\s+(?:a\s+)?(?:time|slot)\s+(?:on|in|with|that)\b"
    r"|\b(?:on|in|from)\s+(?:my|our)\s+calendar\b"
    r"|\bschedule\s+(?:some\s+)?time\s+with\b",
    re.IGNORECASE,
)
# Scheduling pages: a link to one is a request for a meeting, whatever its words say.
_SCHEDULING_HOSTS = (
    r"calendly\.com|meetings(?:-[a-z0-9]+)?\.hubspot\.com|(?<![\w.-])cal\.com|chilipiper\.com|savvycal\.com"
    r"|tidycal\.com|zcal\.co|youcanbook\.me|acuityscheduling\.com|calendar\.app\.google|calendar\.google\.com"
)
_SCHEDULING_LINK = re.compile(rf"(?:https?://|www\.|\b)(?:[\w-]+\.)*(?:{_SCHEDULING_HOSTS})\S*", re.IGNORECASE)
_SALES_URL = re.compile(
    rf"\bdemos?\b|{_SCHEDULING_HOSTS}|\bbook-?a-?(?:call|demo|meeting)\b|/(?:contact-)?sales(?:[/?#]|$)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»"  # noqa: RUF001 - the quotes a marketer may type
_MARKDOWN_LINK = re.compile(r"\]\(\s*<?((?:[^()<>\s]|\([^()\s]*\))*)[^)]*\)")  # one level of (...) in an address
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S*?)>?(?:\s|$)", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
_BARE_URL = re.compile(r"(?<![(<\[\w])\b((?:https?|ftp)://[^\s)>\]]+|www\.[^\s)>\]]+)", re.IGNORECASE)
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+\.[^@\s]+$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one file, with where it is and how to fix it."""

    file: str
    line: int
    rule: str
    severity: Severity = field(compare=False)
    message: str
    fix: str = field(compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message} (fix: {self.fix})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ContentFolder:
    """A content folder as texts: `programme` is None when the folder has no programme file."""

    programme: str | None
    emails: Mapping[str, str]
    programme_path: str = "programme.yaml"
    # Files present but not UTF-8 text: path -> (line, what is wrong). Reported as `encoding`, not as missing.
    not_text: Mapping[str, tuple[int, str]] = field(default_factory=dict)


def decode(data: bytes) -> str | tuple[int, str]:
    """A file's text, or where it stops being UTF-8: (line, message) for `ContentFolder.not_text`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return line, f"the file is not UTF-8 text (byte 0x{data[error.start]:02x} at column {column})"


@dataclass
class _EmailFile:
    path: str
    email: Email
    front_lines: dict[str, int]  # front matter key -> line in the file
    body_line: int  # line of the body's first line in the file
    templates_ok: bool = True  # rendering is tried only when every template parses and names known values

    def line_of(self, key: str) -> int:
        return self.front_lines.get(key, 2)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def lint(folder: ContentFolder) -> list[Problem]:
    """Every problem in the folder, sorted by file and line."""
    problems: list[Problem] = [
        Problem(path, line, "encoding", "error", message, _ENCODING_FIX)
        for path, (line, message) in folder.not_text.items()
    ]
    programme, programme_lines = _load_programme(folder, problems)
    emails: dict[str, _EmailFile] = {}
    # Files that exist but could not be read as an email: their problem is reported; they are not "missing".
    unreadable = {PurePosixPath(path).stem for path in folder.not_text}
    for path, text in sorted(folder.emails.items()):
        parsed = _parse_email(path, text, problems)
        if parsed is not None:
            problems.extend(_check_email(parsed, programme))
            emails[parsed.email.meta.id] = parsed
        else:
            unreadable.add(PurePosixPath(path).stem)
    if programme is not None:
        problems.extend(_check_folder(folder.programme_path, programme, programme_lines, emails, unreadable))
    return sorted(set(problems))


def topic_gaps(folder: ContentFolder) -> dict[str, list[Stage]]:
    """For each programme topic, the sequences with no email tagged with it (empty when the programme fails)."""
    try:
        programme = load_programme(folder.programme or "", folder.programme_path)
    except ProgrammeError:
        return {}
    tagged: dict[str, set[str]] = {}
    for path, text in folder.emails.items():
        parsed = _parse_email(path, text, [])
        if parsed is not None:
            tagged[parsed.email.meta.id] = set(parsed.email.meta.topics)
    return {
        topic: [
            stage
            for stage in SEQUENCES
            if not any(topic in tagged.get(email_id, set()) for email_id in programme.sequence(stage).emails)
        ]
        for topic in programme.topics
    }


# --- The programme ------------------------------------------------------------------------------
def _load_programme(folder: ContentFolder, problems: list[Problem]) -> tuple[Programme | None, Any]:
    path, text = folder.programme_path, folder.programme
    if text is None:
        if path not in folder.not_text:  # a programme that is not text is reported as `encoding`
            problems.append(Problem(path, 1, "programme", "error", "the folder has no programme file", f"add {path}"))
        return None, None
    lines = _line_finder(text)
    try:
        return load_programme(text, path), lines
    except ProgrammeError as error:
        for issue in error.issues:
            line = lines(issue.path) or _yaml_error_line(text) or 1
            where = f"{issue.dotted}: " if issue.path else ""
            problems.append(Problem(path, line, "programme", "error", f"{where}{issue.problem}", issue.fix))
        return None, None


def _yaml_error_line(text: str) -> int | None:
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return mark.line + 1 if mark is not None else None
    return None


def _check_folder(
    path: str, programme: Programme, lines: Any, emails: dict[str, _EmailFile], unreadable: set[str]
) -> Iterator[Problem]:
    listed: dict[str, Stage] = {}
    sender_line = lines(("sender", "postal_address")) or 1
    if not programme.sender.postal_address.strip():
        yield Problem(
            path,
            sender_line,
            "postal-address",
            "error",
            "sender.postal_address is empty; every email's footer must show it",
            "set sender.postal_address to the company's postal address",
        )
    for stage in SEQUENCES:
        sequence = programme.sequence(stage)
        list_line = lines(("sequences", stage.value, "emails")) or 1
        for index, email_id in enumerate(sequence.emails):
            listed.setdefault(email_id, stage)
            if email_id in unreadable:
                continue  # the file is there; its own problem (front matter, encoding) is reported on it
            if email_id not in emails:
                yield Problem(
                    path,
                    lines(("sequences", stage.value, "emails", index)) or list_line,
                    "unknown-email",
                    "error",
                    f"sequences.{stage.value} lists `{email_id}`, but there is no emails/{email_id}.md",
                    f"add emails/{email_id}.md, or remove `{email_id}` from the list",
                )
            elif emails[email_id].email.meta.sequence != stage:
                found = emails[email_id]
                yield Problem(
                    found.path,
                    found.line_of("sequence"),
                    "sequence-mismatch",
                    "error",
                    f"says `sequence: {found.email.meta.sequence.value}` but sequences.{stage.value} lists it",
                    f"set `sequence: {stage.value}`, or move it to sequences.{found.email.meta.sequence.value}",
                )
        present = [emails[e].email.meta for e in sequence.emails if e in emails]
        if present and not any(meta.cta == "none" for meta in present):
            yield Problem(
                path,
                list_line,
                "no-cta-email",
                "error",
                f"sequences.{stage.value} has no email with `cta: none`",
                "add an email that gives something useful and asks for nothing (`cta: none`)",
            )
        if stage == Stage.DECISION and present and not any(meta.cta in NEXT_STEP_CTAS for meta in present):
            yield Problem(
                path,
                list_line,
                "decision-next-step",
                "error",
                "no decision email offers a next step",
                "give one decision email `cta: book_demo`, `next_step`, `roi_calculator` or `reply`",
            )
        if sequence.timeout is not None:
            needed = math.ceil(sequence.timeout.after_days / sequence.cadence_days)
            if len(sequence.emails) < needed:
                yield Problem(
                    path,
                    list_line,
                    "sequence-too-short",
                    "warning",
                    f"sequences.{stage.value} sends every {sequence.cadence_days:g} days until its "
                    f"{sequence.timeout.after_days}-day timeout, which needs {needed} emails; it has "
                    f"{len(sequence.emails)}",
                    f"add {needed - len(sequence.emails)} email(s), or the last ones' readers hear nothing until "
                    "the timeout",
                )
    for email_id, found in emails.items():
        if email_id not in listed:
            yield Problem(
                found.path,
                found.line_of("id"),
                "email-in-no-sequence",
                "warning",
                f"no sequence lists `{email_id}`, so nobody will receive it",
                f"add `{email_id}` to sequences.{found.email.meta.sequence.value}.emails in the programme",
            )
        meta = found.email.meta
        for topic in meta.topics:
            if topic not in programme.topics:
                yield Problem(
                    found.path,
                    found.line_of("topics"),
                    "unknown-topic",
                    "error",
                    f"topic `{topic}` is not one of the programme's topics ({', '.join(programme.topics) or 'none'})",
                    "use a topic from the programme's `topics:`, or add it there",
                )
        for persona in meta.personas:
            if persona not in programme.personas:
                yield Problem(
                    found.path,
                    found.line_of("personas"),
                    "unknown-persona",
                    "error",
                    f"persona `{persona}` is not one of the programme's personas "
                    f"({', '.join(programme.personas) or 'none'})",
                    "use a persona from the programme's `personas:`, or add it there",
                )
        yield from _check_renders(found, programme)


# --- One email ----------------------------------------------------------------------------------
def _parse_email(path: str, text: str, problems: list[Problem]) -> _EmailFile | None:
    match = _FRONT_MATTER.match(text)
    if match is None:
        problems.append(
            Problem(
                path,
                1,
                "front-matter",
                "error",
                "no front matter",
                "start the file with a block between two `---` lines (id, sequence, subject, cta)",
            )
        )
        return None
    front, body = match.group(1), match.group(2)
    problems_before = len(problems)
    body_line = text[: match.start(2)].count("\n") + 1
    try:
        data = yaml.safe_load(front)
        root = yaml.compose(front, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 2
        reason = getattr(error, "problem", None) or str(error)
        problems.append(
            Problem(path, line, "front-matter", "error", f"front matter is not valid YAML: {reason}", _YAML_FIX)
        )
        return None
    front_lines: dict[str, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, _ in root.value:
            line = key.start_mark.line + 2
            if key.value in front_lines:  # YAML keeps the last silently: the marketer meant one of them
                problems.append(
                    Problem(
                        path,
                        line,
                        "front-matter",
                        "error",
                        f"`{key.value}` is given twice (first on line {front_lines[key.value]})",
                        "keep one of them",
                    )
                )
            front_lines.setdefault(key.value, line)
        if len(problems) > problems_before:
            return None
    try:
        meta = EmailFrontMatter.model_validate(data)
    except ValidationError as error:
        for issue in error.errors():
            key = str(issue["loc"][0]) if issue["loc"] else ""
            problems.append(
                Problem(
                    path,
                    front_lines.get(key, 2),
                    "front-matter",
                    "error",
                    _pydantic_message(issue)
                    if issue["type"] == "extra_forbidden"
                    else f"{key or 'front matter'}: {_pydantic_message(issue)}",
                    _FRONT_MATTER_FIXES.get(issue["type"], "see docs/content.md for every front matter key"),
                )
            )
        return None
    return _EmailFile(path, Email(meta=meta, body=body), front_lines, body_line)


_ENCODING_FIX = "save the file as UTF-8 text (in most editors: Save with Encoding, UTF-8)"
_YAML_FIX = "check the indentation and quoting on that line (quote a value that contains `: ` or starts with `'`)"
_FRONT_MATTER_FIXES = {
    "extra_forbidden": "remove it, or check its spelling (docs/content.md lists every key)",
    "missing": "add it",
    "literal_error": "use one of the listed values",
    "enum": "use one of the listed values",
    "string_pattern_mismatch": "use lower-case letters, digits and hyphens",
    "string_too_long": "shorten it",
    "too_long": "use fewer entries",
    "value_error": "give either `subject` or `subjects`",
}


def _pydantic_message(issue: Any) -> str:
    message = str(issue["msg"])
    if issue["type"] == "extra_forbidden":
        return f"`{issue['loc'][0]}` is not a front matter key" if issue["loc"] else "is not a front matter key"
    return message[0].lower() + message[1:]


def _check_email(found: _EmailFile, programme: Programme | None) -> Iterator[Problem]:
    meta, path = found.email.meta, found.path
    if PurePosixPath(path).name != f"{meta.id}.md":
        yield Problem(
            path,
            found.line_of("id"),
            "file-name",
            "error",
            f"the file name is not the email's id (`{meta.id}`)",
            f"rename the file to {meta.id}.md, or change `id` to `{PurePosixPath(path).stem}`",
        )
    yield from _check_ctas(found)
    yield from _check_lengths(found)
    yield from _check_links(found)
    template_problems = list(_check_templates(found))
    found.templates_ok = not template_problems
    yield from template_problems
    if programme is None:
        # Without a programme there is no sender to render with; render with the defaults.
        yield from _check_renders(found, None)


def _check_ctas(found: _EmailFile) -> Iterator[Problem]:
    meta, path = found.email.meta, found.path
    if meta.cta != "none" and not meta.cta_url.strip():
        yield Problem(
            path,
            found.line_of("cta"),
            "cta-url",
            "error",
            f"`cta: {meta.cta}` has no `cta_url`, so the email would show no button",
            "add `cta_url: https://...`, or set `cta: none`",
        )
    if meta.sequence not in (Stage.AWARENESS, Stage.CONSIDERATION):
        return
    rule, fix = (
        (
            "awareness-sales-cta",
            "offer something that deepens their understanding of the problem (`read`, "
            "`download`), or nothing at all (`cta: none`)",
        )
        if meta.sequence == Stage.AWARENESS
        else (
            "consideration-gentle-cta",
            "offer social proof instead: how similar businesses solved this (`case_study`, `comparison`, `read`)",
        )
    )
    stage = meta.sequence.value
    a_stage = f"{'an' if stage[0] in 'aeiou' else 'a'} {stage}"
    if meta.cta in SALES_CTAS:
        yield Problem(
            path,
            found.line_of("cta"),
            rule,
            "error",
            f"{a_stage} email asks for a demo or a call (`cta: {meta.cta}`)",
            fix,
        )
    for phrase, _ in _sales_asks(*_reader_text(meta.cta_label, 0)):
        yield Problem(path, found.line_of("cta_label"), rule, "error", f"the CTA says “{phrase}”", fix)
    if meta.cta != "none" and _SALES_URL.search(meta.cta_url):
        yield Problem(
            path, found.line_of("cta_url"), rule, "error", f"the CTA links to a booking page ({meta.cta_url})", fix
        )
    text, lines = _reader_text(found.email.body, found.body_line)
    for phrase, line in _sales_asks(text, lines):
        yield Problem(path, line, rule, "error", f"{a_stage} email says “{phrase}”", fix)
    for match in _SCHEDULING_LINK.finditer(text):
        booking = f"{a_stage} email links to a booking page ({match.group(0)})"
        yield Problem(path, lines[match.start()], rule, "error", booking, fix)


def _reader_text(markdown: str, first_line: int) -> tuple[str, list[int]]:
    """The text as a reader sees it, and the file line of each of its characters: the lines of a paragraph joined
    (Markdown makes a line break a space), entities such as `&nbsp;` decoded, emphasis marks dropped, every run of
    whitespace one space. Paragraphs are kept apart by a NUL, which no phrase matches across."""
    chars: list[str] = []
    lines: list[int] = []
    for offset, raw in enumerate(markdown.splitlines()):
        line = first_line + offset
        if not raw.strip():
            if chars and chars[-1] != "\0":
                chars.append("\0")
                lines.append(line)
            continue
        for char in html.unescape(raw).replace("*", "").replace("_", "") + " ":
            if char.isspace():
                if not chars or chars[-1] in " \0":
                    continue
                char = " "
            chars.append(char)
            lines.append(line)
    return "".join(chars), lines


def _sales_asks(text: str, lines: list[int]) -> Iterator[tuple[str, int]]:
    for match in _SALES_ASK.finditer(text):
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if not (before in _QUOTES and before and after in _QUOTES and after):
            yield match.group(0), lines[match.start()]


def _check_lengths(found: _EmailFile) -> Iterator[Problem]:
    meta, path = found.email.meta, found.path
    key = "subjects" if meta.subjects else "subject"
    for subject in meta.subject_options:
        size = len(subject)
        if size > SUBJECT_MAX:
            yield Problem(
                path,
                found.line_of(key),
                "subject-length",
                "error",
                f"the subject is {size} characters (at most {SUBJECT_MAX}): “{subject[:40]}…”",
                f"keep it under {SUBJECT_WARN} characters; inboxes cut the rest",
            )
        elif size > SUBJECT_WARN:
            yield Problem(
                path,
                found.line_of(key),
                "subject-length",
                "warning",
                f"the subject is {size} characters; inboxes show about {SUBJECT_WARN}: “{subject}”",
                f"shorten it to {SUBJECT_WARN} characters or fewer, the point first",
            )
    size = len(meta.preheader)
    if size > PREHEADER_MAX:
        yield Problem(
            path,
            found.line_of("preheader"),
            "preheader-length",
            "error",
            f"the preheader is {size} characters (at most {PREHEADER_MAX})",
            f"keep it between {PREHEADER_MIN} and {PREHEADER_WARN} characters",
        )
    elif not PREHEADER_MIN <= size <= PREHEADER_WARN:
        yield Problem(
            path,
            found.line_of("preheader") if meta.preheader else found.line_of("id"),
            "preheader-length",
            "warning",
            f"the preheader is {size} characters; inboxes show {PREHEADER_MIN} to {PREHEADER_WARN}, and fill a "
            "short one with the email's first words",
            f"write {PREHEADER_MIN} to {PREHEADER_WARN} characters that add to the subject",
        )


def _check_links(found: _EmailFile) -> Iterator[Problem]:
    meta = found.email.meta
    if meta.cta_url.strip():
        problem = _link_problem(meta.cta_url.strip())
        if problem:
            yield Problem(found.path, found.line_of("cta_url"), "link", "error", f"cta_url {problem}", _LINK_FIX)
    for offset, line in enumerate(found.email.body.splitlines()):
        urls = [m.group(1) for pattern in (_MARKDOWN_LINK, _AUTOLINK, _BARE_URL) for m in pattern.finditer(line)]
        urls += [m.group(1) for m in _REFERENCE_LINK.finditer(line)]
        for url in urls:
            problem = _link_problem(url)
            if problem:
                yield Problem(found.path, found.body_line + offset, "link", "error", f"the link {problem}", _LINK_FIX)


_LINK_FIX = "use a full address that starts with https://, e.g. https://example.com/guide"


def _link_problem(url: str) -> str | None:
    if _MAILTO.match(url):
        return None
    if url.lower().startswith("mailto:"):
        return f"`{url}` is not a valid mailto: address"
    if "{{" in url or "{%" in url:
        return f"`{url}` is built from a template; links must be fixed addresses"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"`{url}` is malformed"
    if parts.scheme.lower() != "https":
        return f"`{url}` is not https" if parts.scheme else f"`{url}` is not a full https:// address"
    host = parts.hostname or ""
    if not _HOST.match(host) or any(c.isspace() for c in url):
        return f"`{url}` is malformed"
    return None


# --- Templates ----------------------------------------------------------------------------------
def _check_templates(found: _EmailFile) -> Iterator[Problem]:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    meta = found.email.meta
    environment = SandboxedEnvironment()
    sources = [
        (subject, found.line_of("subjects" if meta.subjects else "subject"), False) for subject in meta.subject_options
    ]
    sources += [(meta.preheader, found.line_of("preheader"), False), (found.email.body, found.body_line, True)]
    for source, line, is_body in sources:
        try:
            tree = environment.parse(source)
        except TemplateSyntaxError as error:
            at = line + (error.lineno - 1 if is_body else 0)
            yield Problem(
                found.path,
                at,
                "template-syntax",
                "error",
                f"the template does not parse: {error.message}",
                "close every `{{` with `}}` and every `{%` with `%}`",
            )
            continue
        for lineno, message, fix in _unknown_variables(tree):
            at = line + (lineno - 1 if is_body else 0)
            yield Problem(found.path, at, "template-variable", "error", message, fix)


_VARIABLE_FIX = "use `lead.<field>` (first_name, company, ...) or `sender.<field>` (docs/content.md lists them)"


def _unknown_variables(tree: nodes.Template) -> Iterator[tuple[int, str, str]]:
    from jinja2 import nodes

    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")} | {"loop"}

    def visit(node: nodes.Node, parent: nodes.Node | None) -> Iterator[tuple[int, str, str]]:
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in local:
            yield from name_use(node, parent)
        for child in node.iter_child_nodes():
            yield from visit(child, node)

    def name_use(node: nodes.Name, parent: nodes.Node | None) -> Iterator[tuple[int, str, str]]:
        allowed = {"lead": LEAD_FIELDS, "sender": SENDER_FIELDS}.get(node.name)
        if allowed is None:
            yield node.lineno, f"`{node.name}` is not a template value", _VARIABLE_FIX
            return
        attribute: Any = None
        if isinstance(parent, nodes.Getattr) and parent.node is node:
            attribute = parent.attr
        elif isinstance(parent, nodes.Getitem) and parent.node is node and isinstance(parent.arg, nodes.Const):
            attribute = parent.arg.value
        if attribute is None:
            yield node.lineno, f"`{node.name}` is used whole; name one of its fields", _VARIABLE_FIX
        elif attribute not in allowed:
            yield (
                node.lineno,
                f"`{node.name}.{attribute}` is not a {node.name} field ({', '.join(sorted(allowed))})",
                _VARIABLE_FIX,
            )

    yield from visit(tree, None)


# --- Rendering for sample leads ----------------------------------------------------------------
_HOSTILE = "{{ 7*7 }} {% raw %}x{% endraw %} <script>alert(1)</script> **bold** [link](javascript:alert(1)) "
SAMPLE_LEADS: dict[str, LeadTraits] = {
    "a lead who told us everything": LeadTraits(
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines Ltd",
        company_size=250,
        title="Head of Marketing",
        seniority="director",
        industry="software",
        country="GB",
        timezone="Europe/London",
        problem="Sales ignores our MQLs",
        budget_authority=True,
        timeline="next quarter",
    ),
    "a lead who told us nothing": LeadTraits(),
    "a lead with hostile values": LeadTraits(
        first_name=("Zoë\u202e\u200b🦊\ufeff" + "A" * 200)[:200],
        last_name=_HOSTILE[:200],
        company=(_HOSTILE * 20)[:300],
        company_size=10_000_000,
        title="\x00\u0301\U0010fffd" + "}}{{" * 50,
        seniority="c_level",
        industry="{% for x in range(10) %}{{ x }}{% endfor %}"[:100],
        country="ZZ",
        problem=("x" * 1999) + "\u0000",
        budget_authority=False,
        timeline="\n\n---\n\n" * 30,
    ),
}


def _check_renders(found: _EmailFile, programme: Programme | None) -> Iterator[Problem]:
    if not found.templates_ok:
        return
    email = found.email
    if email.meta.cta_url.strip() and _link_problem(email.meta.cta_url.strip()):
        # the `link` rule reports the address; render with a good one to find any other problem
        email = replace(email, meta=email.meta.model_copy(update={"cta_url": "https://example.com/"}))
    for variant in range(len(found.email.meta.subject_options)):
        context = (
            sample_context(programme, variant)
            if programme is not None
            else RenderContext(SenderDetails(), Profiling(), SAMPLE_UNSUBSCRIBE_URL, variant=variant)
        )
        for label, traits in SAMPLE_LEADS.items():
            try:
                render(email, traits, context)
            except TemplateFailure as error:
                yield Problem(
                    found.path,
                    _failure_line(found, error),
                    "render",
                    "error",
                    f"does not render for {label}: {_first_line(error.reason)}",
                    _RENDER_FIXES.get(error.kind, _RENDER_FIXES["other"]),
                )
                return
            except (ContentError, MemoryError, RecursionError) as error:
                yield Problem(
                    found.path,
                    found.body_line,
                    "render",
                    "error",
                    f"does not render for {label}: {_first_line(str(error).split(': ', 1)[-1])}",
                    _RENDER_FIXES["other"],
                )
                return


_RENDER_FIXES = {
    "missing": 'give every lead value a fallback (`{{ lead.company or "your team" }}`)',
    "arithmetic": "do not calculate with values that may be missing or zero: write the result, or check the value "
    "first (`{% if lead.company_size %}`)",
    "limit": "keep the template simple: loop over fewer items and build shorter text (docs/content.md, Rendering, "
    "lists the limits)",
    "memory": "do not build large values: loop over fewer items and build shorter text",
    "recursion": "remove the template's recursion (a macro or loop that calls itself)",
    "unsafe": "print only lead and sender fields (`{{ lead.first_name }}`); internals such as `__class__` and methods "
    "are refused",
    "other": 'give every lead value a fallback (`{{ lead.company or "your team" }}`) and keep logic simple',
}


def _failure_line(found: _EmailFile, error: TemplateFailure) -> int:
    """The file line of the template line that failed."""
    meta = found.email.meta
    if error.part == "subject":
        return found.line_of("subjects" if meta.subjects else "subject")
    if error.part == "preheader":
        return found.line_of("preheader")
    return found.body_line + (error.line - 1 if error.line else 0)


def _first_line(text: str) -> str:
    return (text.splitlines() or ["unknown error"])[0][:200]
