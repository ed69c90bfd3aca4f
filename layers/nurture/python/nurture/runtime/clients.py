"""AWS clients, built lazily and once per process, so importing a module never touches the network.

boto3 reads AWS_ENDPOINT_URL itself, which is how the local stack points every client at moto.

boto3 itself is imported by the first `client()` call, not by importing this module: a handler's cold
start imports only what it runs before its first AWS call (docs/benchmarks.md, "Cold import time").
"""

from __future__ import annotations

from functools import cache
from typing import Any

# A pool large enough for the ingest API's concurrent writes of a batch (nurture.api.STORE_CONCURRENCY).
CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 5},
    "connect_timeout": 3,
    "read_timeout": 10,
    "max_pool_connections": 32,
}


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(service, config=Config(**CONFIG))


def reset() -> None:
    """Forget cached clients (tests and the local stack change the endpoint between runs)."""
    client.cache_clear()
