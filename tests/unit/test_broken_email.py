"""A broken email for a lead is not recorded as sent, and the next email of the sequence is tried."""

from __future__ import annotations

import shutil
from pathlib import Path

from nurture.adapters.content import FolderContent
from nurture.api.views import lead_view
from nurture.domain.journey import EmailSkipped, Tick
from nurture.domain.programme import Stage
from nurture.pipeline.content import CachedContent
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.send import Sender
from tests.fakes import FakeIdempotency, FakeMailer, FakeNotifier, FakeQueue, fake_ports
from tests.support import ROOT, T0, days, identify, known_lead

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


# --- through the sender: what the lead gets next, and what marketers hear -----------------------------------------
def _content_with_a_broken_first_email(root: Path, version: str) -> CachedContent:
    shutil.copytree(ROOT / "content", root, dirs_exist_ok=True)
    front_matter = f"---\nid: {FIRST}\nsequence: awareness\nsubject: Hi ({version})\n---\n"
    (root / "emails" / f"{FIRST}.md").write_text(front_matter + "{{ lead.first_name | nosuchfilter }}\n")
    return CachedContent(FolderContent(root), recheck_seconds=0)


def test_a_broken_email_is_skipped_the_next_one_goes_out_and_marketers_hear_once_per_version(tmp_path) -> None:
    # Given two new leads whose first awareness email is broken, and the operations topic
    ports = fake_ports()
    operations = FakeNotifier()
    ports.operations = operations
    content = _content_with_a_broken_first_email(tmp_path / "content", "v1")
    service = LeadService(ports, content.programme())
    for person in ("ada", "bob"):
        service.receive([identify(T0, user=person)], T0)
    dispatch(service, T0)
    sender = Sender(FakeIdempotency())
    # When the sender tries to send them
    queue, mailer = ports.queue, ports.mailer
    assert isinstance(queue, FakeQueue)
    assert isinstance(mailer, FakeMailer)
    deliveries = [sender.send(request, ports, content, T0) for request in queue.queued]
    # Then neither went out, marketers were told once, naming the email (and no lead)
    assert [d.reason for d in deliveries] == ["broken content", "broken content"]
    assert mailer.sent == []
    [(subject, message)] = operations.published
    assert FIRST in subject
    assert "nosuchfilter" in message
    assert "ada" not in message
    assert "bob" not in message
    # And each lead gets the sequence's next email at the next tick, not a cadence later
    dispatch(service, T0 + days(1))
    for request in queue.queued[2:]:
        sender.send(request, ports, content, T0 + days(1))
    assert sorted(str(m["to"]) for m in mailer.sent) == ["ada@northwind.example", "bob@northwind.example"]
    assert {str(m["tags"]["content_id"]) for m in mailer.sent} == {SECOND}  # type: ignore[index]
    # The admin sees why the first one never came
    stored = ports.leads.find_by_email("ada@northwind.example")
    assert stored is not None
    view = lead_view(stored, content.programme(), T0 + days(1), ports.leads.send_records(stored.lead.lead_id))
    assert view.skipped == [FIRST]
    assert FIRST not in [s.content_id for s in view.sends]
    # A new version that is broken too is told again
    content = _content_with_a_broken_first_email(tmp_path / "content", "v2")
    service.receive([identify(T0 + days(1), user="cat")], T0 + days(1))
    dispatch(service, T0 + days(1))
    sender.send(queue.queued[-1], ports, content, T0 + days(1))
    assert len(operations.published) == 2
