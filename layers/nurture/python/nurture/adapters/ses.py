"""The mailer port on SES v2, through the stack's configuration set (so SES reports what happens next)."""

from __future__ import annotations

from typing import Any


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str) -> None:
        self.client = client
        self.from_address = from_address
        self.configuration_set = configuration_set

    def send(self, to: str, subject: str, text: str, html: str, tags: dict[str, str]) -> str:
        answer = self.client.send_email(
            FromEmailAddress=self.from_address,
            Destination={"ToAddresses": [to]},
            Content={
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
                }
            },
            ConfigurationSetName=self.configuration_set,
            EmailTags=[{"Name": name, "Value": value} for name, value in tags.items()],
        )
        message_id: str = answer["MessageId"]
        return message_id
