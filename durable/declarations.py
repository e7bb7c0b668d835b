"""Declaring the topology (``contracts.topology``) on a channel: exchanges, queues, bindings.

Every service declares what it uses, every time it connects (declaring is idempotent), so no
service depends on another having started first. RabbitMQ refuses to re-declare a queue with
other arguments; the one exception made here is the quorum group size, which only counts when
a queue is created (``_declare_queue``, ADR 28).

A declaration RabbitMQ refuses for want of a permission raises ``BrokerAccessRefusedError``,
which adds to the broker's reason (the resource and the user, not the right) the rights the
operation needs, as ``contracts.permissions`` describes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import aiormq
import structlog
from aio_pika.abc import AbstractChannel

from contracts.topology import (
    QUORUM_GROUP_SIZE_ARGUMENT,
    BindingSpec,
    ExchangeSpec,
    QueueSpec,
    Topology,
)

log = structlog.get_logger(__name__)


class BrokerAccessRefusedError(aiormq.exceptions.ChannelAccessRefused):
    """RabbitMQ refused a declaration for want of a permission: the message names the
    operation, the rights it needs and on what, and the broker's reason (the resource it
    refused and the user)."""


@contextmanager
def _needs(operation: str, rights: str) -> Iterator[None]:
    try:
        yield
    except BrokerAccessRefusedError:
        raise
    except aiormq.exceptions.ChannelAccessRefused as error:
        raise BrokerAccessRefusedError(f"{operation} needs {rights}: {error}") from error


def _queue_rights(queue: QueueSpec) -> str:
    dead_letters = queue.arguments.get("x-dead-letter-exchange")
    if dead_letters is None:
        return f"configure on queue '{queue.name}'"
    return (
        f"configure and read on queue '{queue.name}' and write on its dead-letter exchange "
        f"'{dead_letters}'"
    )


async def declare(
    channel: AbstractChannel,
    topology: Topology,
    queues: Iterable[QueueSpec] = (),
    bindings: Iterable[BindingSpec] = (),
    exchanges: Iterable[ExchangeSpec] = (),
) -> None:
    """Declare the topology's exchanges and ``exchanges``, then ``queues`` and ``bindings``
    (all idempotent).

    On a channel nothing else uses meanwhile: a queue that exists with another quorum group
    size closes it, and it is reopened (``_declare_queue``).
    """
    for spec in [*topology.exchanges(), *exchanges]:
        with _needs(f"declaring exchange '{spec.name}'", f"configure on '{spec.name}'"):
            await channel.declare_exchange(spec.name, spec.type, durable=True)
    for queue in queues:
        with _needs(f"declaring queue '{queue.name}'", _queue_rights(queue)):
            await _declare_queue(channel, queue)
    for binding in bindings:
        queue_ = await channel.get_queue(binding.queue, ensure=False)
        with _needs(
            f"binding queue '{binding.queue}' to exchange '{binding.exchange}'",
            f"write on queue '{binding.queue}' and read on exchange '{binding.exchange}'",
        ):
            await queue_.bind(binding.exchange, binding.routing_key)


async def _declare_queue(channel: AbstractChannel, queue: QueueSpec) -> None:
    """Declare ``queue``; if it exists with another quorum group size, keep that one.

    RabbitMQ refuses (PRECONDITION_FAILED, measured on 3.10) to re-declare a queue with any
    other ``x-quorum-initial-group-size``, or without it when it was created with one. The
    size only counts when a queue is created, so a service started with another
    ``DF_QUORUM_GROUP_SIZE`` than the one that created the queue declares it again with the
    size it has; every other argument is still checked (ADR 28).
    """
    try:
        await channel.declare_queue(queue.name, durable=True, arguments=dict(queue.arguments))
    except aiormq.exceptions.ChannelPreconditionFailed as error:
        existing = existing_group_size(error)
        if existing is None:
            raise
        log.warning(
            "amqp.queue_group_size_kept",
            queue=queue.name,
            requested=queue.arguments.get(QUORUM_GROUP_SIZE_ARGUMENT, 0),
            existing=existing,
        )
        await channel.reopen()
        kept = queue.with_quorum_group_size(existing)
        await channel.declare_queue(kept.name, durable=True, arguments=dict(kept.arguments))


_GROUP_SIZE_REFUSED = re.compile(
    rf"inequivalent arg '{QUORUM_GROUP_SIZE_ARGUMENT}'.*current is "
    r"(?:(?P<none>none)|the value '(?P<typed>\d+)'|'(?P<plain>\d+)')"
)


def existing_group_size(error: aiormq.exceptions.ChannelPreconditionFailed) -> int | None:
    """The quorum group size of the queue whose re-declaration ``error`` refused (0: it has
    none), or None when the refusal was about something else. RabbitMQ says it only in the
    message: "inequivalent arg 'x-quorum-initial-group-size' ... current is '2'" (or "the
    value '2' of type 'byte'", or "none")."""
    found = _GROUP_SIZE_REFUSED.search(str(error))
    if found is None:
        return None
    return 0 if found["none"] else int(found["typed"] or found["plain"])


async def declare_orchestrator_queues(channel: AbstractChannel, topology: Topology) -> None:
    queues, bindings = topology.orchestrator_declarations()
    await declare(channel, topology, queues, bindings)


async def declare_delay_queues(channel: AbstractChannel, topology: Topology) -> None:
    """The durable-timer cascade: 28 level exchanges and queues, and the delivery exchange."""
    exchanges, queues, bindings, exchange_bindings = topology.delay_declarations()
    for spec in exchanges:
        alternate = spec.arguments.get("alternate-exchange")
        rights = f"configure on '{spec.name}'" + (
            f", read on it and write on its alternate exchange '{alternate}'" if alternate else ""
        )
        with _needs(f"declaring exchange '{spec.name}'", rights):
            await channel.declare_exchange(
                spec.name, spec.type, durable=True, arguments=dict(spec.arguments) or None
            )
    await declare(channel, topology, queues, bindings)
    for link in exchange_bindings:
        destination = await channel.get_exchange(link.destination, ensure=False)
        with _needs(
            f"binding exchange '{link.destination}' to exchange '{link.source}'",
            f"write on exchange '{link.destination}' and read on exchange '{link.source}'",
        ):
            await destination.bind(link.source, link.routing_key)


async def declare_activity_queues(
    channel: AbstractChannel, topology: Topology, activity_names: Iterable[str]
) -> None:
    for name in activity_names:
        queues, bindings = topology.activity_declarations(name)
        await declare(channel, topology, queues, bindings)
