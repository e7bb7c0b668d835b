"""The delay cascade's routing, checked by simulating RabbitMQ's topic matching over the
declared bindings: every delay reaches its partition after exactly that many seconds."""

from __future__ import annotations

import random
from datetime import timedelta
from functools import cache

import pytest

from contracts import TimerCreated
from contracts.topology import DELAY_LEVELS, MAX_DELAY_SECONDS, Topology
from services.orchestrator.cache import InstanceState
from services.orchestrator.dispatch import ARRIVE_EARLY_SECONDS, delay_seconds, messages_for
from tests.helpers.history import T0

TOPOLOGY = Topology(namespace="ns", partitions=4)
EXCHANGES, QUEUES, BINDINGS, EXCHANGE_BINDINGS = TOPOLOGY.delay_declarations()
TTL = {
    q.name: int(q.arguments["x-message-ttl"]) // 1000
    for q in QUEUES
    if q.name != TOPOLOGY.delay_orphans
}
DEAD_LETTER = {q.name: str(q.arguments["x-dead-letter-exchange"]) for q in QUEUES if q.name in TTL}


def topic_matches(pattern: str, key: str) -> bool:
    words, parts = pattern.split("."), key.split(".")

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(parts)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and words[i] in ("*", parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


def route(exchange: str, key: str) -> list[str]:
    """Queues a message reaches from ``exchange``, following exchange-to-exchange bindings and
    the delivery exchange's alternate exchange."""
    queues = [
        b.queue for b in BINDINGS if b.exchange == exchange and topic_matches(b.routing_key, key)
    ]
    for link in EXCHANGE_BINDINGS:
        if link.source == exchange and topic_matches(link.routing_key, key):
            queues += route(link.destination, key)
    spec = next(x for x in EXCHANGES if x.name == exchange)
    if not queues and "alternate-exchange" in spec.arguments:
        queues = [b.queue for b in BINDINGS if b.exchange == spec.arguments["alternate-exchange"]]
    return queues


def travel(key: str) -> tuple[int, str]:
    """(seconds waited in the cascade, the queue the message finally reaches)."""
    waited, exchange = 0, TOPOLOGY.delay_entry_exchange
    for _ in range(DELAY_LEVELS + 1):
        (queue,) = route(exchange, key)
        if queue not in TTL:
            return waited, queue
        waited, exchange = waited + TTL[queue], DEAD_LETTER[queue]
    raise AssertionError(f"{key} did not leave the cascade")


DELAYS = [*range(0, 70), 1023, 1024, 86_400, 30 * 86_400, MAX_DELAY_SECONDS]
DELAYS += random.Random(3).sample(range(MAX_DELAY_SECONDS), 40)


@pytest.mark.parametrize("delay", DELAYS)
def test_every_delay_reaches_the_owning_partition_after_exactly_that_long(delay):
    key = TOPOLOGY.delay_routing_key(delay, "instance-7")

    waited, queue = travel(key)

    assert waited == delay
    assert queue == TOPOLOGY.partition_queue(TOPOLOGY.partition_for("instance-7"))


def test_a_fire_for_a_namespace_nobody_binds_goes_to_the_orphans_queue():
    ghost = Topology(namespace="ghost", partitions=4)

    _, queue = travel(ghost.delay_routing_key(5, "instance-7"))

    assert queue == TOPOLOGY.delay_orphans


def test_delays_out_of_range_are_refused():
    with pytest.raises(ValueError, match="delay must be"):
        TOPOLOGY.delay_routing_key(MAX_DELAY_SECONDS + 1, "i")


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(0.2, 0), (1.0, 0), (30.9, 0), (31.5, 1), (32.0, 2), (60.0, 30), (86_400.4, 86_370)],
)
def test_fires_leave_the_cascade_thirty_to_thirty_one_seconds_early(remaining, expected):
    assert delay_seconds(T0 + timedelta(seconds=remaining), T0) == expected
    assert ARRIVE_EARLY_SECONDS == 30


def test_timers_beyond_the_cascade_range_wait_its_longest_delay_and_go_round_again():
    years = timedelta(days=365 * 20)

    assert delay_seconds(T0 + years, T0) == MAX_DELAY_SECONDS


def test_timers_due_within_the_margin_are_held_and_later_ones_enter_the_cascade():
    state = InstanceState("i", "sleeper", "e", "c", last_seq=3, executor=None)
    soon, edge, later = (
        TimerCreated(event_id=n, timestamp=T0, fire_at=T0 + timedelta(seconds=s))
        for n, s in ((1, 2.5), (2, ARRIVE_EARLY_SECONDS + 0.9), (3, ARRIVE_EARLY_SECONDS + 40))
    )

    messages, held = messages_for(TOPOLOGY, state, [soon, edge, later], T0)

    assert [fire.body.timer_id for fire in held] == [1, 2]
    [message] = messages
    assert message.exchange == TOPOLOGY.delay_entry_exchange
    assert message.routing_key == TOPOLOGY.delay_routing_key(40, "i")
