"""The identity rule: which lead a message's profiles (userId, anonymousId) join, and what is folded in.

The differential test checks the engine and the lead service follow the same rule; these check the rule.
"""

from __future__ import annotations

import pytest

from nurture.domain.identity import Resolution, resolve


def _never() -> str:
    raise AssertionError("no new lead was needed")


def test_a_stranger_gets_a_new_lead_holding_every_profile_the_message_names() -> None:
    found = resolve(("u#ada", "a#phone"), {}, lambda: "lead-1")
    assert found == Resolution(lead_id="lead-1", is_new=True, absorbed=None, link=frozenset({"u#ada", "a#phone"}))


def test_an_anonymous_visitor_who_identifies_keeps_their_lead_and_it_learns_the_userid() -> None:
    found = resolve(("u#ada", "a#phone"), {"a#phone": "visitor"}, _never)
    assert found == Resolution(lead_id="visitor", is_new=False, absorbed=None, link=frozenset({"u#ada"}))


@pytest.mark.parametrize("order", [("u#ada", "a#phone"), ("a#phone", "u#ada")])
def test_the_userids_lead_wins_and_the_anonymous_visitors_lead_is_folded_into_it(order: tuple[str, str]) -> None:
    # whatever the lead ids, and in whatever order the profiles come
    for user_lead, visitor_lead in (("zz-ada", "aa-visitor"), ("aa-ada", "zz-visitor")):
        found = resolve(order, {"u#ada": user_lead, "a#phone": visitor_lead}, _never)
        assert found == Resolution(lead_id=user_lead, is_new=False, absorbed=visitor_lead, link=frozenset({"a#phone"}))


def test_a_known_pair_changes_nothing() -> None:
    found = resolve(("u#ada", "a#phone"), {"u#ada": "ada", "a#phone": "ada"}, _never)
    assert found == Resolution(lead_id="ada", is_new=False, absorbed=None, link=frozenset())


def test_two_anonymous_leads_are_resolved_the_same_way_everywhere() -> None:
    links = {"a#laptop": "lead-b", "a#phone": "lead-a"}
    assert resolve(("a#laptop", "a#phone"), links, _never).lead_id == "lead-a"
    assert resolve(("a#phone", "a#laptop"), links, _never).lead_id == "lead-a"
