"""`nurture simulate`: synthetic buyers through the real engine and a classic drip, deterministic for a seed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nurture.domain.messages import segment_message
from nurture.tools.cli import main
from nurture.tools.simulate.behaviour import Messages, react
from nurture.tools.simulate.command import BANNER
from nurture.tools.simulate.population import Buyer, Population, draw_buyers, rng_for
from nurture.tools.simulate.run import START, Simulation, drip, simulate
from tests.support import starter

SMALL = ["--leads", "120", "--days", "90", "--workers", "1"]


def _simulate(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["simulate", *SMALL, *args]) == 0
    return capsys.readouterr().out


def _files(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in ("messages.jsonl", "outcomes.jsonl", "truth.json")}


def test_the_same_seed_gives_the_same_run_and_another_seed_another(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = _simulate(capsys, "--seed", "3", "--compare", "drip", "--export", str(tmp_path / "a"))
    again = _simulate(capsys, "--seed", "3", "--compare", "drip", "--export", str(tmp_path / "b"))
    other = _simulate(capsys, "--seed", "4", "--compare", "drip", "--export", str(tmp_path / "c"))
    assert first.replace("/a/", "/b/") == again
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a")["messages.jsonl"] != _files(tmp_path / "c")["messages.jsonl"]
    assert first.replace("/a/", "/c/") != other


def test_the_figures_do_not_depend_on_how_many_processes_run_them() -> None:
    one = simulate(starter(), Population(), 80, 60, seed=5, keep_messages=True, workers=1)
    two = simulate(starter(), Population(), 80, 60, seed=5, keep_messages=True, workers=2)
    assert one.counters == two.counters
    assert one.messages == two.messages
    assert one.behavioural.row(20) == two.behavioural.row(20)


def _expected_ready_share(population: Population) -> float:
    """P(ready) from the parameters: persona shares times the fit multipliers, by the chance of a good fit."""
    sizes, industries = population.company_sizes, population.industries
    good = (
        sum(w for s, w in sizes.items() if s >= population.good_fit_min_company_size)
        / sum(sizes.values())
        * sum(w for i, w in industries.items() if i in population.good_fit_industries)
        / sum(industries.values())
    )
    total = sum(p.weight for p in population.personas)
    return sum(
        p.weight
        / total
        * (
            good * min(1.0, p.ready_share * population.good_fit_ready_multiplier)
            + (1 - good) * min(1.0, p.ready_share * population.poor_fit_ready_multiplier)
        )
        for p in population.personas
    )


def test_the_share_of_buyers_ready_to_buy_matches_the_parameters() -> None:
    population = Population()
    buyers = draw_buyers(population, 2_000, START, 180, seed=11)
    share = sum(b.ready_at is not None for b in buyers) / len(buyers)
    # 2,000 buyers: one standard deviation is under 0.01, so 0.025 is about three.
    assert share == pytest.approx(_expected_ready_share(population), abs=0.025)
    evaluators = [b for b in buyers if b.persona == "evaluator" and b.ready_at is not None]
    assert all(10 <= (b.ready_at - b.signup_at).days <= 120 for b in evaluators if b.ready_at)


def test_bad_addresses_are_as_common_as_the_parameter_says() -> None:
    buyers = draw_buyers(Population(invalid_address_share=0.1), 2_000, START, 180, seed=11)
    assert sum(b.invalid_address for b in buyers) / len(buyers) == pytest.approx(0.1, abs=0.02)


def _buyer(ready: bool, invalid: bool = False) -> Buyer:
    return Buyer(
        index=0,
        user_id="sim-000000",
        persona="evaluator",
        signup_at=START,
        traits={"email": "a@b.example"},
        good_fit=True,
        invalid_address=invalid,
        ready_at=START - timedelta(days=1) if ready else None,
        ready_until=START + timedelta(days=30) if ready else None,
        sessions_per_week=0.5,
    )


def _reactions(population: Population, ready: bool, emails: int = 4_000) -> dict[str, int]:
    buyer = _buyer(ready)
    rng = rng_for(1, 0, "email")
    counts: dict[str, int] = {}
    for n in range(emails):
        email = {"content_id": "awareness-01", "sequence": "awareness", "variant": 0}
        reaction = react(buyer, population, Messages(buyer), rng, email, "/blog/", START + timedelta(minutes=n))
        for message in reaction.messages:
            name = message.get("event") or message["type"]
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_unsubscribes_and_bounces_happen_at_the_stated_rates() -> None:
    population = Population(unsubscribe_rate=0.05, soft_bounce_rate=0.1, complaint_rate=0)
    counts = _reactions(population, ready=False)
    delivered = 4_000 - counts["Email Bounced"]
    assert counts["Email Bounced"] / 4_000 == pytest.approx(0.1, abs=0.015)
    assert counts["Unsubscribed"] / delivered == pytest.approx(0.05, abs=0.012)


def test_an_invalid_address_bounces_permanently_and_stops_email() -> None:
    buyer = _buyer(ready=True, invalid=True)
    email = {"content_id": "awareness-01", "sequence": "awareness", "variant": 0}
    reaction = react(buyer, Population(), Messages(buyer), rng_for(1, 0, "email"), email, "/blog/", START)
    assert [m["properties"]["bounce_type"] for m in reaction.messages] == ["permanent"]
    assert reaction.stops


def test_a_ready_buyer_opens_and_clicks_more_and_a_click_visits_the_page_linked() -> None:
    population = Population(open_rate=0.2, open_rate_ready=0.5, soft_bounce_rate=0, unsubscribe_rate=0)
    idle, ready = _reactions(population, ready=False), _reactions(population, ready=True)
    assert idle["Email Opened"] / 4_000 == pytest.approx(0.2, abs=0.02)
    assert ready["Email Opened"] / 4_000 == pytest.approx(0.5, abs=0.025)
    assert ready["Email Link Clicked"] > 2 * idle["Email Link Clicked"]
    assert ready["page"] == ready["Email Link Clicked"]


def _opens(result: Simulation) -> float:
    return sum(v for counters in result.counters.values() for k, v in counters.items() if k.endswith("|opened"))


def test_the_engine_hears_how_buyers_answer_its_emails() -> None:
    silent = simulate(starter(), Population(open_rate=0, open_rate_ready=0), 100, 90, seed=2, workers=1)
    reading = simulate(starter(), Population(open_rate=0.5, open_rate_ready=0.9), 100, 90, seed=2, workers=1)
    assert silent.behavioural.emails_sent > 0
    assert _opens(silent) == 0
    assert _opens(reading) > 0.3 * reading.behavioural.emails_sent


def test_sales_accepts_only_ready_buyers_and_the_drip_hands_every_lead_over() -> None:
    result = simulate(starter(), Population(), 300, 180, seed=9, keep_messages=True, workers=1)
    classic = drip(result, seed=9)
    ready_at = {b.user_id: b for b in result.buyers}
    for run in (result.behavioural, classic):
        assert len(run.accepted_days) + run.rejected == run.handoffs
        assert run.handed_leads >= set(run.accepted_days)
        assert run.ready_in_run == sum(1 for b in result.buyers if b.ready_at and b.ready_at < result.end)
    # Sign-ups fill the first half of 180 days, so every lead reaches the drip's day 30 inside the run.
    assert len(classic.handed_leads) == 300
    assert classic.emails_sent <= 300 * 6
    assert len(result.behavioural.handed_leads) < 300
    accepted = [o for o in result.outcomes if o.status == "accepted"]
    assert len(accepted) == len(result.behavioural.accepted_days)
    assert all(ready_at[o.lead_id].ready(o.at) for o in accepted)
    assert all(not ready_at[o.lead_id].ready(o.at) for o in result.outcomes if o.status == "rejected")
    alerts = sum(c.get("mql|alerts", 0) for c in result.counters.values())
    assert result.behavioural.handoffs <= alerts


def test_the_output_says_it_is_a_simulation_and_compares_with_the_drip(capsys: pytest.CaptureFixture[str]) -> None:
    out = _simulate(capsys, "--compare", "drip")
    assert out.startswith(BANNER)
    assert "classic drip" in out
    assert "MQL-to-SQL" in out


def test_html_has_the_report_and_the_comparison(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = tmp_path / "sim.html"
    _simulate(capsys, "--compare", "drip", "--html", str(page))
    text = page.read_text()
    assert BANNER in text
    assert text.index('id="simulation"') < text.index("</body>")
    assert "classic drip" in text


def test_a_population_file_sets_the_parameters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "population.yaml"
    file.write_text("invalid_address_share: 1.0\n")
    export = tmp_path / "out"
    _simulate(capsys, "--population", str(file), "--export", str(export))
    truth = json.loads((export / "truth.json").read_text())
    assert truth["population"]["invalid_address_share"] == 1.0
    assert all(lead["invalid_address"] for lead in truth["leads"].values())
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_parameter: 1\n")
    assert main(["simulate", *SMALL, "--population", str(bad)]) == 1
    assert "no_such_parameter: Extra inputs are not permitted" in capsys.readouterr().err


def test_export_writes_the_documented_history(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _simulate(capsys, "--export", str(tmp_path))
    lines = (tmp_path / "messages.jsonl").read_text().splitlines()
    assert all(segment_message.validate_json(line) for line in lines)  # what the API accepts and stores
    messages = [json.loads(line) for line in lines]
    outcomes = [json.loads(line) for line in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert {m["type"] for m in messages} == {"identify", "page", "track"}
    assert all({"messageId", "timestamp"} <= m.keys() and ("userId" in m or "anonymousId" in m) for m in messages)
    assert all(m["timestamp"].endswith("Z") for m in messages)
    assert [m["timestamp"] for m in messages] == sorted(m["timestamp"] for m in messages)
    assert len({m["messageId"] for m in messages}) == len(messages)
    assert outcomes
    assert all(set(o) == {"lead_id", "status", "at", "amount"} for o in outcomes)
    assert {o["lead_id"] for o in outcomes} <= set(truth["leads"])
    assert len(truth["leads"]) == 120
    first: dict[str, Any] = next(iter(truth["leads"].values()))
    assert {"ready_at", "ready_until", "persona", "good_fit"} <= first.keys()
    assert datetime.fromisoformat(truth["start"].replace("Z", "+00:00")) == datetime(2026, 1, 5, tzinfo=UTC)
