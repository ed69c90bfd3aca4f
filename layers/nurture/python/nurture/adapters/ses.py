"""The mailer port on SES v2, through the stack's configuration set (so SES reports what happens next)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from nurture.pipeline.ports import NotSent

# SES answered with an error (it refused the email), or the request never reached it. A read timeout or a
# dropped connection after the request went out is neither: SES may have sent it, so it is not NotSent.
_SURELY_NOT_SENT = (ClientError, ConnectTimeoutError, EndpointConnectionError)


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str) -> None:
        self.client = client
        self.from_address = from_address
        self.configuration_set = configuration_set

    def send(
        self, to: str, subject: str, text: str, html: str, tags: dict[str, str], headers: Mapping[str, str]
    ) -> str:
        try:
            answer = self._send_email(to, subject, text, html, tags)
        except _SURELY_NOT_SENT as error:
            raise NotSent(str(error)) from error
        message_id: str = answer["MessageId"]
        return message_id

    def _send_email(self, to: str, subject: str, text: str, html: str, tags: dict[str, str]) -> Any:
        return self.client.send_email(
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
