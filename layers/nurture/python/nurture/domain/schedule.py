"""When an email may go out: the send window in the lead's time zone and the global frequency cap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from nurture.domain.programme import WEEKDAYS, FrequencyCap, Schedule, SendWindow


def next_window_opening(at: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """The first moment at or after `at` that falls inside the send window, in UTC."""
    local = at.astimezone(tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day, window.start, tzinfo=tz)
        end = datetime.combine(day, window.end, tzinfo=tz)
        if offset == 0 and local >= end:
            continue
        return max(start, local).astimezone(UTC)
    raise ValueError("the send window has no open day")  # unreachable: the programme requires one


def earliest_under_cap(at: datetime, sent: Sequence[datetime], cap: FrequencyCap) -> datetime:
    """The first moment at or after `at` when one more email keeps the lead within the frequency cap."""
    span = timedelta(days=cap.per_days)
    recent = sorted(t for t in sent if t > at - span)
    earliest = at
    if recent:
        earliest = max(earliest, recent[-1] + timedelta(hours=cap.min_hours_apart))
    if len(recent) >= cap.max_emails:
        # The oldest sends must age out of the window until one slot is free.
        earliest = max(earliest, recent[len(recent) - cap.max_emails] + span)
    return earliest


def next_send_time(at: datetime, sent: Sequence[datetime], schedule: Schedule, tz: ZoneInfo) -> datetime:
    """The first moment at or after `at` inside the send window and under the frequency cap."""
    candidate = at
    for _ in range(16):
        opened = next_window_opening(
            earliest_under_cap(candidate, sent, schedule.frequency_cap), schedule.send_window, tz
        )
        if opened == candidate:
            return opened
        candidate = opened
    return candidate
