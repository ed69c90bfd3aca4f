"""Sales alerts in Slack: a Block Kit message sent with slack-sdk's incoming-webhook client.

The webhook URL is a secret (Secrets Manager, `{"webhook_url": "https://hooks.slack.com/..."}`), read when
first needed and cached for minutes; while it is empty, Slack is off and the alert goes to the other channels.
slack-sdk retries a 429 (after its Retry-After) and a 500 or 503; any other answer raises, so the alert is
tried again later and lands in the alerts DLQ if Slack never takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from nurture.domain.handoff import Alert

RETRIES = 2  # per kind of failure, within one delivery; the queue retries the delivery itself later
TIMEOUT_SECONDS = 10
_LIMITS = {"header": 150, "field": 2000, "section": 3000}


def escape(text: str) -> str:
    """Slack mrkdwn's three control characters, so a lead's own words cannot mention @channel or fake a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: str) -> str:
    most = _LIMITS[limit]
    return text if len(text) <= most else text[: most - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, "section")}}


def slack_message(alert: Alert) -> dict[str, Any]:
    """The alert as a Slack message: `text` for notifications, `blocks` for the channel."""
    owner = f"<@{alert.owner_slack}>" if alert.owner_slack else escape(alert.owner)
    fields = [
        ("Company size", alert.company_size),
        ("Role seniority", alert.seniority),
        ("Budget authority", alert.budget_authority),
        ("Timeline", alert.timeline),
        ("Fit", f"{alert.fit_grade} ({alert.fit})"),
        ("Intent", f"{alert.intent:g} ({alert.stage.value})"),
        ("Email", alert.email),
    ]
    signals = "\n".join(f"• {escape(signal)}" for signal in alert.signals) or "none yet"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{alert.name} ({alert.company})", "header")},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*{escape(alert.reason)}* · owner {owner}", "section")},
        },
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _clip(f"*{k}*\n{escape(v)}", "field")} for k, v in fields],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*Problem*\n{escape(alert.problem)}", "section")},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Top intent signals*\n{signals}", "section")}},
    ]
    if alert.probable_automation:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": ":warning: Check before calling: this lead sent more events in a day than a "
                        "person would.",
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open lead"},
                    "url": alert.link,
                    "action_id": "open_lead",
                }
            ],
        }
    )
    text = f"Sales alert: {alert.name} ({alert.company}), {alert.reason}, fit {alert.fit_grade}, owner {alert.owner}"
    return {"text": escape(text), "blocks": blocks}


class SlackNotDelivered(Exception):
    """Slack answered with something other than 200 after the retries."""


class SlackAlertChannel:
    name = "slack"

    def __init__(self, webhook_url: Callable[[], str | None]) -> None:
        self.webhook_url = webhook_url

    def deliver(self, alert: Alert) -> None:
        url = self.webhook_url()
        if not url:  # Slack is off: the secret holds no webhook URL
            return
        client = WebhookClient(
            url,
            timeout=TIMEOUT_SECONDS,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=RETRIES),
                RateLimitErrorRetryHandler(max_retry_count=RETRIES),
                ServerErrorRetryHandler(max_retry_count=RETRIES),
            ],
        )
        message = slack_message(alert)
        answer = client.send(text=message["text"], blocks=message["blocks"])
        if answer.status_code != 200:
            raise SlackNotDelivered(f"Slack answered {answer.status_code}: {answer.body[:200]}")
