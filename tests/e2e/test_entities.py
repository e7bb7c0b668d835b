"""Durable entities on the session's real services (ADR 38): the HTTP routes, two-way calls
with a failing operation, accounts moved between inside critical sections under concurrency,
and azure-functions-durable's own client's entity methods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions import EntityId as AzureEntityId
from azure.durable_functions.models.utils import http_utils

from contracts import OrchestrationStatus
from durable import EntityId
from durable.client import DurableClient
from durable.client.payloads import durable_client_binding
from tests.conftest import MANAGEMENT_KEY, unique
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

ENTITIES = "/runtime/webhooks/durabletask/entities"


async def state_of(http: httpx.AsyncClient, name: str, key: str, expected: object) -> object:
    async def reached() -> object:
        answer = await http.get(f"{ENTITIES}/{name}/{key}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
        return True

    return await assert_eventually(reached, timeout=30, interval=0.05)


async def completed(client: DurableClient, instance_id: str) -> object:
    async def done() -> object:
        status = await client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is OrchestrationStatus.COMPLETED, status
        return status.output if status.output is not None else True

    return await assert_eventually(done, timeout=60, interval=0.1)


async def test_signals_over_http_change_the_state_the_state_route_answers(
    http: httpx.AsyncClient,
) -> None:
    key = unique("http-")
    unknown = await http.get(f"{ENTITIES}/counter/{key}")
    for _ in range(3):
        signalled = await http.post(f"{ENTITIES}/counter/{key}?op=add", json=4)
        assert signalled.status_code == 202, signalled.text

    await state_of(http, "counter", key, 12)
    listed = await http.get(f"{ENTITIES}/Counter", params={"fetchState": "true", "top": 1000})

    assert unknown.status_code == 404
    assert listed.status_code == 200
    mine = [e for e in listed.json() if e["entityId"]["key"] == key]
    assert mine == [
        {
            "entityId": {"name": "counter", "key": key},
            "lastOperationTime": mine[0]["lastOperationTime"],
            "state": 12,
        }
    ]


async def test_signalling_an_entity_no_deployment_registered_answers_404_and_sends_nothing(
    http: httpx.AsyncClient,
) -> None:
    key = unique("unknown-")
    unknown = await http.post(f"{ENTITIES}/no_such_entity/{key}?op=add", json=1)
    registered = await http.post(f"{ENTITIES}/ACCOUNT/{key}?op=deposit", json=1)

    assert unknown.status_code == 404, unknown.text
    assert unknown.json() == {
        "message": "The function 'no_such_entity' doesn't exist or is not an entity"
    }
    assert registered.status_code == 202, registered.text  # names are case-insensitive
    await state_of(http, "account", key, 1)
    assert (await http.get(f"{ENTITIES}/no_such_entity/{key}")).status_code == 404


async def test_instance_queries_leave_entities_out_and_the_entity_routes_list_them(
    client: DurableClient, http: httpx.AsyncClient
) -> None:
    counter = EntityId("counter", unique("unlisted-"))
    await client.signal_entity(counter, "add", 1)
    await state_of(http, "counter", counter.key, 1)

    listed = await http.get(
        "/runtime/webhooks/durabletask/instances",
        params={"top": 1000, "name": "counter", "showTotalCount": "true"},
    )
    by_prefix = await client.get_status_by(instance_id_prefix="@counter@")
    entities = await http.get(f"{ENTITIES}/counter", params={"top": 1000})

    assert listed.status_code == 200, listed.text
    assert listed.json() == []
    assert listed.headers["x-ms-total-count"] == "0"
    assert by_prefix.instances == []
    assert {"name": "counter", "key": counter.key} in [e["entityId"] for e in entities.json()]


async def test_a_deleted_entity_answers_404_and_comes_back_with_its_next_operation(
    client: DurableClient, http: httpx.AsyncClient
) -> None:
    counter = EntityId("counter", unique("deleted-"))
    await client.signal_entity(counter, "add", 1)
    await client.signal_entity(counter, "delete")

    async def gone() -> bool:
        state = await client.read_entity_state(counter)
        assert not state.entity_exists, state
        return True

    await assert_eventually(gone, timeout=30, interval=0.05)
    await client.signal_entity(counter, "add", 2)
    await state_of(http, "counter", counter.key, 2)


async def test_a_call_answers_with_the_result_and_a_failed_operation_keeps_the_state(
    client: DurableClient, services: object
) -> None:
    key = unique("calls-")
    instance_id = await client.start_new("call_counter", None, key)

    output = await completed(client, instance_id)

    assert output == {"value": 5, "failed": "EntityOperationFailedError"}
    assert (await client.read_entity_state(EntityId("counter", key))).entity_state == 5


async def test_transfers_inside_critical_sections_keep_the_sum_of_balances(
    client: DurableClient, services: object
) -> None:
    a, b = unique("acct-a-"), unique("acct-b-")
    for key in (a, b):
        await client.signal_entity(EntityId("Account", key), "deposit", 100)
    starts = [
        ({"from": a, "to": b, "amount": 7, "times": 15}),
        ({"from": b, "to": a, "amount": 11, "times": 15}),
        ({"from": a, "to": b, "amount": 13, "times": 15}),
        ({"from": b, "to": a, "amount": 5, "times": 15}),
    ]
    ids = [await client.start_new("transfer_between", None, spec) for spec in starts]

    moved = [await completed(client, instance_id) for instance_id in ids]
    balances = [
        (await client.read_entity_state(EntityId("Account", key))).entity_state for key in (a, b)
    ]

    assert sum(balances) == 200, balances
    assert all(balance >= 0 for balance in balances)
    assert sum(moved) > 0  # type: ignore[arg-type]

    # Every lock is released: nothing holds the accounts any more. The unlock travels to each
    # account after its orchestration has completed, so it may still be on its way.
    async def released() -> bool:
        for key in (a, b):
            record = await client.get_entity(EntityId("Account", key))
            assert record is not None
            assert record.locked_by is None, record
        return True

    await assert_eventually(released, timeout=30, interval=0.05)


@pytest.fixture
async def durable_functions(base_url: str) -> AsyncIterator[DurableOrchestrationClient]:
    session = aiohttp.ClientSession(headers={"x-functions-key": MANAGEMENT_KEY})
    http_utils._client_session = session
    yield DurableOrchestrationClient(json.dumps(durable_client_binding(base_url, MANAGEMENT_KEY)))
    http_utils._client_session = None
    await session.close()


async def test_azure_functions_durable_signals_and_reads_entities(
    durable_functions: DurableOrchestrationClient,
) -> None:
    counter = AzureEntityId("counter", unique("azure-"))
    missing = await durable_functions.read_entity_state(counter)
    await durable_functions.signal_entity(counter, "add", 3)
    await durable_functions.signal_entity(counter, "add", 4)

    async def counted() -> object:
        state = await durable_functions.read_entity_state(counter)
        assert state.entity_exists, vars(state)
        assert state.entity_state == 7, vars(state)
        return True

    await assert_eventually(counted, timeout=30, interval=0.05)
    assert not missing.entity_exists
