"""The mailer port on SES v2, through the stack's configuration set (so SES reports what happens next).

Each email goes as raw MIME (`Content.Raw`), built with the standard library: multipart/alternative text and
HTML in UTF-8, and the extra headers the sender gives (List-Unsubscribe, List-Unsubscribe-Post), which SES's
Simple content cannot carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from nurture.pipeline.ports import NotSent

# SES answered with an error (it refused the email), or the request never reached it. A read timeout or a
# dropped connection after the request went out is neither: SES may have sent it, so it is not NotSent.
_SURELY_NOT_SENT = (ClientError, ConnectTimeoutError, EndpointConnectionError)
# CRLF line ends (SMTP), and no folding inside a header shorter than RFC 5322's 998 characters: a long
# List-Unsubscribe URL must stay one `<…>` as written, never split or turned into encoded words.
_WIRE = policy.SMTP.clone(max_line_length=998)


def mime(from_address: str, to: str, subject: str, text: str, html: str, headers: Mapping[str, str]) -> bytes:
    """The email as SES receives it. Bodies are quoted-printable, so the message is 7-bit whatever the text."""
    message = EmailMessage()
    message["Subject"] = _one_line(subject)
    message["From"] = from_address
    message["To"] = to
    for name, value in headers.items():
        message[name] = _one_line(value)
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message.as_bytes(policy=_WIRE)


def _one_line(value: str) -> str:
    # A line break in a header value would start a new header (header injection); the email module refuses it.
    return " ".join(value.splitlines())


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str) -> None:
        self.client = client
        self.from_address = from_address
        self.configuration_set = configuration_set

    def send(
        self, to: str, subject: str, text: str, html: str, tags: dict[str, str], headers: Mapping[str, str]
    ) -> str:
        try:
            raw = mime(self.from_address, to, subject, text, html, headers)
        except (ValueError, TypeError, UnicodeError) as error:
            # The email module could not write it: it never left this process.
            raise NotSent(f"the email could not be written as MIME: {type(error).__name__}") from error
        try:
            answer = self._send_email(raw, tags)
        except _SURELY_NOT_SENT as error:
            raise NotSent(str(error)) from error
        message_id: str = answer["MessageId"]
        return message_id

    def _send_email(self, raw: bytes, tags: dict[str, str]) -> Any:
        # No Destination: SES sends a raw email to the recipients in its headers (the To above).
        return self.client.send_email(
            FromEmailAddress=self.from_address,
            Content={"Raw": {"Data": raw}},
            ConfigurationSetName=self.configuration_set,
            EmailTags=[{"Name": name, "Value": value} for name, value in tags.items()],
        )


class SesSendingSwitch:
    """Sending of the configuration set, which the send guard turns off (`nurture.pipeline.send_guard`). While it is
    off SES refuses every send through it (`SendingPausedException`, a ClientError): `SesMailer` raises NotSent,
    so the send is released and retried, never recorded as sent."""

    def __init__(self, client: Any, configuration_set: str) -> None:
        self.client = client
        self.configuration_set = configuration_set

    def pause(self) -> None:
        self.client.put_configuration_set_sending_options(
            ConfigurationSetName=self.configuration_set, SendingEnabled=False
        )
