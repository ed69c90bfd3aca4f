"""Signed link tokens: only a token this key signed, for this purpose, unexpired, names a lead; anything else is a
TokenError, never another exception (the unsubscribe route answers 400 for it, never a 5xx)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain.tokens import MAX_TOKEN_LENGTH, Signer, TokenError
from tests.support import T0

KEY = b"k" * 32
SIGNER = Signer(KEY)
LEAD = "lead-7f3a"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: bytes, key: bytes = KEY) -> str:
    """A token over any payload, correctly signed: what only the key's holder can make."""
    return f"{_b64(payload)}.{_b64(hmac.new(key, payload, hashlib.sha256).digest())}"


def test_a_token_names_the_lead_it_was_signed_for() -> None:
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    assert SIGNER.verify(token, "unsubscribe", T0 + timedelta(days=364)) == LEAD
    assert len(token) <= MAX_TOKEN_LENGTH


def test_a_tampered_payload_is_refused() -> None:
    # Given a token for one lead, When its payload is rewritten to name another (signature kept)
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = _b64(json.dumps({**fields, "l": "someone-else"}, separators=(",", ":")).encode())
    # Then it is refused
    with pytest.raises(TokenError):
        SIGNER.verify(f"{forged}.{signature}", "unsubscribe", T0)


def test_a_tampered_signature_is_refused() -> None:
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(TokenError):
        SIGNER.verify(f"{payload}.{flipped}", "unsubscribe", T0)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = Signer(b"another key, another stack").sign("unsubscribe", LEAD, T0)
    with pytest.raises(TokenError):
        SIGNER.verify(token, "unsubscribe", T0)


def test_a_click_token_does_not_unsubscribe() -> None:
    token = SIGNER.sign("click", LEAD, T0)
    with pytest.raises(TokenError):
        SIGNER.verify(token, "unsubscribe", T0)


def test_an_unsubscribe_token_expires_after_a_year() -> None:
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    assert SIGNER.verify(token, "unsubscribe", T0 + timedelta(days=365)) == LEAD
    with pytest.raises(TokenError, match="expired"):
        SIGNER.verify(token, "unsubscribe", T0 + timedelta(days=365, seconds=1))


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b.c",
        "no-dot-at-all",
        "é.é",
        "\x00.\x00",
        "a" * (MAX_TOKEN_LENGTH + 1),
        "%%%.%%%",
        "YQ.YQ",
        "\ud800.x",
        _signed(b"not json"),
        _signed(b"[1, 2, 3]"),
        _signed(b'{"p": "unsubscribe"}'),
        _signed(b'{"p": "unsubscribe", "l": 7, "e": 9999999999}'),
        _signed(b'{"p": "unsubscribe", "l": "x", "e": "tomorrow"}'),
        _signed(b'{"p": "unsubscribe", "l": "x", "e": 1e300}'),
        _signed(b'{"p": "unsubscribe", "l": "x", "e": -99999999999999999999999}'),
        _signed(b'{"p": "unsubscribe", "l": "x", "e": true}'),
        _signed(b"\xff\xfe"),
    ],
)
def test_garbage_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        SIGNER.verify(token, "unsubscribe", T0)


@pytest.mark.parametrize("token", [None, 7, b"YQ.YQ", ["a", "b"], {"p": "unsubscribe"}])
def test_a_token_that_is_not_text_is_a_token_error(token: Any) -> None:
    with pytest.raises(TokenError):
        SIGNER.verify(token, "unsubscribe", T0)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["p", "l", "e", "x"]), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    token=st.one_of(
        st.text(max_size=600),
        st.builds(lambda a, b: f"{a}.{b}", st.text(max_size=60), st.text(max_size=60)),
        st.builds(lambda a, b: f"{_b64(a)}.{_b64(b)}", st.binary(max_size=80), st.binary(max_size=40)),
        # Correctly signed payloads of any JSON shape: only the key's holder can make these, yet they must not crash.
        st.builds(lambda v: _signed(json.dumps(v).encode()), _json),
        st.builds(lambda b: _signed(b), st.binary(max_size=80)),
    )
)
def test_no_input_raises_anything_but_a_token_error(token: str) -> None:
    with contextlib.suppress(TokenError):
        SIGNER.verify(token, "unsubscribe", T0)


@pytest.mark.parametrize("change", ["==", "="])
def test_a_token_with_padding_added_is_refused(change: str) -> None:
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    payload, signature = token.split(".")
    for changed in (f"{payload}.{signature}{change}", f"{payload}{change}.{signature}"):
        with pytest.raises(TokenError):
            SIGNER.verify(changed, "unsubscribe", T0)


def test_a_token_spelled_differently_but_decoding_the_same_is_refused() -> None:
    # The last character of a 43-character signature carries two bits no decoder reads: another character
    # there decodes to the same bytes, and is still not the token we wrote.
    token = SIGNER.sign("unsubscribe", LEAD, T0)
    payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    twins = [alphabet[(index & ~3) + k] for k in range(4) if (index & ~3) + k != index]
    same = base64.urlsafe_b64decode(signature + "=")
    twins = [c for c in twins if base64.urlsafe_b64decode(signature[:-1] + c + "=") == same]
    assert twins
    with pytest.raises(TokenError):
        SIGNER.verify(f"{payload}.{signature[:-1]}{twins[0]}", "unsubscribe", T0)
