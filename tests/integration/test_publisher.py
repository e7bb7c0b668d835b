"""The confirming publisher against the real broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from contracts import Topology
from durable import broker
from durable.broker import OutgoingMessage, Publisher
from tests.conftest import AMQP_URL
from tests.helpers.waiting import assert_eventually
from tests.integration.queues import message_count


async def test_concurrent_first_publishes_to_an_activity_declare_its_queue_once(
    private_topology: Topology, channel: AbstractChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fan-out's first publish of each activity declares its queue; the thousands of
    # publishes gathered with it must wait for that one declaration, not make their own.
    declarations: list[list[str]] = []
    real = broker.declare_activity_queues

    async def counted(channel: Any, topology: Topology, names: Any) -> None:
        declarations.append(list(names))
        await real(channel, topology, names)

    monkeypatch.setattr(broker, "declare_activity_queues", counted)
    exchange, routing_key = private_topology.activity_route("echo")
    messages = [
        OutgoingMessage(exchange, routing_key, str(uuid.uuid4()), "c", "ActivityTask", b"{}")
        for _ in range(500)
    ]
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.fan-out")
    try:
        await publisher.publish_many(messages)
    finally:
        await publisher.close()

    assert declarations == [["echo"]]
    queue = private_topology.activity_queue("echo")

    async def all_queued() -> bool:
        count = await message_count(channel, queue)
        assert count == 500, f"{count} of 500 queued"
        return True

    await assert_eventually(all_queued, timeout=10)
