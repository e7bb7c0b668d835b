"""Protected events on the real client service: an event an orchestrator declares protected
(``proposal_approval``'s ``ApprovalResponse``) is refused to a start key, in any spelling,
with 403 and nothing sent; a management key raises it; a start key still raises the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from contracts import EventRaised
from durable.client import DurableClient, InstanceEndedError
from durable.client.payloads import RPC_PREFIX
from tests.conftest import MANAGEMENT_KEY, START_KEY, unique
from tests.helpers import approval
from tests.helpers.http import PREFIX
from tests.helpers.waiting import assert_eventually
from workflows.approval.messages import APPROVAL_ORCHESTRATOR, RESPONSE_EVENT

pytestmark = pytest.mark.e2e


@pytest.fixture
async def bare(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as bare:
        yield bare


@pytest.fixture
async def proposal_id(services: object, client: DurableClient) -> AsyncIterator[str]:
    """A proposal being approved, started directly (no answer will reach it over the broker)."""
    proposal_id = unique("p-http-")
    body = approval.proposal(proposal_id, amount=800).model_dump(mode="json")
    await client.start_new(APPROVAL_ORCHESTRATOR, proposal_id, body)
    yield proposal_id
    with contextlib.suppress(InstanceEndedError):
        await client.terminate(proposal_id, "test done")


def answer(proposal_id: str) -> object:
    return approval.response(proposal_id, approval.MANAGER).body.model_dump(mode="json")


async def raised_names(client: DurableClient, proposal_id: str, marker: str) -> list[str]:
    """The instance's raised events, once ``marker`` is among them."""
    history = [stored.event for stored in await client.get_history(proposal_id)]
    names = [event.name for event in history if isinstance(event, EventRaised)]
    assert marker in names, names
    return names


async def test_a_start_key_cannot_raise_a_protected_event_in_any_spelling_and_sends_nothing(
    bare: httpx.AsyncClient, client: DurableClient, proposal_id: str
) -> None:
    start_key = {"x-functions-key": START_KEY}
    attempts = [
        (PREFIX, RESPONSE_EVENT),
        (PREFIX, RESPONSE_EVENT.lower()),
        (PREFIX, RESPONSE_EVENT.upper()),
        (RPC_PREFIX, RESPONSE_EVENT),
    ]
    for prefix, name in attempts:
        refused = await bare.post(
            f"{prefix}/instances/{proposal_id}/raiseEvent/{name}",
            headers=start_key,
            json=answer(proposal_id),
        )
        assert refused.status_code == 403, (prefix, name, refused.text)
        message = refused.json()["message"]
        assert repr(name) in message, message
        assert "needs a management key" in message, message

    # A start key still raises events nobody protected. The marker is published to the same
    # partition after anything a refused call could have sent: once it is recorded, such an
    # event would be recorded before it.
    marker = unique("Marker")
    sent = await bare.post(
        f"{PREFIX}/instances/{proposal_id}/raiseEvent/{marker}", headers=start_key, json=1
    )
    assert sent.status_code == 202, sent.text
    names = await assert_eventually(lambda: raised_names(client, proposal_id, marker))
    assert names == [marker]


async def test_a_management_key_raises_a_protected_event(
    bare: httpx.AsyncClient, client: DurableClient, proposal_id: str
) -> None:
    sent = await bare.post(
        f"{PREFIX}/instances/{proposal_id}/raiseEvent/{RESPONSE_EVENT}",
        headers={"x-functions-key": MANAGEMENT_KEY},
        json=answer(proposal_id),
    )

    assert sent.status_code == 202, sent.text
    names = await assert_eventually(lambda: raised_names(client, proposal_id, RESPONSE_EVENT))
    assert names == [RESPONSE_EVENT]
