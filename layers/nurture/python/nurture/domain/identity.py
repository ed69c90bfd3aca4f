"""Who a message is from: the one rule that joins a message's profiles (userId, anonymousId) to a lead.

The lead service (on DynamoDB) and the in-memory engine (`nurture replay`) both ask it, so they agree
on which lead survives when an identify reveals that an anonymous visitor is a known person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

USER_PROFILE = "u#"


@dataclass(frozen=True)
class Resolution:
    """What to do with a message's profiles: the lead it joins, the lead folded into it, the links to write."""

    lead_id: str
    is_new: bool
    absorbed: str | None
    link: frozenset[str]  # profiles the message names that are not linked to `lead_id` yet


def resolve(profiles: Iterable[str], links: Mapping[str, str], new_id: Callable[[], str]) -> Resolution:
    """The lead a message with these profiles belongs to, given the known links profile -> lead id.

    The lead the userId belongs to wins: it is the person sales may already know, with their stage and
    the emails already sent. An anonymous visitor's lead is folded into it (history, signals, traits).
    With no userId lead, the anonymous visitor's lead carries on and learns the userId; with no lead
    at all, a new one is made with `new_id` (the engine makes readable ids, the pipeline uuids).
    A message names at most one userId and one anonymousId, so at most two leads meet; were two leads
    ever equally placed, the smaller lead id wins, so every runtime picks the same one.

    Every profile of the absorbed lead moves with it: the caller, who knows them, relinks them too. An
    anonymous visitor's lead holds only its anonymousId, except on a computer two people share: there
    the anonymousId can lead to the other person's lead, and that one is folded in too.
    """
    named = frozenset(profiles)
    linked = {links[p] for p in named if p in links}
    if not linked:
        return Resolution(lead_id=new_id(), is_new=True, absorbed=None, link=named)
    if len(linked) > 2:
        raise ValueError(f"a message names at most a userId and an anonymousId, got {sorted(named)}")
    users = {links[p] for p in named if p in links and p.startswith(USER_PROFILE)}
    survivor, *rest = sorted(linked, key=lambda lead_id: (lead_id not in users, lead_id))
    return Resolution(
        lead_id=survivor,
        is_new=False,
        absorbed=rest[0] if rest else None,
        link=frozenset(p for p in named if links.get(p) != survivor),
    )
