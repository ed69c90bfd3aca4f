"""The use cases, one per Lambda, in the order data flows, and the ports they depend on.

1. ingest   (`ingest`): a request body becomes stored events, or a 4xx naming the field.
2. score    (`score`, `leads`): new events from the stream move their lead; effects go to an outbox.
3. dispatch (`dispatch`): the leads that are due, and only those, get a clock tick.
4. send     (`send`): one email per lead, sequence and step, at most once.

`ports` holds the small interfaces these depend on; `leads` the lead service they share; `content`
the cached programme and emails. No module here imports boto3: adapters do.
"""
