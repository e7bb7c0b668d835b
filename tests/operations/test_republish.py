"""``durable-ops republish``: every stored event, once and in order, across stops and resumes,
including events whose transactions commit out of global-position order."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage

from contracts import OrchestrationStatus
from tests.conftest import AMQP_URL, unique
from tests.operations.conftest import OpsDeployment, Workload, finish

pytestmark = pytest.mark.e2e

INSERT = """
    INSERT INTO events (instance_id, seq, execution_id, event_type, payload)
    VALUES ($1, $2, 'late', 'EventRaised', $3::json)
    RETURNING transaction_id, global_position
"""


def raised(name: str) -> str:
    stamp = datetime.now(UTC).isoformat()
    return json.dumps({"event_type": "EventRaised", "timestamp": stamp, "name": name})


class Received:
    """Everything published to the test's queue, in arrival order."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def collect(self, message: AbstractIncomingMessage) -> None:
        self.events.append(json.loads(message.body))

    def order(self) -> list[tuple[str, int]]:
        return [(event["instance_id"], event["seq"]) for event in self.events]


@pytest.fixture
async def target_queue() -> AsyncIterator[tuple[str, Received]]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(unique("ops-republish-"), durable=True)
    received = Received()
    await queue.consume(received.collect, no_ack=True)
    yield queue.name, received
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()


async def busy(deployment: OpsDeployment, started: list[str], stop: asyncio.Event) -> None:
    """Keep starting orchestrations until told to stop."""
    while not stop.is_set():
        started.append(await deployment.client.start_new("hello_cities"))
        started.append(await deployment.client.start_new("fan_out_fan_in", input=15))
        await asyncio.sleep(0.02)


async def test_republish_delivers_every_event_once_and_in_order_across_stops_and_resumes(
    deployment: OpsDeployment,
    workload: Workload,
    target_queue: tuple[str, Received],
    tmp_path: Path,
) -> None:
    queue, received = target_queue
    checkpoint = str(tmp_path / "republish.checkpoint")
    args = ("republish", "--to-queue", queue, "--checkpoint", checkpoint)
    stop, started = asyncio.Event(), []
    workload_task = asyncio.create_task(busy(deployment, started, stop))
    url = deployment.settings.database_url
    late, early, older, younger = [await asyncpg.connect(url) for _ in range(4)]
    late_a, late_b = unique("late-a-"), unique("late-b-")
    inverted, other = unique("inverted-"), unique("other-")
    try:
        first = await deployment.ops(*args, "--limit", "100")
        assert first.code == 0, first
        await deployment.eventually(lambda: len(received.events) == 100)

        # Out of global-position order: A takes the lower position, B commits first.
        late_transaction = late.transaction()
        await late_transaction.start()
        held_xid, _ = await late.fetchrow(INSERT, late_a, 1, raised("A"))
        async with early.transaction():
            await early.fetchrow(INSERT, late_b, 1, raised("B"))
        # Out of seq order: the transaction with the lower id appends the later event.
        older_transaction = older.transaction()
        await older_transaction.start()
        await older.fetchrow(INSERT, other, 1, raised("first write"))
        async with younger.transaction():
            await younger.fetchrow(INSERT, inverted, 1, raised("seq 1"))
        await older.fetchrow(INSERT, inverted, 2, raised("seq 2"))
        await older_transaction.commit()

        following = await deployment.start_ops(*args, "--follow")

        async def caught_up_to_the_open_transaction() -> bool:
            below = await deployment.pool.fetchval(
                "SELECT count(*) FROM events WHERE transaction_id < $1::xid8", held_xid
            )
            assert len(received.events) == below
            return True

        await deployment.eventually(caught_up_to_the_open_transaction)
        assert (late_b, 1) not in received.order(), "B waits for the older open transaction"
        following.send_signal(signal.SIGINT)
        interrupted = await finish(following)
        assert interrupted.code == 130, interrupted

        await late_transaction.commit()
        resumed = await deployment.ops(*args, "--limit", "50")
        assert resumed.code == 0, resumed
        stop.set()
        await workload_task
        for instance_id in started:
            await deployment.wait_for_status(instance_id, OrchestrationStatus.COMPLETED)

        final = await deployment.ops(*args)
        assert final.code == 0, final
    finally:
        stop.set()
        await asyncio.gather(workload_task, return_exceptions=True)
        for connection in (late, early, older, younger):
            await connection.close()

    stored = await deployment.pool.fetch(
        "SELECT instance_id, seq, transaction_id, global_position FROM events "
        "ORDER BY transaction_id, global_position"
    )
    expected = [(row["instance_id"], row["seq"]) for row in stored]
    # The inverted instance's seq 1 (younger transaction) is pulled in front of its seq 2.
    expected.remove((inverted, 1))
    expected.insert(expected.index((inverted, 2)), (inverted, 1))
    await deployment.eventually(lambda: len(received.events) >= len(expected))
    assert received.order() == expected
    positions = {(row["instance_id"], row["seq"]): row["global_position"] for row in stored}
    assert positions[(late_a, 1)] < positions[(late_b, 1)]
    assert received.order().index((late_a, 1)) < received.order().index((late_b, 1))
    assert received.events[expected.index((late_a, 1))]["payload"]["name"] == "A"
