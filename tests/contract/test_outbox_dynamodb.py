"""Issue 7 on the real DynamoDB adapter (in-process moto, as in the store contract): concurrent writers on one
lead publish each effect once, and an effect whose writer died is published by the dispatcher after its lease.
Smaller than the unit test over fakes (tests/unit/test_outbox.py). Not in tests/integration: `mock_aws` resets
the moto backends that the session's local stack shares."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from nurture import constants as c
from nurture.adapters.content import FolderContent
from nurture.adapters.dynamodb import LeadTable
from nurture.domain.journey import SalesAlert, Transition
from nurture.domain.messages import Message
from nurture.domain.programme import Stage
from nurture.pipeline.dispatch import dispatch
from nurture.pipeline.leads import LeadService
from nurture.pipeline.ports import Conflict, Ports, effect_id
from tests.contract.conftest import moto_dynamodb
from tests.fakes import FakeBus, FakeEvents, FakeMailer, FakeQueue
from tests.support import ROOT, T0, identify, page, starter, track

LEASE = timedelta(seconds=c.OUTBOX_LEASE_SECONDS)


class _OneRequestAtATime:
    """moto checks a write's condition and applies it in separate steps, so two threads can interleave inside one
    request; DynamoDB applies each request to an item atomically. Serialise the requests, as DynamoDB would."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


@pytest.fixture
def ports(dummy_aws: None) -> Iterator[Ports]:
    with moto_dynamodb((c.LEADS_TABLE,)) as client:
        yield Ports(
            events=FakeEvents(),
            leads=LeadTable(_OneRequestAtATime(client), c.LEADS_TABLE),
            bus=FakeBus(),
            queue=FakeQueue(),
            mailer=FakeMailer(),
            content=FolderContent(ROOT / "content"),
        )


def _bus(ports: Ports) -> FakeBus:
    assert isinstance(ports.bus, FakeBus)
    return ports.bus


def test_concurrent_writers_on_dynamodb_publish_each_stage_change_and_alert_once(ports: Ports) -> None:
    service = LeadService(ports, starter(), new_id=lambda: "lead-1")
    service.receive([identify(T0)], T0)

    def messages(writer: int) -> list[Message]:
        at = [T0 + timedelta(seconds=writer * 10 + n + 1) for n in range(6)]
        batch: list[Message] = [
            page(p, t) for p, t in zip(["/pricing", "/blog/a", "/pricing/team"] * 2, at, strict=True)
        ]
        if writer == 1:
            batch[3] = track("Demo Requested", at[3])
        return batch

    def write(writer: int) -> None:
        for message in messages(writer):
            for _ in range(20):
                try:
                    service.receive([message], message.timestamp)
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = ports.leads.get("lead-1")
    assert stored is not None
    assert stored.outbox == ()
    published = Counter(effect_id(e) for e in _bus(ports).published)
    assert {k: n for k, n in published.items() if n > 1} == {}
    transitions = [e for e in _bus(ports).published if isinstance(e, Transition)]
    assert len(transitions) == len(stored.lead.history)
    assert len([e for e in _bus(ports).published if isinstance(e, SalesAlert)]) >= 1  # the demo request's, once


class Died(BaseException):
    pass


def test_an_effect_whose_writer_died_is_published_by_the_dispatcher_after_its_lease(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = LeadService(ports, starter(), new_id=lambda: "lead-1")
    service.receive([identify(T0)], T0)
    dispatch(service, T0)
    opt_out = track("Unsubscribed", T0 + timedelta(hours=1))

    def died(effects: object) -> None:
        raise Died

    monkeypatch.setattr(service, "publish", died)
    with pytest.raises(Died):
        service.receive([opt_out], opt_out.timestamp)
    monkeypatch.undo()
    before = len(_bus(ports).published)
    dispatch(service, opt_out.timestamp + LEASE - timedelta(seconds=1))
    assert len(_bus(ports).published) == before
    dispatch(service, opt_out.timestamp + LEASE)
    dispatch(service, opt_out.timestamp + timedelta(days=30))
    new = _bus(ports).published[before:]
    assert [(e.kind, getattr(e, "to_stage", None)) for e in new] == [("transition", Stage.OPTED_OUT)]
    stored = ports.leads.get("lead-1")
    assert stored is not None
    assert (stored.outbox, stored.due_at) == ((), None)
