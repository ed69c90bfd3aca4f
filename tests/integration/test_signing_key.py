"""One-click unsubscribe through the real ingest handler on moto: the link is signed with the key the local stack
generated into its Secrets Manager (read through `nurture.runtime.wiring`), and verified by the API with the same."""

from __future__ import annotations

import json
from urllib.parse import quote

from nurture import constants as c
from nurture.domain.programme import Stage
from nurture.domain.tokens import Signer
from nurture.runtime import wiring
from nurture.tools.local import resources
from nurture.tools.local.lambda_events import http_event
from nurture.tools.local.runtime import LocalStack
from tests.integration.conftest import WRITE_KEY


def _identify(stack: LocalStack, user: str, address: str) -> str:
    body = json.dumps({"userId": user, "messageId": f"{user}-1", "traits": {"email": address}}).encode()
    headers = {"x-write-key": WRITE_KEY, "content-type": "application/json"}
    assert (
        stack.invoke("ingest", http_event("POST", "/v1/identify", "", headers, body, stack.now()))["statusCode"] == 200
    )
    stack.drain()
    return stack.leads.leads_for([f"u#{user}"])[f"u#{user}"]


def _unsubscribe(stack: LocalStack, method: str, token: str) -> int:
    form = {"content-type": "application/x-www-form-urlencoded"}
    event = http_event(
        method, c.UNSUBSCRIBE_PATH, f"token={quote(token)}", form, b"List-Unsubscribe=One-Click", stack.now()
    )
    status: int = stack.invoke("ingest", event)["statusCode"]
    stack.drain()
    return status


def _opted_out_changes(stack: LocalStack, lead_id: str) -> list[dict[str, object]]:
    return [e for e in stack.captured.stage_changes if e["lead_id"] == lead_id and e["to"] == "opted_out"]


def test_the_signing_key_is_the_stacks_own_secret(stack: LocalStack) -> None:
    secret = json.loads(
        stack.client("secretsmanager").get_secret_value(SecretId=resources.SIGNING_KEY_SECRET)["SecretString"]
    )
    token = Signer(secret["signing_key"].encode()).sign("unsubscribe", "lead-x", stack.now())
    assert wiring.ports().signer.verify(token, "unsubscribe", stack.now()) == "lead-x"


def test_a_post_with_the_stacks_token_opts_the_lead_out_once(stack: LocalStack) -> None:
    lead_id = _identify(stack, "u-unsub", "unsub@northwind.example")
    token = wiring.ports().signer.sign("unsubscribe", lead_id, stack.now())
    # A GET (a link scanner) changes nothing
    assert _unsubscribe(stack, "GET", token) == 200
    stored = stack.leads.get(lead_id)
    assert stored is not None
    assert stored.lead.stage is Stage.AWARENESS
    # A token signed with any other key is refused and changes nothing
    assert _unsubscribe(stack, "POST", Signer(b"another key").sign("unsubscribe", lead_id, stack.now())) == 400
    assert _opted_out_changes(stack, lead_id) == []
    # The one-click POST opts her out, published once however often it is clicked
    assert _unsubscribe(stack, "POST", token) == 200
    assert _unsubscribe(stack, "POST", token) == 200
    stored = stack.leads.get(lead_id)
    assert stored is not None
    assert stored.lead.stage is Stage.OPTED_OUT
    assert len(_opted_out_changes(stack, lead_id)) == 1
