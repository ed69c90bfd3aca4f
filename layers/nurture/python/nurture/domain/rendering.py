"""An email as a prospect gets it: the marketer's Markdown, filled in for one lead, as HTML and plain text.

Jinja2 runs first, in a sandbox with hard limits (a template can read copies of the lead and the sender,
change nothing, and neither run long nor grow large); then Markdown (CommonMark, no raw HTML) is rendered
into a responsive layout with its CSS inlined, plus a plain-text part, and a footer with the postal address
and an unsubscribe link. Whatever goes wrong is a ContentError: broken content, never retried, never sent.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache, wraps
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from nurture.domain.content import ContentError, Email
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import Profiling, Programme, SenderDetails, Stage

if TYPE_CHECKING:
    from jinja2 import Environment, Template
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

# --- limits: generous for any real email, small enough that a hostile template fails in milliseconds ---
MAX_BODY_CHARS: Final = 100_000  # the body after Jinja (Markdown source)
MAX_SUBJECT_CHARS: Final = 200
MAX_PREHEADER_CHARS: Final = 300
MAX_VALUE_CHARS: Final = 100_000  # any one string or list a template builds
MAX_WORK: Final = 2_000_000  # characters and items a template's operations read and build, added up
MAX_STEPS: Final = 20_000  # loop iterations, calls and filters
MAX_INT_BITS: Final = 10_000
RENDER_SECONDS: Final = 0.5

SAMPLE_UNSUBSCRIBE_URL: Final = "https://example.com/v1/unsubscribe?token=sample"
# The query parameter that carries the signed click token (the tracking snippet reads it): a name, not a secret.
CLICK_TOKEN_PARAMETER: Final = "nt"  # noqa: S105
PROFILED_FIELDS: Final = ("company_size", "seniority", "budget_authority", "timeline")

SENIORITY_LABELS: Final = {
    "ic": "individual contributor",
    "manager": "manager",
    "director": "director",
    "vp": "VP",
    "c_level": "C-level",
}
# Codes a form or a CRM may send, in the words a prospect would use; any other snake_case code reads with spaces.
WORD_LABELS: Final = {
    "saas": "SaaS",
    "b2b": "B2B",
    "it": "IT",
    "hr": "HR",
    "ecommerce": "e-commerce",
    "this_quarter": "this quarter",
    "next_quarter": "next quarter",
    "this_year": "this year",
    "next_year": "next year",
    "exploring": "just exploring",
}
_CODE = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")


@dataclass(frozen=True)
class RenderContext:
    """What an email needs besides the lead: who sends it, where to ask for missing traits, the lead's links."""

    sender: SenderDetails
    profiling: Profiling
    unsubscribe_url: str
    link_token: str | None = None  # the signed click token appended to https links as `nt=`
    variant: int = 0  # which subject of an A/B test (see `choose_variant`)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    text: str
    html: str
    variant: int


def choose_variant(lead_id: str, email: Email) -> int:
    """The lead's subject variant of this email: the same every time, spread evenly over leads."""
    digest = hashlib.sha256(f"{lead_id}\n{email.meta.id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(email.meta.subject_options)


def sample_context(programme: Programme, variant: int = 0) -> RenderContext:
    """A context for checking and previewing emails: the programme's sender and profiling, an example link."""
    return RenderContext(
        sender=programme.sender,
        profiling=programme.profiling,
        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
        variant=variant,
    )


def render(email: Email, traits: LeadTraits, context: RenderContext) -> RenderedEmail:
    """Render an email for one lead. Raises ContentError rather than let a broken one reach a prospect."""
    meta = email.meta
    options = meta.subject_options
    variant = context.variant % len(options)
    lead = lead_view(traits)
    sender = {
        "name": context.sender.name,
        "company": context.sender.company,
        "postal_address": context.sender.postal_address,
    }
    token = _budget.set(_Budget())
    try:
        subject = _fill(meta.id, "subject", options[variant], lead, sender, markdown=False, traits=traits)
        preheader = _fill(meta.id, "preheader", meta.preheader, lead, sender, markdown=False, traits=traits)
        body = _fill(meta.id, "body", email.body, lead, sender, markdown=True, traits=traits)
    finally:
        _budget.reset(token)
    subject = " ".join(subject.split())
    preheader = " ".join(preheader.split())
    if not subject:
        raise ContentError(f"email {meta.id} does not render: its subject is empty for this lead")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ContentError(f"email {meta.id} does not render: its subject is over {MAX_SUBJECT_CHARS} characters")
    if len(preheader) > MAX_PREHEADER_CHARS:
        raise ContentError(f"email {meta.id} does not render: its preheader is over {MAX_PREHEADER_CHARS} characters")
    cta = _call_to_action(email, context)
    ask = _profiling_ask(email, traits, context)
    try:
        tokens = _markdown().parse(body)
        for link in _links(tokens):
            link.attrSet("href", _tracked(str(link.attrGet("href") or ""), context.link_token))
        parts = _Parts(
            subject=subject,
            preheader=preheader,
            body_html=_markdown().renderer.render(tokens, _markdown().options, {}),
            body_text=_plain_text(tokens),
            cta=cta,
            ask=ask,
            sender=context.sender,
            unsubscribe_url=context.unsubscribe_url,
        )
        text, html = _text(parts), _html(parts)
    except Exception as error:  # markdown-it and css-inline are linear; whatever they raise is still broken content
        raise ContentError(f"email {meta.id} does not render: {type(error).__name__} in Markdown or layout") from None
    return RenderedEmail(subject=subject, preheader=preheader, text=text, html=html, variant=variant)


def lead_view(traits: LeadTraits) -> dict[str, Any]:
    """What a template sees as `lead`: a fresh copy of the traits (never the address), codes in human words."""
    lead = traits.model_dump(exclude={"email"})
    if traits.seniority is not None:
        lead["seniority"] = SENIORITY_LABELS.get(traits.seniority, traits.seniority)
    for name in ("industry", "timeline"):
        value = lead.get(name)
        if isinstance(value, str):
            lead[name] = _words(value)
    return lead


def _words(value: str) -> str:
    """`financial_services` -> "financial services"; free text as the lead wrote it."""
    if not _CODE.fullmatch(value):
        return value
    if value in WORD_LABELS:
        return WORD_LABELS[value]
    return " ".join(WORD_LABELS.get(word, word) for word in re.split(r"[_-]", value))


# --- the sandbox --------------------------------------------------------------------------------
class _LimitExceeded(Exception):
    """A template that tried to do too much: refused before it could hurt the sender."""


class _Budget:
    """What one render may still spend; checked at every loop step, call, filter, operator and join."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + RENDER_SECONDS
        self.steps = MAX_STEPS
        self.work = MAX_WORK

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise _LimitExceeded(f"too much work (over {MAX_STEPS} loop steps and calls)")
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"took longer than {RENDER_SECONDS:g} s")

    def charge(self, value: object) -> None:
        """For a value an operation built: refused when huge, and its size counts as work."""
        size = _size(value)
        if size > MAX_VALUE_CHARS:
            raise _LimitExceeded(f"builds a value over {MAX_VALUE_CHARS} characters")
        self.spend(size)

    def spend(self, work: int) -> None:
        self.work -= work
        if self.work < 0:
            raise _LimitExceeded(f"reads and builds over {MAX_WORK} characters in all")


_budget: ContextVar[_Budget | None] = ContextVar("nurture_render_budget", default=None)


def _spend() -> _Budget:
    budget = _budget.get()
    if budget is None:  # only `render` sets one; anything else running a template is a bug
        raise _LimitExceeded("rendered outside `render`")
    budget.step()
    return budget


def _size(value: object) -> int:
    """Characters (or items, plus the characters of string items) a value holds."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value) + sum(len(item) for item in value if isinstance(item, str | bytes))
    if isinstance(value, range):
        return len(value)
    return 0


def _refuse_over(estimate: int | float, what: str) -> None:
    if estimate > MAX_VALUE_CHARS:
        raise _LimitExceeded(f"{what} would build a value over {MAX_VALUE_CHARS} characters")


# `'%999999999s' % x` and `'{:>999999999}'.format(x)` allocate before anything can measure them: a width or
# precision of six digits or more, or one taken from the arguments (`%*s`, `{:{}}`), is refused.
_PERCENT_WIDTH = re.compile(r"%[#0 +\-]*(?:\*|\d{6,}|\d*\.(?:\*|\d{6,}))")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*:[^{}]*\d{6,}[^{}]*\}|\{[^{}]*\{")


def _check_percent_format(template: str) -> None:
    if _PERCENT_WIDTH.search(template):
        raise _LimitExceeded("a format with a huge or computed width")


def _check_format(template: str) -> None:
    if _FORMAT_WIDTH.search(template):
        raise _LimitExceeded("a format with a huge or computed width")


def _ints(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequences = str | bytes | list | tuple  # type: ignore[type-arg]
    if operator == "*":
        if isinstance(left, int) and isinstance(right, sequences):
            left, right = right, left
        if isinstance(left, sequences) and isinstance(right, int):
            _refuse_over(_size(left) * max(right, 0), "`*`")
        elif isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _LimitExceeded("a number too large")
    elif operator == "**":
        if _ints(left, right) and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
            raise _LimitExceeded("a number too large")
    elif operator == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            _refuse_over(_size(left) + _size(right), "`+`")
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left)


_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _check_call(target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a string method that would build something huge; returns the arguments to call it with."""
    function = getattr(target, "__wrapped__", target)  # the sandbox wraps str.format
    owner = getattr(function, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(function, "__name__", "")
    numbers = [value for value in (*args, *kwargs.values()) if isinstance(value, int)]
    if name in _PADDING_METHODS and numbers:
        factor = len(owner) if name == "expandtabs" else 1
        _refuse_over(max(numbers) * max(factor, 1), f"`{name}`")
    elif name in ("format", "format_map"):
        _check_format(owner)
    elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
        _refuse_over((len(owner) + 1) * max(len(args[1]), 1) + len(owner), "`replace`")
    elif name == "join" and args:
        items = list(args[0])
        _refuse_over(sum(len(str(item)) for item in items) + len(owner) * len(items), "`join`")
        return (items, *args[1:])
    return args


def _filter_guard(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A Jinja filter that spends the render's budget and refuses to build anything huge."""
    # `map`, `join`, `replace`... take Jinja's context, eval context or environment first: the value comes next.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _spend()
        if len(args) > skip:
            value = _check_filter(name, args[skip], args[skip + 1 :], kwargs)
            budget.spend(_size(value))  # a filter's work grows with what it reads (`sum`, `sort`, `replace`...)
            args = (*args[:skip], value, *args[skip + 1 :])
        result = function(*args, **kwargs)
        budget.charge(result)
        return result

    return guarded


def _argument(rest: tuple[Any, ...], kwargs: Mapping[str, Any], position: int, name: str, default: Any) -> Any:
    return rest[position] if len(rest) > position else kwargs.get(name, default)


def _check_filter(name: str, value: Any, rest: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Refuse a filter call that would build something huge; returns the value to filter."""
    text = value if isinstance(value, str) else ""
    if name in ("center", "slice", "batch"):
        count = _argument(rest, kwargs, 0, {"center": "width", "slice": "slices", "batch": "linecount"}[name], 0)
        if isinstance(count, int):
            _refuse_over(count, f"`{name}`")
    elif name == "indent":
        width = _argument(rest, kwargs, 0, "width", 4)
        per_line = width if isinstance(width, int) else len(str(width))
        _refuse_over(len(text) + (text.count("\n") + 1) * per_line, "`indent`")
    elif name == "wordwrap":
        width = _argument(rest, kwargs, 0, "width", 79)
        wrap = _argument(rest, kwargs, 2, "wrapstring", None) or "\n"
        if isinstance(width, int) and isinstance(wrap, str):
            _refuse_over(len(text) + (len(text) // max(width, 1) + 1) * len(wrap), "`wordwrap`")
    elif name == "replace":
        new = _argument(rest, kwargs, 1, "new", "")
        if isinstance(new, str):
            _refuse_over((len(text) + 1) * max(len(new), 1) + len(text), "`replace`")
    elif name == "join":
        if not isinstance(value, str | list | tuple | dict):
            value = list(value)
        separator = _argument(rest, kwargs, 0, "d", "")
        if isinstance(separator, str):
            _refuse_over(_size(value) + len(separator) * len(value), "`join`")
    elif name == "format" and isinstance(value, str):
        _check_percent_format(value)
    return value


def _guarded_loop(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        _spend()
        yield item


def _guarded_concat(pieces: Iterable[str]) -> str:
    """Joins a template's buffers (`{% set %}` blocks, macros) and `~`: never into something huge."""
    budget = _spend()
    parts = list(pieces)
    _refuse_over(sum(len(part) for part in parts), "joining text")
    joined = "".join(parts)
    budget.charge(joined)
    return joined


def _markdown_text(value: Any) -> str:
    """Whatever `{{ }}` prints into the body is text, never Markdown or HTML: a trait cannot add a link."""
    return _escape_markdown(" ".join(_plain(value).split()))


def _plain(value: Any) -> str:
    if value is None:  # a trait the lead has not told us: nothing, never "None"
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _single_line(value: Any) -> str:
    return " ".join(_plain(value).split())


def _escape_markdown(text: str) -> str:
    # CommonMark lets any ASCII punctuation be escaped with a backslash, and renders it literally.
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


@cache
def _environment(markdown: bool) -> Environment:
    # Imported here: only the sender renders, so only its cold start pays for Jinja2.
    from jinja2 import StrictUndefined, nodes
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Cycler, Joiner, Namespace

    class GuardedCode(CodeGenerator):
        """Every loop spends the budget per item, and `~` is joined by the guarded concat."""

        def visit_For(self, node: nodes.For, frame: Frame) -> None:
            if not getattr(node, "guarded", False):
                guard = nodes.Call(nodes.EnvironmentAttribute("guarded_loop"), [node.iter], [], None, None)
                node.iter = guard.set_lineno(node.lineno)
                node.guarded = True  # type: ignore[attr-defined]
            super().visit_For(node, frame)

        def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
            self.write("environment.concat(map(str, (")
            for argument in node.nodes:
                self.visit(argument, frame)
                self.write(", ")
            self.write(")))")

    class Sandbox(ImmutableSandboxedEnvironment):
        code_generator_class = GuardedCode
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            budget = _spend()
            _check_binop(operator, left, right)
            result = super().call_binop(context, operator, left, right)
            budget.charge(result)
            return result

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            budget = _spend()
            args = _check_call(__obj, args, kwargs)
            budget.spend(_size(getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)))
            result = super().call(__context, __obj, *args, **kwargs)
            budget.charge(result)
            return result

    # A field the lead has not told us renders as nothing; in the body, whatever is printed is escaped text.
    environment = Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_markdown_text if markdown else _single_line,
    )
    environment.guarded_loop = _guarded_loop  # type: ignore[attr-defined]
    environment.concat = _guarded_concat  # type: ignore[method-assign]
    environment.globals = {  # no `lipsum` (slow by design); `range` is the sandbox's, and each counts as work
        "range": environment.globals["range"],
        "dict": dict,
        "cycler": Cycler,
        "joiner": Joiner,
        "namespace": Namespace,
    }
    environment.filters = {name: _filter_guard(name, f) for name, f in environment.filters.items()}
    return environment


@lru_cache(maxsize=512)
def _compile(source: str, markdown: bool) -> Template:
    return _environment(markdown).from_string(source)


def _fill(
    email_id: str,
    part: str,
    source: str,
    lead: dict[str, Any],
    sender: dict[str, str],
    *,
    markdown: bool,
    traits: LeadTraits,
) -> str:
    """Run one part of an email through the sandbox, with fresh copies of what it may read."""
    if not source:
        return ""
    try:
        template = _compile(source, markdown)
        pieces: list[str] = []
        written = 0
        limit = MAX_BODY_CHARS if part == "body" else MAX_VALUE_CHARS
        for piece in template.generate(lead=dict(lead), sender=dict(sender)):
            written += len(piece)
            if written > limit:
                raise _LimitExceeded(f"its {part} is over {limit} characters")
            pieces.append(piece)
        return "".join(pieces)
    except Exception as error:  # everything, MemoryError and RecursionError included, is broken content
        raise TemplateFailure(
            _explain(email_id, part, error, traits), part=part, line=_template_line(error), kind=_kind(error)
        ) from None


class TemplateFailure(ContentError):
    """A template that failed while being filled in: which part, which line of it (from 1, None when unknown) and
    what kind of failure (`limit`, `memory`, `recursion`, `unsafe`, `missing`, `arithmetic`, `other`), so a
    checker can point at the line and say how to fix it."""

    def __init__(self, message: str, *, part: str, line: int | None, kind: str) -> None:
        super().__init__(message)
        self.part = part
        self.line = line
        self.kind = kind

    @property
    def reason(self) -> str:
        """The message without the email and the place: what went wrong."""
        return str(self).split("): ", 1)[-1]  # "email X does not render (body line 7): reason"


def _template_line(error: BaseException) -> int | None:
    from jinja2 import TemplateSyntaxError

    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def _kind(error: BaseException) -> str:
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (_LimitExceeded, "limit"),
        (MemoryError, "memory"),
        (RecursionError, "recursion"),
        (SecurityError, "unsafe"),
        (UndefinedError, "missing"),
        (ArithmeticError, "arithmetic"),
    ]
    return next((kind for types, kind in kinds if isinstance(error, types)), "other")


def _explain(email_id: str, part: str, error: BaseException, traits: LeadTraits) -> str:
    """Names the email, the part and the line, never the lead: error texts can quote a value (a name)."""
    line = _template_line(error)
    where = f"{part} line {line}" if line else part
    if isinstance(error, _LimitExceeded):
        reason = f"the template tries to do too much: {error}"
    elif isinstance(error, MemoryError):
        reason = "the template runs out of memory"
    elif isinstance(error, RecursionError):
        reason = "the template calls itself too deeply"
    else:
        reason = str(error) or type(error).__name__
    for value in (*traits.model_dump().values(), *lead_view(traits).values()):
        if isinstance(value, str) and value.strip():
            reason = reason.replace(value, "…")
    return f"email {email_id} does not render ({where}): {reason[:300]}"


# --- Markdown, links and the layout -------------------------------------------------------------
@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off: a `<script>` or `<img onerror>` in an email shows as text.
    return MarkdownIt("commonmark", {"html": False})


def _links(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        if token.type == "link_open":
            yield token
        if token.children:
            yield from _links(token.children)


def _tracked(url: str, link_token: str | None) -> str:
    """An https link with the lead's signed click token (`nt=`); anything else as it was."""
    if link_token is None or not url.startswith("https://"):
        return url
    parts = urlsplit(url)
    parameter = f"{CLICK_TOKEN_PARAMETER}={quote(link_token, safe='')}"
    query = f"{parts.query}&{parameter}" if parts.query else parameter
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class _Link:
    lead_in: str
    label: str
    url: str
    after: str = ""


@dataclass(frozen=True)
class _Parts:
    subject: str
    preheader: str
    body_html: str
    body_text: str
    cta: _Link | None
    ask: _Link | None
    sender: SenderDetails
    unsubscribe_url: str


def _call_to_action(email: Email, context: RenderContext) -> _Link | None:
    meta = email.meta
    if meta.cta == "none" or not meta.cta_url:
        return None
    if not meta.cta_url.startswith("https://") or any(c.isspace() for c in meta.cta_url):
        raise ContentError(f"email {meta.id} does not render: its cta_url must be an https:// address")
    return _Link(lead_in="", label=meta.cta_label or "Read more", url=_tracked(meta.cta_url, context.link_token))


_ASKS: Final = {
    Stage.AWARENESS: (
        "P.S. Want these emails to fit your situation better?",
        "Tell us a little about your team",
        "; it takes a minute.",
    ),
    Stage.CONSIDERATION: (
        "P.S. Want these emails to fit your situation better?",
        "Tell us a little about your team",
        "; it takes a minute.",
    ),
    Stage.DECISION: (
        "P.S. One question, so we only suggest next steps that fit:",
        "who owns the budget, and when?",
        "",
    ),
}


def _profiling_ask(email: Email, traits: LeadTraits, context: RenderContext) -> _Link | None:
    """Progressive profiling: ask for what sales needs and the lead has not told us, where the stage allows."""
    stage = email.meta.sequence
    url = context.profiling.budget_question_url if stage is Stage.DECISION else context.profiling.form_url
    fields = email.meta.profiling or PROFILED_FIELDS
    missing = [name for name in fields if getattr(traits, name) in (None, "")]
    if stage not in _ASKS or url is None or not missing:
        return None
    lead_in, label, after = _ASKS[stage]
    return _Link(lead_in=lead_in, label=label, url=_tracked(url, context.link_token), after=after)


def _plain_text(tokens: list[Token]) -> str:
    """The Markdown as a prospect reads it without HTML: paragraphs, numbered and bulleted lists, links as
    "label (url)"."""
    blocks: list[str] = []
    breaks: list[str] = []  # what goes before each block: a blank line, or one line break inside a tight list
    lists: list[list[int]] = []  # per open list: [ordered, next number, items so far]
    item: str | None = None
    quote_depth = 0
    tight = False
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists.append([kind == "ordered_list_open", int(token.attrGet("start") or 1), 0])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            ordered, number, _ = lists[-1]
            item = f"{number}. " if ordered else "- "
            lists[-1][1] += 1
            lists[-1][2] += 1
        elif kind in ("blockquote_open", "blockquote_close"):
            quote_depth += 1 if kind == "blockquote_open" else -1
        elif kind == "paragraph_open":
            tight = token.hidden
        elif kind == "hr":
            blocks.append("----")
            breaks.append("\n\n")
        elif kind in ("inline", "fence", "code_block"):
            text = _inline_text(token.children or []) if kind == "inline" else token.content.rstrip("\n")
            indent = "   " * max(len(lists) - 1, 0)
            first = indent + (item or ("   " if lists else ""))
            rest = indent + ("   " if lists else "")
            lines = text.split("\n")
            block = "\n".join([first + lines[0], *(rest + line for line in lines[1:])])
            if quote_depth:
                block = "\n".join("> " * quote_depth + line for line in block.split("\n"))
            next_item_of_tight_list = bool(lists) and tight and item is not None and lists[-1][2] > 1
            blocks.append(block)
            breaks.append("\n" if next_item_of_tight_list else "\n\n")
            item = None
    return "".join(separator + block for separator, block in zip(breaks, blocks, strict=True)).lstrip("\n")


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    links: list[tuple[Token, int]] = []  # each open link and where its label starts
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline", "image"):
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "link_open":
            links.append((child, len(out)))
        elif kind == "link_close" and links:
            link, start = links.pop()
            href = str(link.attrGet("href") or "")
            if link.markup == "autolink":  # <https://...>: the address is its own label
                out[start:] = [href]
            else:
                out.append(f" ({href})")
    return "".join(out)


def _footer_lines(sender: SenderDetails) -> list[str]:
    lines = [f"{sender.name}, {sender.company}" if sender.name != sender.company else sender.name]
    if sender.postal_address:
        lines.append(sender.postal_address)
    lines.append(
        f"You are receiving this email because you signed up for or downloaded something from {sender.company}."
    )
    return lines


def _text(parts: _Parts) -> str:
    sections = [parts.body_text]
    if parts.cta is not None:
        sections.append(f"{parts.cta.label} ({parts.cta.url})")
    if parts.ask is not None:
        sections.append(f"{parts.ask.lead_in} {parts.ask.label} ({parts.ask.url}){parts.ask.after}")
    footer = "\n".join(["-- ", *_footer_lines(parts.sender), f"Unsubscribe ({parts.unsubscribe_url})"])
    sections.append(footer)
    return "\n\n".join(s for s in sections if s).strip() + "\n"


_STYLE = """
body { margin: 0; padding: 0; background-color: #f3f4f6; }
.wrapper { width: 100%; background-color: #f3f4f6; }
.container { width: 100%; max-width: 600px; background-color: #ffffff; border-radius: 8px; }
.content { padding: 32px 32px 8px 32px; font-family: Helvetica, Arial, sans-serif; font-size: 16px;
  line-height: 1.6; color: #1f2933; text-align: left; }
.content p { margin: 0 0 16px 0; }
.content ul, .content ol { margin: 0 0 16px 0; padding-left: 24px; }
.content li { margin: 0 0 8px 0; }
.content a { color: #1d4ed8; text-decoration: underline; }
.content h1, .content h2, .content h3 { margin: 0 0 12px 0; line-height: 1.3; color: #111827; }
.cta { margin: 8px 0 24px 0; }
.cta-cell { border-radius: 6px; background-color: #1d4ed8; }
.cta .button { display: inline-block; padding: 12px 24px; font-family: Helvetica, Arial, sans-serif; font-size: 16px;
  font-weight: bold; color: #ffffff; text-decoration: none; border-radius: 6px; }
.ask { margin: 0 0 16px 0; font-size: 15px; color: #374151; }
.ask a { color: #1d4ed8; }
.footer { padding: 16px 32px 32px 32px; font-family: Helvetica, Arial, sans-serif; font-size: 13px;
  line-height: 1.5; color: #4b5563; text-align: left; }
.footer p { margin: 0 0 8px 0; }
.footer a { color: #1d4ed8; text-decoration: underline; }
.preheader { display: none; max-height: 0; overflow: hidden; opacity: 0; color: transparent; font-size: 1px;
  line-height: 1px; mso-hide: all; }
"""
# Kept in a <style> of its own (a media query cannot be inlined), for the clients that honour it: phones get
# narrower margins.
_RESPONSIVE = """
@media (max-width: 620px) {
  .content { padding: 20px 16px 4px 16px !important; }
  .footer { padding: 12px 16px 24px 16px !important; }
}
"""

_LAYOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{{ subject }}</title>
<style>{{ style }}</style>
</head>
<body>
{% if preheader %}<span class="preheader">{{ preheader }}</span>
{% endif %}<table role="presentation" class="wrapper" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><td align="center" style="padding: 24px 8px;">
<table role="presentation" class="container" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><td class="content">
{{ body }}
{% if cta %}<table role="presentation" class="cta" cellpadding="0" cellspacing="0" border="0"><tr>
<td class="cta-cell"><a class="button" href="{{ cta.url }}">{{ cta.label }}</a></td>
</tr></table>
{% endif %}{% if ask %}<p class="ask">{{ ask.lead_in }} <a href="{{ ask.url }}">{{ ask.label }}</a>{{ ask.after }}</p>
{% endif %}</td></tr>
<tr><td class="footer">
<p>{% for line in footer %}{{ line }}{% if not loop.last %}<br>{% endif %}{% endfor %}</p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> from these emails with one click.</p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""


@cache
def _layout() -> Template:
    from jinja2 import Environment

    # Our own template, not a marketer's: autoescaped, and the body is Markdown's output (raw HTML off).
    return Environment(autoescape=True).from_string(_LAYOUT)


def _html(parts: _Parts) -> str:
    import css_inline
    from markupsafe import Markup

    page = _layout().render(
        subject=parts.subject,
        preheader=parts.preheader,
        style=Markup(_RESPONSIVE),  # noqa: S704 (our constant)
        body=Markup(parts.body_html),  # noqa: S704 (markdown-it's output, raw HTML off: text is escaped)
        cta=parts.cta,
        ask=parts.ask,
        footer=_footer_lines(parts.sender),
        unsubscribe_url=parts.unsubscribe_url,
    )
    # Most mail clients drop <style>: every rule goes inline; the media query stays for those that keep it.
    return css_inline.inline(
        page, inline_style_tags=False, keep_style_tags=True, load_remote_stylesheets=False, extra_css=_STYLE
    )
