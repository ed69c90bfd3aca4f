"""Tracks by topic and persona: "a prospect who downloaded an SEO guide should receive different nurture content
than one who attended a paid media webinar" (the second source text). The next email of a sequence is the unsent
one that best matches the lead's strongest topic, then its persona; the sequence's order decides otherwise."""

from __future__ import annotations

from nurture.domain.journey import best_match, persona_of, strongest_topic
from nurture.domain.messages import LeadTraits
from nurture.domain.programme import EmailTags, Stage
from nurture.tools.cli import read_programme
from tests.support import T0, Journey, days, identify, page, track

MINUTE = days(1) / 1440


def first_consideration_email(*interest: object) -> str:
    """A new lead who shows `interest`, then reads pricing and a case study (50: Consideration)."""
    journey = Journey(read_programme(None))
    journey.apply(identify(T0))
    for i, message in enumerate(interest, 1):
        journey.apply(message.model_copy(update={"timestamp": T0 + i * MINUTE}))  # type: ignore[attr-defined]
    journey.apply(page("/pricing", T0 + 10 * MINUTE))
    journey.apply(track("Case Study Downloaded", T0 + 11 * MINUTE))
    assert journey.lead.stage is Stage.CONSIDERATION
    journey.run_until(T0 + days(3))
    return next(s.content_id for s in journey.sends if s.sequence is Stage.CONSIDERATION)


def test_an_seo_reader_and_a_webinar_attendee_get_different_consideration_emails() -> None:
    seo = first_consideration_email(track("SEO Guide Downloaded"))
    webinar = first_consideration_email(track("Webinar Attended"))
    assert seo == "consideration-06-seo-traffic-to-pipeline"
    assert webinar == "consideration-07-after-the-webinar"


def test_a_lead_with_no_topic_gets_the_sequence_in_order() -> None:
    programme = read_programme(None)
    assert first_consideration_email() == programme.sequences.consideration.emails[0]


def test_the_strongest_topic_wins_and_page_paths_count_too() -> None:
    journey = Journey(read_programme(None))
    journey.apply(identify(T0))
    journey.apply(page("/blog/seo/keywords", T0 + MINUTE))
    journey.apply(page("/blog/seo/links", T0 + 2 * MINUTE))
    journey.apply(track("Webinar Attended", T0 + 3 * MINUTE))
    assert journey.lead.interests == {"seo": 2, "paid_media": 1}
    assert strongest_topic(journey.lead, journey.programme) == "seo"


def test_a_persona_breaks_the_tie_between_emails_of_no_topic() -> None:
    programme = read_programme(None)
    executive = EmailTags(personas=("executive",))
    tagged = programme.with_emails(
        lambda content_id: executive if content_id == "consideration-03-customer-story" else None
    )
    lead = Journey(tagged).lead.model_copy(update={"traits": LeadTraits(seniority="vp")})
    assert persona_of(lead.traits, tagged) == "executive"
    unsent = list(enumerate(tagged.sequences.consideration.emails, 1))
    assert best_match(lead, unsent, tagged) == (3, "consideration-03-customer-story")
    assert best_match(lead.model_copy(update={"traits": LeadTraits(seniority="ic")}), unsent, tagged) == unsent[0]
