"""The lead service must decide what the in-memory engine decides, for any stream of messages.

The engine (`nurture replay`) is the reference; the service is what runs in AWS, here over the in-memory
fakes. Random streams of anonymous visits, identifies, a person on two devices, late and duplicate
messages go through both. Fair because both get the same inputs in the same order at the same `now`
(see `tests.differential.play`): each message at its timestamp, and every dispatcher tick the engine
runs on its five-minute grid, which the service's due index must also offer. Per person (the profiles
their lead holds) both must then agree on the stage, intent (rounded), fit, the next time the dispatcher
looks, and every email, transition and sales alert decided. Only lead ids may differ (uuid vs userId).
"""

from __future__ import annotations

from hypothesis import given, settings

from nurture.domain.messages import Message
from nurture.domain.programme import Stage
from nurture.pipeline.leads import LeadService
from tests.differential import play, streams, two_devices
from tests.fakes import fake_ports
from tests.support import T0, starter


@settings(max_examples=300, deadline=None)
@given(streams())
def test_the_lead_service_decides_what_the_engine_decides(stream: list[Message]) -> None:
    engine_people, service_people = play(stream, LeadService(fake_ports(), starter()), starter())
    assert service_people == engine_people


def test_a_person_on_two_devices_becomes_one_lead_and_keeps_the_journey_of_their_userid() -> None:
    # Given Ada on her laptop (by userId) and on her phone (a form fill made a second lead), when she logs in on it
    engine_people, service_people = play(two_devices(), LeadService(fake_ports(), starter()), starter())
    # Then both runtimes see one person: the laptop's lead (her userId's) with the phone's signals folded in
    assert service_people == engine_people
    [(profiles, ada)] = engine_people.items()
    assert profiles == {"u#u-ada", "a#a-laptop", "a#a-phone"}
    assert ada.transitions[0] == (None, Stage.AWARENESS, "new lead, intent 0", T0)
    assert ada.intent > 0
