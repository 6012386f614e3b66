"""What the webhook takes in: Event Grid's content types only, and every event of a batch.

An IncomingCall after a validation event in the same batch used to be dropped (the handshake
answered, the call never); a ``text/plain`` body used to be read as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from callbridge.core.json_elements import json_elements
from callbridge.sim.acs import SimCall
from callbridge.sim.acs.events import subscription_validation_event
from callbridge.sim.harness import DIALED_NUMBER, LocalStack
from callbridge.sim.script import At, Hangup
from tests.adversarial.support import post_webhook
from tests.adversarial.support import tone_stack as stack

WAIT_S = 15.0


def ringing(local: LocalStack) -> tuple[SimCall, dict[str, Any]]:
    """A call ringing at ACS, and the IncomingCall Event Grid would deliver for it."""
    call = local.acs.incoming_call(to_number=DIALED_NUMBER, script=[Hangup(At(0.3))])
    assert call.incoming_event is not None
    return call, call.incoming_event


async def post(local: LocalStack, events: list[Any], content_type: str) -> tuple[int, str]:
    return await post_webhook(local, json.dumps(events), content_type)


async def post_text(local: LocalStack, body: str) -> int:
    status, _ = await post_webhook(local, body)
    return status


async def test_an_incoming_call_after_the_handshake_in_one_batch_is_answered() -> None:
    """The handshake is answered with its code, and the call that follows it is answered too."""
    validation = subscription_validation_event(
        topic="/subscriptions/x", validation_url="https://eventgrid.invalid/validate"
    )
    async with stack() as local:
        call, incoming = ringing(local)
        status, text = await post(local, [validation, incoming], "application/json")
        await call.wait_ended(WAIT_S)
    assert (status, json.loads(text)) == (
        200,
        {"validationResponse": validation["data"]["validationCode"]},
    )
    assert call.outcome == "answered"


async def test_the_content_types_event_grid_sends_are_taken_and_others_refused() -> None:
    """``application/json`` (Event Grid schema) and the CloudEvents types, charset or not: the
    call is answered. ``text/plain`` or no JSON type at all: 415, and nothing is answered."""
    taken = (
        "application/json; charset=utf-8",
        "application/cloudevents+json; charset=utf-8",
        "application/cloudevents-batch+json",
    )
    refused = ("text/plain", "application/x-www-form-urlencoded", "application/octet-stream")
    async with stack() as local:
        local.acs.ring_timeout_s = 1.0
        answered = [ringing(local) for _ in taken]
        unanswered = [ringing(local) for _ in refused]
        statuses = [
            (await post(local, [incoming], kind))[0]
            for (_, incoming), kind in zip(answered + unanswered, taken + refused, strict=True)
        ]
        for call, _ in answered + unanswered:
            await call.wait_ended(WAIT_S)
    assert statuses == [200, 200, 200, 415, 415, 415]
    assert [call.outcome for call, _ in answered] == ["answered"] * 3
    assert [call.outcome for call, _ in unanswered] == ["missed"] * 3


async def test_hostile_bodies_are_refused_unread() -> None:
    """Over a mebibyte (aiohttp's limit, Event Grid's largest preferred batch): 413. Nested
    deeper than Python's recursion limit: 400 (it used to escape as a 500)."""
    async with stack() as local:
        too_big = await post_text(local, "[" + " " * 1024**2 + "]")
        too_deep = await post_text(local, "[" * 100_000 + "]" * 100_000)
    assert (too_big, too_deep) == (413, 400)


class TestJsonElements:
    """The webhook's element-by-element reader agrees with ``json.loads``."""

    @pytest.mark.parametrize(
        "text",
        ['[{"a": 1}, [2, 3], "x", null]', " [ ] ", "[1]", '{"single": true}', " 7 ", "[[],{}]"],
    )
    def test_reads_what_json_reads(self, text: str) -> None:
        value = json.loads(text)
        expected = value if isinstance(value, list) else [value]
        assert list(json_elements(text)) == expected

    @pytest.mark.parametrize("text", ["", "[", "[1,]", "[1 2]", "[1]]", "[1] x", "{", "[,1]"])
    def test_refuses_what_json_refuses(self, text: str) -> None:
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        with pytest.raises(json.JSONDecodeError):
            list(json_elements(text))

    def test_nesting_beyond_the_recursion_limit_is_a_decode_error(self) -> None:
        with pytest.raises(json.JSONDecodeError, match="Nested too deep"):
            list(json_elements("[" + "[" * 100_000 + "]" * 100_000 + "]"))

    def test_stops_where_it_is_told_to(self) -> None:
        """A reader that stops after the first element never parses the broken rest."""
        elements = json_elements('[1, {"not": json')
        assert next(elements) == 1
