"""What ``start_new`` does with an instance id that is in use: the client's default
(``DF_START_EXISTING``) and the per-call ``if_exists``, on the real store and broker."""

from __future__ import annotations

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel

from contracts import OrchestrationStatus, OrchestratorMessage, Topology
from durable.broker import Publisher
from durable.client import DurableClient, ExistingInstancePolicy, InstanceExistsError
from durable.settings import CommonSettings
from tests.conftest import unique
from tests.integration.queues import receive
from tests.integration.read_model import set_state

ERROR = ExistingInstancePolicy.ERROR
REPLACE_ENDED = ExistingInstancePolicy.REPLACE_ENDED


async def ended_instance(
    client: DurableClient, pool: asyncpg.Pool, channel: AbstractChannel, topology: Topology
) -> str:
    instance_id = unique("policy-")
    await client.start_new("hello_cities", instance_id, ["Oslo"])
    await receive(channel, topology.partition_queue(topology.partition_for(instance_id)), 1)
    await set_state(pool, instance_id, OrchestrationStatus.COMPLETED, output=["Hello Oslo!"])
    return instance_id


async def test_by_default_an_id_in_use_is_refused_even_when_its_instance_has_ended(
    private_client: DurableClient,
    pool: asyncpg.Pool,
    channel: AbstractChannel,
    private_topology: Topology,
) -> None:
    instance_id = await ended_instance(private_client, pool, channel, private_topology)

    with pytest.raises(InstanceExistsError) as refused:
        await private_client.start_new("hello_cities", instance_id, ["Lima"])

    assert refused.value.status is OrchestrationStatus.COMPLETED
    status = await private_client.get_status(instance_id)
    assert status is not None
    assert status.output == ["Hello Oslo!"]


async def test_replace_ended_replaces_an_ended_instance_with_a_new_execution(
    private_client: DurableClient,
    pool: asyncpg.Pool,
    channel: AbstractChannel,
    private_topology: Topology,
) -> None:
    instance_id = await ended_instance(private_client, pool, channel, private_topology)
    before = await private_client.get_status(instance_id)
    assert before is not None

    await private_client.start_new("hello_cities", instance_id, ["Lima"], if_exists=REPLACE_ENDED)

    after = await private_client.get_status(instance_id)
    assert after is not None
    assert after.runtime_status is OrchestrationStatus.PENDING
    assert (after.input, after.output) == (["Lima"], None)
    assert after.execution_id != before.execution_id
    queue = private_topology.partition_queue(private_topology.partition_for(instance_id))
    [start] = await receive(channel, queue, 1)
    assert OrchestratorMessage.model_validate_json(start.body).body.input == ["Lima"]


async def test_replace_ended_still_refuses_an_instance_that_has_not_ended(
    private_client: DurableClient,
) -> None:
    instance_id = await private_client.start_new("hello_cities", unique("policy-"), ["Oslo"])

    with pytest.raises(InstanceExistsError) as refused:
        await private_client.start_new(
            "hello_cities", instance_id, ["Lima"], if_exists=REPLACE_ENDED
        )

    assert refused.value.status is OrchestrationStatus.PENDING


async def test_the_client_default_comes_from_settings_and_a_call_can_override_it(
    pool: asyncpg.Pool,
    publisher: Publisher,
    private_topology: Topology,
    channel: AbstractChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DF_START_EXISTING", "replace_ended")
    default = CommonSettings().start_existing
    client = DurableClient(pool, publisher, private_topology, start_existing=default)
    instance_id = await ended_instance(client, pool, channel, private_topology)

    with pytest.raises(InstanceExistsError):
        await client.start_new("hello_cities", instance_id, ["Lima"], if_exists=ERROR)
    await client.start_new("hello_cities", instance_id, ["Lima"])

    assert default is REPLACE_ENDED
    status = await client.get_status(instance_id)
    assert status is not None
    assert status.input == ["Lima"]


def test_an_unknown_policy_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DF_START_EXISTING", "replace_always")

    with pytest.raises(ValueError, match="replace_ended"):
        CommonSettings()
