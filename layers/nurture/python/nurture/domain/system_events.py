"""Track events only the engine itself records: what SES reports about an email, and unsubscribing.

They change what a lead may be sent (a bounce or a complaint suppresses it, an unsubscribe opts it
out), so a website must not be able to send them: the public ingest API refuses them. SES feedback
and the signed unsubscribe link produce them; `nurture replay` and the tests feed them directly,
as the message model itself accepts them.
"""

from __future__ import annotations

from nurture.domain.journey import BOUNCED, COMPLAINED, UNSUBSCRIBED

DELIVERED = "Email Delivered"
OPENED = "Email Opened"
CLICKED = "Email Link Clicked"
SYSTEM_EVENTS = (DELIVERED, OPENED, CLICKED, BOUNCED, COMPLAINED, UNSUBSCRIBED)
_FOLDED = frozenset(event.casefold() for event in SYSTEM_EVENTS)


def is_system_event(event: str) -> bool:
    """Whether `event` is (or is a spelling of, whatever its case or surrounding spaces) a system event."""
    return event.strip().casefold() in _FOLDED
