"""``clean_entity_storage`` on the session's real services (ADR 38): it removes the entities
that have no state, and frees the entities a critical section still holds after its
orchestration is gone, so that the operations queued behind the lock run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aio_pika
import pytest

from contracts import EntityLockRequested, Envelope, OrchestratorMessage, ParentInstance
from durable import EntityId
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import AMQP_URL, unique
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


async def ids_listed(client: DurableClient, name: str) -> set[str]:
    page = await client.list_entities(name, page_size=1000, include_deleted=True)
    return {record.entity_id.key for record in page.entities}


async def test_removes_the_entities_without_state_and_keeps_the_others(
    client: DurableClient, services: object
) -> None:
    deleted, kept = EntityId("counter", unique("empty-")), EntityId("counter", unique("kept-"))
    for entity in (deleted, kept):
        await client.signal_entity(entity, "add", 1)
    await client.signal_entity(deleted, "delete")

    async def destructed() -> bool:
        assert not (await client.read_entity_state(deleted)).entity_exists
        assert (await client.read_entity_state(kept)).entity_state == 1
        return True

    await assert_eventually(destructed, timeout=30, interval=0.05)
    assert deleted.key in await ids_listed(client, "counter")

    result = await client.clean_entity_storage(release_orphaned_locks=False)

    assert result.num_of_empty_entities_removed >= 1
    assert result.num_of_orphaned_locks_removed == 0
    listed = await ids_listed(client, "counter")
    assert deleted.key not in listed
    assert kept.key in listed
    assert (await client.read_entity_state(kept)).entity_state == 1


async def lock_for_a_gone_orchestration(
    settings: CommonSettings, entity: EntityId, holder: str
) -> None:
    """What a critical section whose orchestration was since purged left behind: its lock
    request, granted, with nobody left to release it."""
    now = datetime.now(UTC)
    request = EntityLockRequested(
        timestamp=now,
        critical_section_id=uuid.uuid4().hex,
        lock_set=[entity.instance_id],
        parent=ParentInstance(instance_id=holder, execution_id="e1", task_scheduled_id=0, name="x"),
    )
    message = OrchestratorMessage(
        envelope=Envelope(
            message_id=uuid.uuid4(),
            instance_id=entity.instance_id,
            correlation_id=holder,
            type=request.event_type,
            sent_at=now,
        ),
        body=request,
    )
    exchange, routing_key = settings.topology.orchestrator_route(entity.instance_id)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await (await channel.get_exchange(exchange)).publish(
            aio_pika.Message(message.model_dump_json().encode(), type=message.envelope.type),
            routing_key=routing_key,
        )
    finally:
        await connection.close()


async def test_frees_an_entity_held_by_an_orchestration_that_is_gone_and_runs_its_queue(
    client: DurableClient, settings: CommonSettings, services: object
) -> None:
    counter, holder = EntityId("counter", unique("orphan-")), unique("gone-")
    await client.signal_entity(counter, "add", 1)
    await lock_for_a_gone_orchestration(settings, counter, holder)

    async def held() -> bool:
        record = await client.get_entity(counter)
        assert record is not None
        assert record.locked_by == holder, record
        return True

    await assert_eventually(held, timeout=30, interval=0.05)
    await client.signal_entity(counter, "add", 10)  # queued behind the lock

    result = await client.clean_entity_storage(remove_empty_entities=False)

    assert result.num_of_orphaned_locks_removed >= 1

    async def freed() -> bool:
        record = await client.get_entity(counter)
        assert record is not None
        assert record.locked_by is None, record
        assert record.state == 11, record
        return True

    await assert_eventually(freed, timeout=30, interval=0.05)
