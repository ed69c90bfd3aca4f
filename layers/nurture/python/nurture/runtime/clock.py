"""Where `now` comes from outside the pure core: the system clock in AWS, a manual one in `nurture local`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; thread-safe, because the local stack serves HTTP on threads."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = max(self._now, at)

    def advance(self, by: timedelta) -> datetime:
        with self._lock:
            self._now += by
            return self._now


_current: Clock = SystemClock()


def now() -> datetime:
    return _current.now()


def use(clock: Clock) -> None:
    """Make `clock` the source of `now` for the handlers in this process (the local stack does this)."""
    global _current
    _current = clock
