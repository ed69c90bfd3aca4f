"""`nurture calibrate`: fit the intent rules' points and the thresholds to what sales decided, and write the
suggested programme for a marketer to review (and try with `nurture rebuild --programme FILE --all --dry-run`).

Per labelled lead, each rule's feature is how many of its messages before its first sales status match the rule
(`matching_rules`, as the scorer matches; a rule with `nth` counts 1 once the nth match happened); the label is its
first decisive status (accepted or won: 1; rejected or lost: 0). An L1-regularised logistic regression (statsmodels)
gives each rule a log-odds weight with a standard error. Weights become points on a scale chosen so the current
decision threshold keeps its meaning (a lead at 80 points has the chance of acceptance a lead at 80 has today), or
so one anchor rule keeps its points (`--anchor`). docs/analytics.md.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from nurture.domain.messages import IdentifyMessage
from nurture.domain.programme import Programme, load_programme
from nurture.domain.scoring import matching_rules
from nurture.tools.analytics.history import labels, lead_of, profile_links, read_messages, read_outcomes

Z95 = 1.959964
# The L1 penalty per rule, in log-likelihood units: enough to keep a rule no lead ever shows (or one that separates
# the labels perfectly) finite, small beside the thousands of leads a calibration needs.
PENALTY = 1.0
MIN_LABELLED = 50
# Below this many labelled leads the output says the suggestion is a direction, not values to apply.
ENOUGH_LABELLED = 500


@dataclass(frozen=True)
class Dataset:
    rules: tuple[str, ...]
    features: list[list[float]]  # one row per labelled lead, one column per rule
    labels: list[int]
    unlabelled: int  # leads with outcomes but no decisive status
    unmatched_messages: int  # messages of leads sales gave no status (or of profiles of no lead)


@dataclass(frozen=True)
class Weight:
    rule: str
    label: str
    current: int
    suggested: int
    low: float  # 95% interval of the suggested points
    high: float
    coefficient: float  # log-odds per occurrence
    leads_with_signal: int


@dataclass(frozen=True)
class Accuracy:
    threshold: float
    precision: float
    recall: float
    flagged: int


@dataclass(frozen=True)
class Band:
    name: str
    leads: int
    observed: float
    predicted: float


@dataclass(frozen=True)
class Calibration:
    scale: str  # how the points scale was chosen, in words
    weights: tuple[Weight, ...]
    intercept: float
    current_thresholds: tuple[int, int]  # consideration, decision
    suggested_thresholds: tuple[int, int]
    current_accuracy: Accuracy  # current points, current decision threshold
    suggested_accuracy: Accuracy  # suggested points, suggested decision threshold
    bands: tuple[Band, ...]
    labelled: int
    positives: int
    unlabelled: int

    def points(self) -> dict[str, int]:
        return {w.rule: w.suggested for w in self.weights}


def features(history: Path, programme: Programme, outcomes_file: Path | None = None) -> Dataset:
    outcomes = read_outcomes(outcomes_file or history)
    label, first = labels(outcomes)
    links = profile_links(history)
    rules = tuple(rule.id for rule in programme.intent.rules)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(rules, 0))
    unmatched = 0
    outcome_leads = set(first)
    for message in read_messages(history):
        if isinstance(message, IdentifyMessage):
            continue
        lead = lead_of(message, links, outcome_leads)
        if lead is None or lead not in outcome_leads:
            unmatched += 1  # a lead sales never gave a status, or a profile of no lead
            continue
        if lead not in label or message.timestamp >= first[lead]:
            continue
        for rule in matching_rules(message, programme):
            counts[lead][rule] += 1
    nth = {rule.id: rule.nth for rule in programme.intent.rules}
    leads = sorted(label)
    rows = []
    for lead in leads:
        found = counts.get(lead) or dict.fromkeys(rules, 0)
        rows.append([float(found[r] >= n) if (n := nth[r]) else float(found[r]) for r in rules])
    return Dataset(rules, rows, [label[lead] for lead in leads], len(set(first) - set(label)), unmatched)


def calibrate(data: Dataset, programme: Programme, anchor: str | None = None) -> Calibration:
    import numpy as np
    import statsmodels.api as sm

    if len(data.labels) < MIN_LABELLED or len(set(data.labels)) < 2:
        raise ValueError(
            f"{len(data.labels)} labelled leads ({sum(data.labels)} accepted or won): calibration needs at least "
            f"{MIN_LABELLED}, with both outcomes"
        )
    x = np.asarray(data.features, dtype=float)
    y = np.asarray(data.labels, dtype=float)
    present = x.sum(axis=0) > 0  # a rule no labelled lead shows cannot be fitted: it keeps its points
    design = sm.add_constant(x[:, present], has_constant="add")
    alpha = np.full(design.shape[1], PENALTY)
    alpha[0] = 0.0  # the intercept is not penalised
    fit = sm.Logit(y, design).fit_regularized(method="l1", alpha=alpha, disp=0, trim_mode="size")
    params = np.asarray(fit.params)
    errors = np.asarray(fit.bse)
    by_rule = {r.id: r for r in programme.intent.rules}
    coefficient: dict[str, float] = {}
    error: dict[str, float] = {}
    for column, fitted in enumerate(r for r, kept in zip(data.rules, present, strict=True) if kept):
        coefficient[fitted] = float(params[column + 1])
        error[fitted] = float(errors[column + 1]) if math.isfinite(errors[column + 1]) else math.inf
    current_scores = x @ np.asarray([by_rule[r].points for r in data.rules], dtype=float)
    consideration, decision = programme.thresholds.consideration, programme.thresholds.decision
    intercept = float(params[0])
    # What a current score means today: the fitted log-odds of acceptance, as a straight line in the current score.
    fitted = intercept + x[:, present] @ params[1:]
    slope, offset = np.polyfit(current_scores, fitted, 1) if np.ptp(current_scores) > 0 else (0.0, intercept)
    meaning = float(offset + slope * decision)  # the log-odds a lead at the decision threshold has today
    if anchor is None and meaning > intercept + 1e-6:
        scale = decision / (meaning - intercept)  # points per unit of log-odds: `decision` points mean `meaning`
        described = f"{decision} points keep today's meaning: {_pct(_probability(meaning))} chance of acceptance"
    else:
        anchor = anchor or _best_measured(coefficient, error, by_rule)
        if anchor not in coefficient or coefficient[anchor] <= 0 or by_rule[anchor].points <= 0:
            raise ValueError(f"anchor rule {anchor!r}: needs positive points and a positive fitted weight")
        scale = by_rule[anchor].points / coefficient[anchor]
        described = f"{by_rule[anchor].label} keeps its {by_rule[anchor].points} points"
    weights = []
    for column, rule_id in enumerate(data.rules):
        rule = by_rule[rule_id]
        shown = int((x[:, column] > 0).sum())
        if rule_id not in coefficient:
            weights.append(Weight(rule_id, rule.label, rule.points, rule.points, math.nan, math.nan, math.nan, 0))
            continue
        points = coefficient[rule_id] * scale
        spread = Z95 * error[rule_id] * scale
        weights.append(
            Weight(
                rule_id,
                rule.label,
                rule.points,
                _clamp(round(points)),
                points - spread,
                points + spread,
                coefficient[rule_id],
                shown,
            )
        )
    suggested_scores = x @ np.asarray([w.suggested for w in weights], dtype=float)
    best = _best_threshold(suggested_scores, y)
    suggested_decision = round(best)
    suggested_consideration = max(1, round(consideration * suggested_decision / decision))
    predicted = 1.0 / (1.0 + np.exp(-(intercept + suggested_scores / scale)))
    return Calibration(
        scale=described,
        weights=tuple(weights),
        intercept=intercept,
        current_thresholds=(consideration, decision),
        suggested_thresholds=(suggested_consideration, suggested_decision),
        current_accuracy=_accuracy(current_scores, y, decision),
        suggested_accuracy=_accuracy(suggested_scores, y, suggested_decision),
        bands=_bands(suggested_scores, y, predicted, (suggested_consideration, suggested_decision)),
        labelled=len(y),
        positives=int(y.sum()),
        unlabelled=data.unlabelled,
    )


def _best_measured(coefficient: dict[str, float], error: dict[str, float], by_rule: dict[str, Any]) -> str:
    """The rule whose weight the data pins down best (smallest relative error) among positive ones."""
    candidates = [r for r, b in coefficient.items() if b > 0 and by_rule[r].points > 0 and math.isfinite(error[r])]
    if not candidates:
        raise ValueError("no intent rule has a positive fitted weight: nothing to anchor the points scale on")
    return min(candidates, key=lambda r: (error[r] / coefficient[r], r))


def _probability(log_odds: float) -> float:
    return 1.0 / (1.0 + math.exp(-log_odds))


def _clamp(points: int) -> int:
    return max(-1000, min(1000, points))  # the programme's bounds on a rule's points


def _accuracy(scores: Any, y: Any, threshold: float) -> Accuracy:
    flagged = scores >= threshold
    hits = float((flagged & (y == 1)).sum())
    return Accuracy(
        threshold=threshold,
        precision=hits / flagged.sum() if flagged.sum() else math.nan,
        recall=hits / (y == 1).sum(),
        flagged=int(flagged.sum()),
    )


def _best_threshold(scores: Any, y: Any) -> float:
    """The decision threshold with the best F1 (precision and recall weighed equally) over the labelled leads."""
    best, best_f1 = float(scores.max()), -1.0
    for threshold in sorted({float(s) for s in scores if s > 0}):
        accuracy = _accuracy(scores, y, threshold)
        if accuracy.flagged == 0 or accuracy.precision + accuracy.recall == 0:
            continue
        f1 = 2 * accuracy.precision * accuracy.recall / (accuracy.precision + accuracy.recall)
        if f1 > best_f1:
            best, best_f1 = threshold, f1
    return best


def _bands(scores: Any, y: Any, predicted: Any, thresholds: tuple[int, int]) -> tuple[Band, ...]:
    consideration, decision = thresholds
    edges = [
        (f"below {consideration}", -math.inf, consideration),
        (f"{consideration}-{decision - 1}", consideration, decision),
        (f"{decision}-{2 * decision - 1}", decision, 2 * decision),
        (f"{2 * decision} and over", 2 * decision, math.inf),
    ]
    bands = []
    for name, low, high in edges:
        inside = (scores >= low) & (scores < high)
        n = int(inside.sum())
        bands.append(
            Band(
                name, n, float(y[inside].mean()) if n else math.nan, float(predicted[inside].mean()) if n else math.nan
            )
        )
    return tuple(bands)


def suggested_programme(text: str, calibration: Calibration) -> str:
    """The programme file with the suggested points and thresholds: only those numbers change, comments stay."""
    points = calibration.points()
    lines = text.splitlines(keepends=True)
    rule: str | None = None
    section = None
    consideration, decision = calibration.suggested_thresholds
    for n, line in enumerate(lines):
        if re.match(r"^\S", line):
            section = line.split(":", 1)[0]
            rule = None
        if found := re.match(r"^\s*-\s+id:\s*(\S+)", line):
            rule = found.group(1)
        elif section == "intent" and rule in points and (m := re.match(r"^(\s+points:\s*)(-?\d+)(.*)$", line, re.S)):
            lines[n] = f"{m.group(1)}{points[rule]}{m.group(3)}"
            rule = None
        elif section == "thresholds" and (m := re.match(r"^(\s+(consideration|decision):\s*)(\d+)(.*)$", line, re.S)):
            value = consideration if m.group(2) == "consideration" else decision
            lines[n] = f"{m.group(1)}{value}{m.group(4)}"
    return "".join(lines)


def programme_diff(before: str, after: str, source: str, target: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), source, target))


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--history", type=Path, required=True, help="a history directory (`nurture export`)")
    command.add_argument("--outcomes", type=Path, default=None, help="sales outcomes (default: the history's)")
    command.add_argument("--programme", type=Path, default=None, help="default: content/programme.yaml")
    command.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the suggested programme (default: programme.suggested.yaml in --history)",
    )
    command.add_argument(
        "--anchor", metavar="RULE", default=None, help="keep this rule's points (default: keep the threshold's meaning)"
    )


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from nurture.tools.cli import STARTER_PROGRAMME

    source = args.programme or STARTER_PROGRAMME
    text = source.read_text(encoding="utf-8")
    programme = load_programme(text, source=str(source))
    try:
        data = features(args.history, programme, args.outcomes)
        calibration = calibrate(data, programme, args.anchor)
    except ValueError as error:
        print(f"nurture calibrate: {error}", file=sys.stderr)
        return 1
    target = args.out or args.history / "programme.suggested.yaml"
    suggested = suggested_programme(text, calibration)
    load_programme(suggested, source=str(target))  # never hand a marketer a file the engine would refuse
    target.write_text(suggested, encoding="utf-8")
    print_report(calibration, data, out)
    diff = programme_diff(text, suggested, str(source), str(target))
    out.write(diff or "(the suggested programme is the same as the current one)\n")
    out.write(
        f"\nWrote {target}. These are suggestions from {calibration.labelled} leads' outcomes, not a decision: review"
        f" them with sales, then see what they would do to today's leads, changing nothing:\n"
        f"  nurture rebuild --programme {target} --all --dry-run\n"
    )
    return 0


def print_report(calibration: Calibration, data: Dataset, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=120)
    console.print(
        f"Calibrated on {calibration.labelled} labelled leads ({calibration.positives} accepted or won); "
        f"{calibration.unlabelled} leads with only non-decisive statuses left out; "
        f"{data.unmatched_messages} messages from leads with no outcome not used."
    )
    table = Table(title=f"Intent points, current and suggested ({calibration.scale})")
    for column in ("rule", "current", "suggested", "95% interval", "log-odds", "leads with it"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for w in calibration.weights:
        interval = (
            "no data" if math.isnan(w.low) else f"{round(w.low)} to {round(w.high)}" if math.isfinite(w.low) else "-"
        )
        table.add_row(
            w.label,
            str(w.current),
            str(w.suggested),
            interval,
            "-" if math.isnan(w.coefficient) else f"{w.coefficient:+.3f}",
            str(w.leads_with_signal),
        )
    console.print(table)
    current, suggested = calibration.current_accuracy, calibration.suggested_accuracy
    console.print(
        f"Decision threshold: current {calibration.current_thresholds[1]} with current points: precision "
        f"{_pct(current.precision)}, recall {_pct(current.recall)} ({current.flagged} leads at or over it)\n"
        f"Suggested {calibration.suggested_thresholds[1]} with suggested points: precision "
        f"{_pct(suggested.precision)}, recall {_pct(suggested.recall)} ({suggested.flagged} leads); "
        f"consideration {calibration.current_thresholds[0]} -> {calibration.suggested_thresholds[0]}"
    )
    bands = Table(title="Calibration by suggested score band: accepted or won, observed and as the model predicts")
    for column in ("score band", "leads", "observed", "predicted"):
        bands.add_column(column, justify="right")
    for band in calibration.bands:
        bands.add_row(band.name, str(band.leads), _pct(band.observed), _pct(band.predicted))
    console.print(bands)
    if calibration.labelled < ENOUGH_LABELLED:
        console.print(
            f"Caution: only {calibration.labelled} labelled leads for {len(calibration.weights)} rules: the intervals "
            f"are wide. Read the suggestion as a direction, and wait for about {ENOUGH_LABELLED} sales answers "
            "before applying its points."
        )
    if current.flagged > 0.8 * calibration.labelled:
        console.print(
            f"Caution: {current.flagged} of the {calibration.labelled} labelled leads are already at or over the "
            f"decision threshold: sales saw few leads below it, so the data says little about them and the suggested "
            "thresholds lean on few leads."
        )


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.0f}%"
