"""`POST /_local/clock` reads `{"advance_days": N}` or `{"advance_hours": N}`: anything else, however large or
odd, is a 400 from the route (`None`, or an amount past the ten-year limit), never a 500 from `timedelta`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nurture.tools.local.server import MAX_ADVANCE, OUTBOX_HTML, _advance


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"advance_days": 1}', timedelta(days=1)),
        (b'{"advance_hours": 2, "advance_days": 1}', timedelta(days=1, hours=2)),
        (b"", timedelta(0)),
    ],
)
def test_a_clock_request_moves_by_what_it_asks(body: bytes, expected: timedelta) -> None:
    assert _advance(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b'{"advance_days": 1e9}',
        b'{"advance_hours": 1e12}',
        b'{"advance_days": 1e400}',
        b'{"advance_days": 1' + b"0" * 400 + b"}",
    ],
)
def test_a_huge_amount_is_past_the_limit_not_an_overflow(body: bytes) -> None:
    by = _advance(body)
    assert by is not None
    assert by > MAX_ADVANCE


@pytest.mark.parametrize(
    "body", [b'{"advance_days": true}', b'{"advance_days": "1"}', b"[]", b"{", b'{"advance_days": NaN}']
)
def test_anything_but_a_number_is_refused(body: bytes) -> None:
    assert _advance(body) is None


def test_an_outbox_index_is_written_one_way() -> None:
    assert OUTBOX_HTML.fullmatch("/_local/outbox/0.html")
    assert OUTBOX_HTML.fullmatch("/_local/outbox/12.html")
    assert not OUTBOX_HTML.fullmatch("/_local/outbox/00.html")
