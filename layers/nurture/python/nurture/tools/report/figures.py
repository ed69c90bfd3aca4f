"""The monthly review's figures, from the month's counters (`nurture.domain.metrics`; definitions in docs/metrics.md).

Pure apart from the statistics library: `monthly_report(counters_by_month, month, ...)` is what `nurture report`
prints and draws, and what the tests check against hand-made histories with known answers.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping

from pydantic import BaseModel, Field

from nurture.domain.metrics import NOT_NURTURED, NURTURED, SEP
from nurture.domain.programme import Programme

# The seeds' benchmarks, shown beside the figures.
BENCHMARKS = {"mql_to_sql": (0.30, 0.40), "open_rate": (0.20, 0.30), "click_rate": (0.03, 0.07)}
# Above this share of re-engaged leads suppressed, the seed says to fix lead quality at acquisition.
SUPPRESSION_ADVICE_ABOVE = 0.60
AB_ALPHA = 0.05
AB_POWER = 0.80
STAGE_TIMES = (("awareness", "consideration"), ("consideration", "decision"))
FUNNEL = (
    ("new leads", "leads|new"),
    ("consideration", "stage|entered|consideration"),
    ("decision (MQL)", "mql|alerts"),
    ("accepted by sales this month (SQL)", "accuracy|accepted"),
    ("opportunity", "sales|opportunity"),
    ("won", "sales|won"),
)
Counters = Mapping[str, float]


class StageTime(BaseModel):
    """Days leads spent in one stage before moving to the next (moves made in the month)."""

    from_stage: str
    to_stage: str
    leads: int
    median_days: float | None
    p75_days: float | None
    days: dict[int, int] = Field(description="How many leads moved after each number of whole days")


class EmailRow(BaseModel):
    """One email (or one subject variant of it): what SES and the leads did with it in the month."""

    sequence: str
    content_id: str
    variant: int | None = Field(description="The subject variant (A/B), or None for the email's total")
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    opened_automated: int = 0
    clicked_automated: int = 0
    bounced: int = 0
    bounced_permanent: int = 0
    rejected: int = 0
    complained: int = 0
    unsubscribed: int = 0

    @property
    def base(self) -> int:
        """What rates are out of: the emails delivered, or sent when SES reported no deliveries."""
        return self.delivered or self.sent

    def rate(self, part: int) -> float | None:
        return part / self.base if self.base else None

    @property
    def rates(self) -> dict[str, float | None]:
        return {
            "delivered": self.delivered / self.sent if self.sent else None,
            "open": self.rate(self.opened),
            "click": self.rate(self.clicked),
            "unsubscribe": self.rate(self.unsubscribed),
            "bounce": (self.bounced + self.bounced_permanent) / self.sent if self.sent else None,
            "complaint": self.rate(self.complained),
        }


class AbResult(BaseModel):
    """A subject test on one email: unique opens per email delivered, by variant."""

    content_id: str
    variants: list[EmailRow]
    p_value: float | None
    winner: int | None = Field(description="The variant that won, once the difference is significant")
    verdict: str
    sends_needed: int | None = Field(default=None, description="About how many more sends, in all, before a verdict")


class MonthlyReport(BaseModel):
    month: str
    baseline: str | None
    empty: bool = Field(description="Nothing was counted in the month")
    mql: int
    sql: int
    mql_to_sql: float | None
    baseline_mql_to_sql: float | None
    mql_to_sql_change: float | None = Field(description="Percentage points against the baseline month")
    stage_times: list[StageTime]
    won_nurtured: float
    won_not_nurtured: float
    deals_won_nurtured: int
    deals_won_not_nurtured: int
    pipeline_nurtured: float
    pipeline_not_nurtured: float
    reengaged: int
    suppressed: int
    suppression_rate: float | None
    suppression_advice: str | None
    funnel: list[tuple[str, int]]
    emails: list[EmailRow] = Field(description="Each email's totals, in programme order")
    sequences: list[EmailRow] = Field(description="Each sequence's totals (content_id: the sequence)")
    ab_tests: list[AbResult]
    drop_off: dict[str, str | None] = Field(description="Per sequence: the email after which clicks fall off")
    completed: dict[str, int]
    waiting_on_content: dict[str, int] = Field(description="Leads waiting for new emails at the month's end")
    score_at_entry: dict[str, float] = Field(description="Average intent score of leads entering each stage")
    accuracy_mql_accepted: float | None = Field(description="Of the month's MQLs, the share sales accepted")
    accuracy_flagged_first: float | None = Field(description="Of leads sales accepted, the share the model flagged")
    unsubscribed: int
    scanner_clicks: int
    scanner_opens: int
    roi: float | None
    aws_cost: float | None
    content_cost: float | None
    trend: list[dict[str, float | str | None]] = Field(description="The four metrics for each month shown")


def _sum(counters: Counters, prefix: str) -> float:
    return sum(v for k, v in counters.items() if k.startswith(prefix))


def _int(counters: Counters, name: str) -> int:
    return int(counters.get(name, 0))


def percentile(days: Mapping[int, int], share: float) -> float | None:
    """The whole-day value below which `share` of the leads fall (nearest rank)."""
    total = sum(days.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for day in sorted(days):
        seen += days[day]
        if seen >= rank:
            return float(day)
    return float(max(days))


def stage_times(counters: Counters) -> list[StageTime]:
    result = []
    for source, target in STAGE_TIMES:
        prefix = SEP.join(("days", source, target, ""))
        days = {int(k[len(prefix) :]): int(v) for k, v in counters.items() if k.startswith(prefix) and v}
        result.append(
            StageTime(
                from_stage=source,
                to_stage=target,
                leads=sum(days.values()),
                median_days=percentile(days, 0.5),
                p75_days=percentile(days, 0.75),
                days=dict(sorted(days.items())),
            )
        )
    return result


def variant_rows(counters: Counters) -> dict[tuple[str, str, int], EmailRow]:
    """Per email and subject variant (`email|<sequence>|<email>|<variant>|<what>`); unsubscribes name the email, not
    the variant, and are kept on variant 0."""
    variants: dict[tuple[str, str, int], EmailRow] = {}
    for name, value in counters.items():
        parts = name.split(SEP)
        if parts[0] != "email" or len(parts) != 5:
            continue
        _, sequence, content_id, variant, what = parts
        try:
            number = int(float(variant))
        except ValueError:
            continue
        row = variants.setdefault(
            (sequence, content_id, number), EmailRow(sequence=sequence, content_id=content_id, variant=number)
        )
        if what in EmailRow.model_fields:
            setattr(row, what, getattr(row, what) + int(value))
    for name, value in counters.items():
        parts = name.split(SEP)
        if parts[0] == "unsubscribed" and len(parts) == 3:
            sequence, content_id = parts[1], parts[2]
            row = variants.setdefault(
                (sequence, content_id, 0), EmailRow(sequence=sequence, content_id=content_id, variant=0)
            )
            row.unsubscribed += int(value)
    return variants


def email_rows(counters: Counters, programme: Programme | None) -> tuple[list[EmailRow], list[EmailRow]]:
    """Per email (its variants added up) in programme order, then per sequence."""
    variants = variant_rows(counters)
    order = _programme_order(programme)
    emails: dict[tuple[str, str], EmailRow] = {}
    for (sequence, content_id, _), row in sorted(variants.items()):
        total = emails.setdefault(
            (sequence, content_id), EmailRow(sequence=sequence, content_id=content_id, variant=None)
        )
        _add(total, row)
    ordered = sorted(emails.values(), key=lambda r: (order.get(r.content_id, (99, 99)), r.sequence, r.content_id))
    sequences: dict[str, EmailRow] = {}
    for row in ordered:
        total = sequences.setdefault(
            row.sequence, EmailRow(sequence=row.sequence, content_id=row.sequence, variant=None)
        )
        _add(total, row)
    return ordered, list(sequences.values())


def _add(total: EmailRow, row: EmailRow) -> None:
    for field in EmailRow.model_fields:
        if field not in ("sequence", "content_id", "variant"):
            setattr(total, field, getattr(total, field) + getattr(row, field))


def _programme_order(programme: Programme | None) -> dict[str, tuple[int, int]]:
    if programme is None:
        return {}
    stages = ("awareness", "consideration", "decision", "re_engagement")
    return {
        content_id: (i, j)
        for i, stage in enumerate(stages)
        for j, content_id in enumerate(getattr(programme.sequences, stage).emails)
    }


def ab_tests(counters: Counters) -> list[AbResult]:
    """Each email sent with more than one subject: a two-proportion z-test on unique opens per email delivered."""
    by_email: dict[tuple[str, str], list[EmailRow]] = defaultdict(list)
    for (sequence, content_id, _), row in sorted(variant_rows(counters).items()):
        by_email[(sequence, content_id)].append(row)
    return [ab_result(content_id, rows) for (_, content_id), rows in sorted(by_email.items()) if len(rows) > 1]


def ab_result(content_id: str, rows: list[EmailRow]) -> AbResult:
    """The test of the two variants with the highest open rates: significant at 5%, or how many more sends."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

    ranked = sorted(rows, key=lambda r: (-(r.rate(r.opened) or 0.0), r.variant or 0))
    best, second = ranked[0], ranked[1]
    if best.base == 0 or second.base == 0:
        return AbResult(
            content_id=content_id, variants=rows, p_value=None, winner=None, verdict="not yet: no email delivered"
        )
    # An open counted in a month after its send's month can outnumber that month's sends: at most all of them.
    opened = [min(best.opened, best.base), min(second.opened, second.base)]
    if opened == [0, 0]:
        return AbResult(content_id=content_id, variants=rows, p_value=None, winner=None, verdict="not yet: no opens")
    _, p_value = proportions_ztest(opened, [best.base, second.base])
    p = float(p_value) if not math.isnan(p_value) else 1.0
    p1, p2 = opened[0] / best.base, opened[1] / second.base
    if p < AB_ALPHA and p1 > p2:
        verdict = f"variant {best.variant} wins (p = {p:.3f})"
        return AbResult(content_id=content_id, variants=rows, p_value=p, winner=best.variant, verdict=verdict)
    needed: int | None = None
    if p1 != p2:
        effect = abs(float(proportion_effectsize(p1, p2)))
        per_variant = NormalIndPower().solve_power(effect_size=effect, alpha=AB_ALPHA, power=AB_POWER, ratio=1.0)
        if math.isfinite(per_variant):
            needed = max(0, math.ceil(per_variant) * 2 - (best.base + second.base))
    verdict = f"not yet, need about {needed:,} more sends" if needed else "no difference between the variants yet"
    return AbResult(content_id=content_id, variants=rows, p_value=p, winner=None, verdict=verdict, sends_needed=needed)


def drop_off(emails: list[EmailRow]) -> dict[str, str | None]:
    """Per sequence, the email after which engagement falls off: the last email before the first one whose click
    rate is under half the best click rate of the emails before it (None while every email holds up, or nothing
    was clicked yet)."""
    result: dict[str, str | None] = {}
    by_sequence: dict[str, list[EmailRow]] = defaultdict(list)
    for row in emails:
        by_sequence[row.sequence].append(row)
    for sequence, rows in by_sequence.items():
        result[sequence] = None
        best = 0.0
        for previous, row in itertools.pairwise(rows):
            best = max(best, previous.rate(previous.clicked) or 0.0)
            rate = row.rate(row.clicked)
            if best and rate is not None and rate < best / 2:
                result[sequence] = previous.content_id
                break
    return result


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def monthly_report(
    counters_by_month: Mapping[str, Counters],
    month: str,
    baseline: str | None = None,
    programme: Programme | None = None,
    aws_cost: float | None = None,
    content_cost: float | None = None,
) -> MonthlyReport:
    """The review of `month` from the counters of it and of earlier months (waiting leads are a running total)."""
    counters = counters_by_month.get(month, {})
    mql, sql = _int(counters, "mql|alerts"), _int(counters, "mql|accepted")
    rate = _ratio(sql, mql)
    base_rate = None
    if baseline is not None:
        base = counters_by_month.get(baseline, {})
        base_rate = _ratio(_int(base, "mql|accepted"), _int(base, "mql|alerts"))
    emails, sequences = email_rows(counters, programme)
    reengaged, suppressed = _int(counters, "reengagement|entered"), _int(counters, "reengagement|suppressed")
    suppression = _ratio(suppressed, reengaged)
    waiting: dict[str, float] = defaultdict(float)
    for key in sorted(m for m in counters_by_month if m <= month):
        for name, value in counters_by_month[key].items():
            if name.startswith("waiting|"):
                waiting[name.split(SEP)[1]] += value
    won_nurtured = counters.get(f"revenue|won|{NURTURED}", 0.0)
    spent = (aws_cost or 0.0) + (content_cost or 0.0)
    accepted = _int(counters, "accuracy|accepted")
    sequences_entered = ("awareness", "consideration", "decision", "re_engagement")
    scores = {
        name.split(SEP)[1]: round(value / counters[name.replace("|sum", "|count")], 1)
        for name, value in counters.items()
        if name.startswith("score|")
        and name.endswith("|sum")
        and name.split(SEP)[1] in sequences_entered
        and counters.get(name.replace("|sum", "|count"))
    }
    return MonthlyReport(
        month=month,
        baseline=baseline,
        empty=not any(counters.values()),
        mql=mql,
        sql=sql,
        mql_to_sql=rate,
        baseline_mql_to_sql=base_rate,
        mql_to_sql_change=round((rate - base_rate) * 100, 1) if rate is not None and base_rate is not None else None,
        stage_times=stage_times(counters),
        won_nurtured=won_nurtured,
        won_not_nurtured=counters.get(f"revenue|won|{NOT_NURTURED}", 0.0),
        deals_won_nurtured=_int(counters, f"deals|won|{NURTURED}"),
        deals_won_not_nurtured=_int(counters, f"deals|won|{NOT_NURTURED}"),
        pipeline_nurtured=counters.get(f"revenue|opportunity|{NURTURED}", 0.0),
        pipeline_not_nurtured=counters.get(f"revenue|opportunity|{NOT_NURTURED}", 0.0),
        reengaged=reengaged,
        suppressed=suppressed,
        suppression_rate=suppression,
        suppression_advice=(
            "More than 60% of re-engaged leads were suppressed: fix lead quality at acquisition, not the emails."
            if suppression is not None and suppression > SUPPRESSION_ADVICE_ABOVE
            else None
        ),
        funnel=[(label, _int(counters, name)) for label, name in FUNNEL],
        emails=emails,
        sequences=sequences,
        ab_tests=ab_tests(counters),
        drop_off=drop_off(emails),
        completed={
            name.split(SEP)[1]: int(value)
            for name, value in counters.items()
            if name.startswith("sequence|") and name.endswith("|completed")
        },
        waiting_on_content={stage: int(n) for stage, n in sorted(waiting.items()) if n > 0},
        score_at_entry=scores,
        accuracy_mql_accepted=rate,
        accuracy_flagged_first=_ratio(_int(counters, "accuracy|accepted_flagged_first"), accepted),
        unsubscribed=_int(counters, "unsubscribed|total"),
        scanner_clicks=int(_sum_suffix(counters, "|clicked_automated")),
        scanner_opens=int(_sum_suffix(counters, "|opened_automated")),
        roi=(won_nurtured - spent) / spent if spent else None,
        aws_cost=aws_cost,
        content_cost=content_cost,
        trend=[_trend(key, counters_by_month[key]) for key in sorted(counters_by_month) if key <= month][-12:],
    )


def _sum_suffix(counters: Counters, suffix: str) -> float:
    return sum(v for k, v in counters.items() if k.endswith(suffix))


def _trend(month: str, counters: Counters) -> dict[str, float | str | None]:
    return {
        "month": month,
        "mql_to_sql": _ratio(_int(counters, "mql|accepted"), _int(counters, "mql|alerts")),
        "median_days_in_awareness": stage_times(counters)[0].median_days,
        "won_nurtured": counters.get(f"revenue|won|{NURTURED}", 0.0),
        "suppression_rate": _ratio(_int(counters, "reengagement|suppressed"), _int(counters, "reengagement|entered")),
    }
