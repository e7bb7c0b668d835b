"""``DF_QUORUM_GROUP_SIZE`` on the real broker: a queue is created with the group size of
whichever service declared it first, and a service started with another size declares it
again as it is instead of failing (RabbitMQ refuses a re-declaration with another
``x-quorum-initial-group-size`` with PRECONDITION_FAILED; ADR 28)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelPreconditionFailed
from structlog.testing import capture_logs

from contracts import Topology
from durable.broker import OutgoingMessage, Publisher
from durable.declarations import declare_activity_queues
from tests.conftest import AMQP_URL


async def test_a_queue_made_with_another_group_size_is_declared_again_as_it_is(
    private_topology: Topology, channel: AbstractChannel
) -> None:
    await declare_activity_queues(channel, replace(private_topology, quorum_group_size=1), ["echo"])

    with capture_logs() as logs:
        await declare_activity_queues(
            channel, replace(private_topology, quorum_group_size=2), ["echo"]
        )
        await declare_activity_queues(channel, private_topology, ["echo"])  # no size at all

    kept = [
        (e["queue"], e["requested"], e["existing"]) for e in logs if e["log_level"] == "warning"
    ]
    queue = private_topology.activity_queue("echo")
    dlq = private_topology.dead_letter_queue(queue)
    assert kept == [(queue, 2, 1), (dlq, 2, 1), (queue, 0, 1), (dlq, 0, 1)]
    assert not channel.is_closed  # reopened: the caller goes on with it


async def test_a_queue_made_without_a_group_size_takes_a_service_that_names_one(
    private_topology: Topology,
) -> None:
    # The partition queues are made by the first publisher without a size; a publisher of a
    # service started with DF_QUORUM_GROUP_SIZE=3 opens and publishes all the same.
    first = await Publisher.open(AMQP_URL, private_topology, "integration.size-0")
    await first.close()
    with capture_logs() as logs:
        later = await Publisher.open(
            AMQP_URL, replace(private_topology, quorum_group_size=3), "integration.size-3"
        )
    kept = {e["queue"] for e in logs if e["event"] == "amqp.queue_group_size_kept"}
    assert private_topology.partition_queue(0) in kept
    try:
        exchange, routing_key = private_topology.orchestrator_route("some-instance")
        await later.publish(OutgoingMessage(exchange, routing_key, "m-1", "c", "Probe", b"{}"))
        activity_exchange, activity = private_topology.activity_route("echo")
        await later.publish(OutgoingMessage(activity_exchange, activity, "m-2", "c", "T", b"{}"))
    finally:
        await later.close()


async def test_another_argument_that_differs_is_still_refused(
    private_topology: Topology, channel: AbstractChannel
) -> None:
    await declare_activity_queues(channel, replace(private_topology, quorum_group_size=1), ["echo"])

    differs = replace(private_topology, quorum_group_size=2, delivery_limit=3)
    with pytest.raises(ChannelPreconditionFailed, match="x-delivery-limit"):
        await declare_activity_queues(channel, differs, ["echo"])
