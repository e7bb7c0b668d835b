"""Every exchange, queue, routing key and queue argument of the system, as data.

All services declare the same topology from here (declaring is idempotent), so no service
depends on another having started first. ``namespace`` prefixes every name, which lets several
deployments (or test runs) share one broker.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal

ExchangeType = Literal["direct", "topic", "fanout"]
QueueArguments = dict[str, str | int | bool]

DEFAULT_PARTITIONS = 16
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: QueueArguments = field(default_factory=dict)


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """Names and arguments for one deployment.

    Attributes:
        namespace: prefix of every exchange and queue name.
        partitions: number of orchestrator partitions; every publisher must agree on it,
            because it decides which queue an instance's messages go to.
        delivery_limit: deliveries of one message before the broker dead-letters it.
    """

    namespace: str = "df"
    partitions: int = DEFAULT_PARTITIONS
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions must be between 1 and 1024, not {self.partitions}")
        if not self.namespace or any(c in self.namespace for c in " #*"):
            raise ValueError(f"invalid namespace {self.namespace!r}")

    # --- orchestrator partitions -------------------------------------------------------------

    @property
    def orchestrator_exchange(self) -> str:
        return f"{self.namespace}.orchestrator"

    def partition_for(self, instance_id: str) -> int:
        """The partition that owns ``instance_id``: ``crc32(instance_id) % partitions``."""
        return zlib.crc32(instance_id.encode()) % self.partitions

    def partition_routing_key(self, partition: int) -> str:
        return f"p{partition:02d}"

    def partition_queue(self, partition: int) -> str:
        return f"{self.namespace}.orchestrator.{self.partition_routing_key(partition)}"

    def orchestrator_route(self, instance_id: str) -> tuple[str, str]:
        """(exchange, routing key) of the partition queue that owns ``instance_id``."""
        return (
            self.orchestrator_exchange,
            self.partition_routing_key(self.partition_for(instance_id)),
        )

    # --- activities --------------------------------------------------------------------------

    @property
    def activities_exchange(self) -> str:
        return f"{self.namespace}.activities"

    def activity_queue(self, activity_name: str) -> str:
        return f"{self.namespace}.activity.{activity_name}"

    def activity_route(self, activity_name: str) -> tuple[str, str]:
        return self.activities_exchange, activity_name

    # --- dead letters ------------------------------------------------------------------------

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    def dead_letter_queue(self, queue: str) -> str:
        return f"{queue}.dlq"

    # --- declarations ------------------------------------------------------------------------

    def _work_queue(self, name: str, *, single_active_consumer: bool) -> QueueSpec:
        arguments: QueueArguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.dead_letter_queue(name),
            # At-least-once dead-lettering needs reject-publish overflow; without it a
            # dead-lettered message can be lost when the broker restarts mid-transfer.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        if single_active_consumer:
            arguments["x-single-active-consumer"] = True
        return QueueSpec(name, arguments)

    def _dead_letter_queue(self, queue: str) -> QueueSpec:
        return QueueSpec(self.dead_letter_queue(queue), {"x-queue-type": "quorum"})

    def exchanges(self) -> list[ExchangeSpec]:
        return [
            ExchangeSpec(self.orchestrator_exchange, "direct"),
            ExchangeSpec(self.activities_exchange, "direct"),
            ExchangeSpec(self.dead_letter_exchange, "direct"),
        ]

    def orchestrator_declarations(self) -> tuple[list[QueueSpec], list[BindingSpec]]:
        """Partition queues (single active consumer each), their dead-letter queues, bindings."""
        queues: list[QueueSpec] = []
        bindings: list[BindingSpec] = []
        for partition in range(self.partitions):
            name = self.partition_queue(partition)
            queues += [self._work_queue(name, single_active_consumer=True)]
            queues += [self._dead_letter_queue(name)]
            bindings += [
                BindingSpec(
                    name, self.orchestrator_exchange, self.partition_routing_key(partition)
                ),
                BindingSpec(
                    self.dead_letter_queue(name),
                    self.dead_letter_exchange,
                    self.dead_letter_queue(name),
                ),
            ]
        return queues, bindings

    def activity_declarations(
        self, activity_name: str
    ) -> tuple[list[QueueSpec], list[BindingSpec]]:
        """An activity's competing-consumer queue, its dead-letter queue and their bindings."""
        name = self.activity_queue(activity_name)
        dlq = self.dead_letter_queue(name)
        return (
            [self._work_queue(name, single_active_consumer=False), self._dead_letter_queue(name)],
            [
                BindingSpec(name, self.activities_exchange, activity_name),
                BindingSpec(dlq, self.dead_letter_exchange, dlq),
            ],
        )
