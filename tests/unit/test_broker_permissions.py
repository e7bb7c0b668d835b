"""Each service's broker user may do everything the service does, and nothing outside its
namespace (``contracts.permissions``).

What a service declares is recorded by running the services' own declaration code
(``durable.declarations``, the client's ``EntryPointConsumers.attach``) on a channel that
notes every operation with the rights RabbitMQ checks for it; what it publishes to and
consumes from is taken from the topology. None of it is listed by hand, so a queue or an
argument added to the topology is checked the day it is added.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from contracts.permissions import DEFAULT_EXCHANGE, Permissions, broker_permissions
from contracts.topology import Topology
from durable.declarations import (
    declare_activity_queues,
    declare_delay_queues,
    declare_orchestrator_queues,
)
from durable.entry_points import EntryPoints
from durable.settings import CommonSettings
from services.client.entry_points import EntryPointConsumers
from services.common.loader import load_entry_points, load_function_apps
from tests.conftest import TEST_FUNCTION_MODULES

TOPOLOGY = Topology(namespace="orders-1", partitions=12)


@dataclass(frozen=True)
class Access:
    right: str
    name: str
    why: str


@dataclass
class RecordingChannel:
    """The part of aio-pika's channel the declarations use, recording what RabbitMQ checks
    (its access-control table: a dead-letter or alternate exchange adds read on the declared
    resource and write on the exchange it names)."""

    accesses: list[Access] = field(default_factory=list)
    tags: itertools.count[int] = field(default_factory=itertools.count)

    def note(self, right: str, name: str, why: str) -> None:
        self.accesses.append(Access(right, name, why))

    async def declare_exchange(
        self, name: str, type: Any, *, durable: bool, arguments: dict[str, Any] | None = None
    ) -> None:
        self.note("configure", name, "exchange.declare")
        if arguments and "alternate-exchange" in arguments:
            self.note("read", name, "exchange.declare with an alternate exchange")
            self.note("write", arguments["alternate-exchange"], f"alternate exchange of {name}")

    async def declare_queue(
        self, name: str, *, durable: bool, arguments: dict[str, Any] | None = None
    ) -> None:
        self.note("configure", name, "queue.declare")
        if arguments and "x-dead-letter-exchange" in arguments:
            self.note("read", name, "queue.declare with a dead-letter exchange")
            self.note("write", arguments["x-dead-letter-exchange"], f"dead-letter of {name}")

    async def get_queue(self, name: str, *, ensure: bool) -> Bound:
        return Bound(self, name, "queue.bind")

    async def get_exchange(self, name: str, *, ensure: bool) -> Bound:
        return Bound(self, name, "exchange.bind")

    async def set_qos(self, prefetch_count: int) -> None:
        pass

    async def close(self) -> None:
        pass

    async def channel(self) -> RecordingChannel:  # the connection, too
        return self


@dataclass
class Bound:
    channel: RecordingChannel
    name: str
    method: str

    async def bind(self, source: str, routing_key: str) -> None:
        self.channel.note("write", self.name, self.method)
        self.channel.note("read", source, f"{self.method} of {self.name}")

    async def consume(self, callback: Any) -> str:
        self.channel.note("read", self.name, "basic.consume")
        return f"tag-{next(self.channel.tags)}"


def declared() -> EntryPoints:
    return load_entry_points(CommonSettings(function_modules=TEST_FUNCTION_MODULES))


ACTIVITIES = sorted(load_function_apps(TEST_FUNCTION_MODULES.split(",")).activities)
DECLARED = declared()
WORKFLOW_EXCHANGES = [TOPOLOGY.workflow_name(e.name) for e in DECLARED.exchanges]
PERMISSIONS = broker_permissions(
    TOPOLOGY,
    entry_queues=[entry.queue for entry in DECLARED.entry_points],
    workflow_exchanges=[e.name for e in DECLARED.exchanges],
)


def publishes(channel: RecordingChannel, *exchanges: str) -> None:
    for exchange in exchanges:
        channel.note("write", exchange, "basic.publish")


def consumes(channel: RecordingChannel, queues: list[str]) -> None:
    for queue in queues:
        channel.note("read", queue, "basic.consume")


async def orchestrator_accesses() -> list[Access]:
    channel = RecordingChannel()
    await declare_orchestrator_queues(channel, TOPOLOGY)  # type: ignore[arg-type]
    await declare_delay_queues(channel, TOPOLOGY)  # type: ignore[arg-type]
    await declare_activity_queues(channel, TOPOLOGY, ACTIVITIES)  # type: ignore[arg-type]
    publishes(
        channel,
        TOPOLOGY.orchestrator_exchange,
        TOPOLOGY.activities_exchange,
        TOPOLOGY.delay_entry_exchange,
        TOPOLOGY.dead_letter_exchange,
    )
    consumes(channel, [TOPOLOGY.partition_queue(p) for p in range(TOPOLOGY.partitions)])
    return channel.accesses


async def activities_accesses() -> list[Access]:
    channel = RecordingChannel()
    await declare_orchestrator_queues(channel, TOPOLOGY)  # type: ignore[arg-type]
    await declare_activity_queues(channel, TOPOLOGY, ACTIVITIES)  # type: ignore[arg-type]
    for exchange in DECLARED.exchanges:  # a workflow's activities declare where they publish
        await channel.declare_exchange(
            TOPOLOGY.workflow_name(exchange.name), exchange.type, durable=True
        )
    publishes(
        channel,
        TOPOLOGY.orchestrator_exchange,
        TOPOLOGY.activities_exchange,  # the tasks of a batch it unbatches
        TOPOLOGY.dead_letter_exchange,
        *WORKFLOW_EXCHANGES,
    )
    consumes(channel, [TOPOLOGY.activity_queue(name) for name in ACTIVITIES])
    return channel.accesses


async def client_accesses() -> list[Access]:
    channel = RecordingChannel()
    await declare_orchestrator_queues(channel, TOPOLOGY)  # type: ignore[arg-type]
    consumers = EntryPointConsumers(None, None, TOPOLOGY, DECLARED)  # type: ignore[arg-type]
    await consumers.attach(channel)  # type: ignore[arg-type]
    publishes(channel, TOPOLOGY.orchestrator_exchange, TOPOLOGY.dead_letter_exchange)
    return channel.accesses


ACCESSES = {
    "orchestrator": orchestrator_accesses,
    "activities": activities_accesses,
    "client": client_accesses,
}


def refused(permissions: Permissions, accesses: list[Access]) -> list[Access]:
    return [a for a in accesses if not permissions.allows(a.right, a.name)]


@pytest.mark.parametrize("service", sorted(ACCESSES))
async def test_every_declaration_publish_and_consume_of_a_service_is_allowed(
    service: str,
) -> None:
    accesses = await ACCESSES[service]()

    assert len(accesses) > 50
    assert refused(PERMISSIONS[service], accesses) == []


@pytest.mark.parametrize("service", sorted(ACCESSES))
async def test_the_operator_may_do_whatever_a_service_does(service: str) -> None:
    assert refused(PERMISSIONS["operator"], await ACCESSES[service]()) == []


@pytest.mark.parametrize("service", sorted(PERMISSIONS))
@pytest.mark.parametrize("right", ["configure", "write", "read"])
def test_no_user_has_a_right_outside_its_namespace(service: str, right: str) -> None:
    permissions = PERMISSIONS[service]
    others = [
        "orders-2.orchestrator",
        "orders-10.orchestrator.p01",
        "orders-1x.timers.entry",
        "durable.timers.level.03",
        "orders-1",
        "xorders-1.dlx",
        "amq.topic",
        "",
    ]

    assert [name for name in others if permissions.allows(right, name)] == []


def test_only_the_operator_writes_to_the_default_exchange() -> None:
    writers = [s for s, p in PERMISSIONS.items() if p.allows("write", DEFAULT_EXCHANGE)]

    assert writers == ["operator"]


def test_the_client_reads_no_activity_queue_and_touches_no_timer() -> None:
    client = PERMISSIONS["client"]
    activity_queue = TOPOLOGY.activity_queue(ACTIVITIES[0])

    assert not any(client.allows(right, activity_queue) for right in ("read", "write"))
    assert not any(
        client.allows(right, TOPOLOGY.delay_level_name(0))
        for right in ("configure", "write", "read")
    )


def test_the_activities_service_reads_no_entry_point_and_touches_no_timer() -> None:
    activities = PERMISSIONS["activities"]
    entry = TOPOLOGY.workflow_name(DECLARED.entry_points[0].queue)

    assert not any(activities.allows(right, entry) for right in ("configure", "read"))
    assert not activities.allows("write", TOPOLOGY.delay_entry_exchange)
