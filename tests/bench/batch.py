"""Storing the largest batch the API accepts: one conditional put at a time versus `store_all`.

moto's server shares this process (and its GIL), so it cannot show what concurrency buys against
DynamoDB, where a write is a network round trip. This bench uses a store whose every put waits a
fixed latency, the way a round trip does. Run: python -m tests.bench.batch
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from nurture.api.resolver import STORE_CONCURRENCY, store_all
from nurture.pipeline.ingest import MAX_BATCH_MESSAGES
from nurture.pipeline.ports import StoredEvent
from tests.bench.record import record
from tests.fakes import FakeEvents
from tests.support import page

LATENCIES_MS = (2, 5, 10)  # assumed round trips of an in-region conditional PutItem, not measured here


class SlowEvents(FakeEvents):
    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s

    def put(self, event: StoredEvent) -> bool:
        time.sleep(self.latency_s)
        return super().put(event)


def main() -> None:
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    batch = [
        StoredEvent(profile_id=f"u#u-{n % 50}", message=page("/blog/a", now, user=f"u-{n % 50}"), received_at=now)
        for n in range(MAX_BATCH_MESSAGES)
    ]
    rows = []
    for latency_ms in LATENCIES_MS:
        sequential = SlowEvents(latency_ms / 1000)
        started = time.perf_counter()
        for event in batch:
            sequential.put(event)
        one_by_one = time.perf_counter() - started
        concurrent = SlowEvents(latency_ms / 1000)
        started = time.perf_counter()
        stored = store_all(concurrent, batch)
        together = time.perf_counter() - started
        assert all(stored)
        assert len(concurrent.items) == len(batch)
        rows.append(f"| {latency_ms} ms | {one_by_one:.2f} s | {together:.2f} s | {one_by_one / together:.1f}x |")
    body = f"""
A batch of {MAX_BATCH_MESSAGES:,} messages (the API's limit), stored with a per-put latency standing in
for DynamoDB's round trip (assumed values; the ingest Lambda's timeout is 10 s):

| latency per conditional put | one at a time | `store_all` ({STORE_CONCURRENCY} concurrent) | speed-up |
| --- | ---: | ---: | ---: |
{chr(10).join(rows)}
"""
    print(body)
    record("batch", "Storing a full batch: sequential versus concurrent writes", body)


if __name__ == "__main__":
    main()
