"""A broken email for a lead is not recorded as sent, and the next email of the sequence is tried."""

from __future__ import annotations

from nurture.domain.journey import EmailSkipped, Tick
from nurture.domain.programme import Stage
from tests.support import T0, days, known_lead

FIRST, SECOND = "awareness-01-why-drips-stall", "awareness-02-three-buyer-signals"


def test_an_email_that_could_not_be_rendered_is_taken_back_and_the_next_one_is_tried() -> None:
    # Given a new lead whose first awareness email was decided
    journey = known_lead()
    journey.run_until(T0)
    assert [s.content_id for s in journey.sends] == [FIRST]
    # When the sender reports it could not render it
    broken = EmailSkipped(sequence=Stage.AWARENESS, content_id=FIRST, reason="broken content")
    journey.apply(broken, now=T0 + days(0.01))
    # Then it no longer counts as sent, and the next email goes out at the next tick, not a cadence later
    assert FIRST not in {e.content_id for e in journey.lead.sent}
    assert journey.lead.next_send_at is not None
    assert journey.lead.next_send_at < T0 + days(2)
    journey.run_until(T0 + days(2))
    assert [s.content_id for s in journey.sends] == [FIRST, SECOND]
    # And the broken one is never tried again, and reporting it twice changes nothing
    lead = journey.lead
    journey.apply(broken, now=T0 + days(2))
    assert journey.lead == lead
    journey.run_until(T0 + days(60))
    assert [s.content_id for s in journey.sends].count(FIRST) == 1


def test_a_skipped_email_does_not_count_towards_the_frequency_cap() -> None:
    journey = known_lead()
    journey.run_until(T0)
    journey.apply(EmailSkipped(sequence=Stage.AWARENESS, content_id=FIRST, reason="broken"), now=T0 + days(0.01))
    journey.apply(Tick(), now=T0 + days(0.02))
    # no email went out, so nothing holds the next one back for 20 hours
    assert [s.content_id for s in journey.sends] == [FIRST, SECOND]
