"""Every exchange, queue, routing key and queue argument of the system, as data.

All services declare the same topology from here (declaring is idempotent), so no service
depends on another having started first. ``namespace`` prefixes every name, which lets several
deployments (or test runs) share one broker.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

ExchangeType = Literal["direct", "topic", "fanout"]
QueueArguments = dict[str, str | int | bool]

# Queue names are AMQP short strings (255 bytes): the longest, an activity's dead-letter
# queue, is the namespace, ".activity.", a name of up to 200 characters and ".dlq".
_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

DEFAULT_PARTITIONS = 16
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType
    arguments: QueueArguments = field(default_factory=dict)


QUORUM_GROUP_SIZE_ARGUMENT = "x-quorum-initial-group-size"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: QueueArguments = field(default_factory=dict)

    def with_quorum_group_size(self, size: int) -> QueueSpec:
        """This queue with ``size`` replicas when it is created (0: the broker's default)."""
        arguments = {k: v for k, v in self.arguments.items() if k != QUORUM_GROUP_SIZE_ARGUMENT}
        if size > 0:
            arguments[QUORUM_GROUP_SIZE_ARGUMENT] = size
        return QueueSpec(self.name, arguments)


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class ExchangeBindingSpec:
    """Messages published to ``source`` with a matching key also go to ``destination``."""

    destination: str
    source: str
    routing_key: str


DELAY_LEVELS = 28
"""Delay levels 27..0; level ``n`` holds messages for 2^n seconds. Longest delay: 2^28 - 1 s
(about 8.5 years); a longer timer is re-delayed when it arrives."""

MAX_DELAY_SECONDS = 2**DELAY_LEVELS - 1


@dataclass(frozen=True)
class Topology:
    """Names and arguments for one deployment.

    Attributes:
        namespace: prefix of every exchange and queue name, the delay cascade's included
            (``<namespace>.timers.*``), so a deployment's broker user needs no right outside
            its namespace (ADR 35).
        partitions: number of orchestrator partitions; every publisher must agree on it,
            because it decides which queue an instance's messages go to.
        delivery_limit: deliveries of one message before the broker dead-letters it.
        quorum_group_size: how many nodes of the cluster each quorum queue is created on
            (``x-quorum-initial-group-size``); 0 leaves it to the broker, which on 3.10 takes
            its ``quorum_cluster_size`` (3 unless configured), or every node when there are
            fewer. Only a queue's creation uses it (ADR 28).
    """

    namespace: str = "df"
    partitions: int = DEFAULT_PARTITIONS
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    quorum_group_size: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions must be between 1 and 1024, not {self.partitions}")
        if self.quorum_group_size < 0:
            raise ValueError(f"quorum_group_size must be 0 or more, not {self.quorum_group_size}")
        # A namespace is one word of a topic routing key (delayed messages are routed by it).
        if not _NAMESPACE.match(self.namespace):
            raise ValueError(
                f"invalid namespace {self.namespace!r}: use letters, digits, '_' and '-', "
                "at most 40"
            )

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

    # --- durable timers: the binary delay-level cascade ---------------------------------------
    #
    # A delayed message's routing key spells its delay in seconds in binary, most significant
    # bit first, followed by the destination: "0.0.….1.0.1.<namespace>.p07". Level n is a
    # quorum queue whose fixed TTL is 2^n seconds (so a message is never stuck behind a longer
    # delay). The entry exchange routes a message straight to the level of its highest 1 bit;
    # when it expires there it is dead-lettered into that level's "after" exchange, which
    # routes it straight to the level of its next lower 1 bit, or, when none is left, to the
    # delivery exchange, where the deployment binds its partition queues by namespace and
    # partition (the namespace in the key let one cascade serve every deployment until ADR
    # 30; it stays, so fires still waiting in that old cascade reach their queues). Every
    # hop is one routing decision: chaining exchanges level by level instead (one
    # exchange-to-exchange hop per bit) measured fifteen times slower here.

    @property
    def delay_prefix(self) -> str:
        """Prefix of the delay cascade's exchanges and queues: the deployment's own (ADR 35;
        before, one cascade named ``durable.timers.*`` served every namespace, ADR 6)."""
        return f"{self.namespace}.timers"

    def delay_level_name(self, level: int) -> str:
        return f"{self.delay_prefix}.level.{level:02d}"

    def _delay_after_exchange(self, level: int) -> str:
        return f"{self.delay_prefix}.after.{level:02d}"

    @property
    def delay_entry_exchange(self) -> str:
        """Where delayed messages are published."""
        return f"{self.delay_prefix}.entry"

    @property
    def delay_delivery_exchange(self) -> str:
        return f"{self.delay_prefix}.delivery"

    @property
    def delay_orphans(self) -> str:
        """Exchange and queue for fires no partition queue is bound for (the partition queues
        were deleted while they waited, or the partition count was lowered). Without this sink
        they would be unroutable, and at-least-once dead-lettering keeps retrying unroutable
        messages, holding up every message behind them in the level."""
        return f"{self.delay_prefix}.orphans"

    def _delay_destination(self, partition: int) -> str:
        return f"{self.namespace}.{self.partition_routing_key(partition)}"

    def delay_routing_key(self, delay_seconds: int, instance_id: str) -> str:
        """The routing key that delays by ``delay_seconds`` and then delivers to the partition
        that owns ``instance_id``."""
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay must be 0..{MAX_DELAY_SECONDS} s, not {delay_seconds}")
        bits = ".".join(format(delay_seconds, f"0{DELAY_LEVELS}b"))
        return f"{bits}.{self._delay_destination(self.partition_for(instance_id))}"

    @staticmethod
    def _bits_pattern(consumed: int, zeros: int, then: str) -> str:
        """Skip ``consumed`` leading bits, require ``zeros`` zero bits, then ``then``."""
        return "*." * consumed + "0." * zeros + then

    def delay_declarations(
        self,
    ) -> tuple[list[ExchangeSpec], list[QueueSpec], list[BindingSpec], list[ExchangeBindingSpec]]:
        """Exchanges, queues and bindings of the deployment's delay cascade, its delivery
        exchange, and the bindings from the delivery exchange to its partition queues."""
        entry, delivery = self.delay_entry_exchange, self.delay_delivery_exchange
        orphans = self.delay_orphans
        exchanges = [
            ExchangeSpec(orphans, "fanout"),
            ExchangeSpec(entry, "topic"),
            ExchangeSpec(delivery, "topic", {"alternate-exchange": orphans}),
        ]
        queues = [
            self._quorum_queue(
                orphans,
                {
                    "x-message-ttl": 7 * 24 * 3600 * 1000,
                    "x-max-length": 100_000,
                    "x-overflow": "drop-head",
                },
            )
        ]
        bindings = [BindingSpec(orphans, orphans, "")]
        exchange_bindings = [
            ExchangeBindingSpec(delivery, entry, self._bits_pattern(0, DELAY_LEVELS, "#"))
        ]
        for level in range(DELAY_LEVELS):
            name, after = self.delay_level_name(level), self._delay_after_exchange(level)
            consumed = DELAY_LEVELS - level  # bits of this level and above
            exchanges.append(ExchangeSpec(after, "topic"))
            queues.append(
                self._quorum_queue(
                    name,
                    {
                        "x-message-ttl": (2**level) * 1000,
                        "x-dead-letter-exchange": after,
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",
                    },
                )
            )
            # From the entry: a highest 1 bit at this level.
            bindings.append(
                BindingSpec(name, entry, self._bits_pattern(0, DELAY_LEVELS - 1 - level, "1.#"))
            )
            # From a higher level's "after" exchange: the next 1 bit is at this level.
            for higher in range(level + 1, DELAY_LEVELS):
                skipped = DELAY_LEVELS - higher
                pattern = self._bits_pattern(skipped, higher - 1 - level, "1.#")
                bindings.append(BindingSpec(name, self._delay_after_exchange(higher), pattern))
            # No 1 bit left below this level: deliver.
            exchange_bindings.append(
                ExchangeBindingSpec(delivery, after, self._bits_pattern(consumed, level, "#"))
            )
        for partition in range(self.partitions):
            bindings.append(
                BindingSpec(
                    self.partition_queue(partition),
                    delivery,
                    f"#.{self._delay_destination(partition)}",
                )
            )
        return exchanges, queues, bindings, exchange_bindings

    # --- workflows' own queues and exchanges (broker entry points, ADR 26) -------------------
    #
    # A workflow names the queues outside systems publish to, and the exchanges it publishes
    # to, within the namespace ("orders.placed" is "<namespace>.orders.placed"). Its queues are
    # work queues like the others: a delivery limit and a dead-letter queue. Each has an
    # exchange of the same name, a fanout bound to it alone, through which outside systems
    # publish: a broker user with write on that exchange can reach that queue and nothing
    # else, which the default exchange (every queue by name) cannot offer (ADR 36).

    def workflow_name(self, name: str) -> str:
        """The full name of a workflow's queue or exchange ``name``."""
        return f"{self.namespace}.{name}"

    def entry_exchange(self, queue: str) -> str:
        """The exchange (full name) that routes to the entry point queue ``queue`` (full
        name) and to nothing else: the same name, for exchanges and queues are apart."""
        return queue

    def entry_exchange_declarations(self, queues: Iterable[str]) -> list[ExchangeSpec]:
        """The entry points' own exchanges, one per queue (full names); a fanout, so any
        routing key reaches the queue (the queue's name, as through the default exchange)."""
        return [ExchangeSpec(self.entry_exchange(name), "fanout") for name in queues]

    def entry_queue_declarations(
        self, queues: Iterable[str]
    ) -> tuple[list[QueueSpec], list[BindingSpec]]:
        """Work queues (full names) outside systems publish to, with their dead-letter queues
        and bindings: each to its own exchange (``entry_exchange_declarations``, declared
        first), each dead-letter queue to the dead-letter exchange."""
        specs: list[QueueSpec] = []
        bindings: list[BindingSpec] = []
        for name in queues:
            dlq = self.dead_letter_queue(name)
            specs += [
                self._work_queue(name, single_active_consumer=False),
                self._dead_letter_queue(name),
            ]
            bindings.append(BindingSpec(name, self.entry_exchange(name), ""))
            bindings.append(BindingSpec(dlq, self.dead_letter_exchange, dlq))
        return specs, bindings

    # --- declarations ------------------------------------------------------------------------

    def _quorum_queue(self, name: str, arguments: QueueArguments) -> QueueSpec:
        """A quorum queue with ``arguments``, created on ``quorum_group_size`` nodes."""
        spec = QueueSpec(name, {"x-queue-type": "quorum", **arguments})
        return spec.with_quorum_group_size(self.quorum_group_size)

    def _work_queue(self, name: str, *, single_active_consumer: bool) -> QueueSpec:
        arguments: QueueArguments = {
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
        return self._quorum_queue(name, arguments)

    def _dead_letter_queue(self, queue: str) -> QueueSpec:
        return self._quorum_queue(self.dead_letter_queue(queue), {})

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
