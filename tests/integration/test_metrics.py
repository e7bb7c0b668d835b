"""The handler, the activity worker and the outbox relay count what they do, on the real
Postgres and RabbitMQ: once per committed batch, however often a batch is tried."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aio_pika.abc import AbstractConnection

from contracts import Topology
from durable import FunctionApp
from durable.broker import OutgoingMessage, Publisher
from durable.store.errors import ConcurrencyError
from durable.store.outbox import insert_outbox_txn
from services.activities.worker import ActivityWorker
from services.orchestrator.cache import InstanceCache
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.conftest import unique
from tests.helpers.metrics import sample
from tests.helpers.waiting import assert_eventually
from tests.integration import messages
from tests.integration.stored import handle

CITIES = ["Tokyo", "Seattle", "Cairo"]


class Deltas:
    """How much samples moved since this was made."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self._series = series
        self._before = [sample(name, **labels) for name, labels in series]

    def now(self) -> list[float]:
        return [
            sample(name, **labels) - before
            for (name, labels), before in zip(self._series, self._before, strict=True)
        ]


def of(name: str, **labels: str) -> tuple[str, dict[str, str]]:
    return name, labels


async def test_a_run_of_hello_cities_counts_its_start_its_steps_and_its_completion_once(
    pool: asyncpg.Pool, new_handler: Callable[..., OrchestrationHandler]
) -> None:
    handler = new_handler()
    instance_id = unique("metrics-")
    start = messages.start(instance_id, "hello_cities", CITIES)
    execution = messages.execution_of(start)
    deltas = Deltas(
        of("durable_orchestrations_started_total", orchestrator="hello_cities"),
        of("durable_orchestrations_ended_total", orchestrator="hello_cities", outcome="completed"),
        of("durable_activities_scheduled_total", activity="say_hello"),
        of("durable_orchestrator_episode_duration_seconds_count", orchestrator="hello_cities"),
        of("durable_orchestrator_batch_messages_sum"),
        of("durable_instance_cache_misses_total"),
        of("durable_instance_cache_hits_total"),
    )

    await handle(handler, pool, [start])
    # A start delivered again: dropped as a duplicate, so it starts nothing and counts nothing.
    await handle(handler, pool, [start])
    for task_id, city in enumerate(CITIES):
        done = messages.task_completed(instance_id, execution, task_id, f"Hello {city}!")
        await handle(handler, pool, [done])

    started, completed, scheduled, episodes, batched, misses, hits = deltas.now()
    assert (started, completed, scheduled) == (1, 1, 3)
    assert episodes == 1 + len(CITIES)
    assert batched == 2 + len(CITIES)
    assert (misses, hits) == (1, 1 + len(CITIES))


async def test_a_batch_that_fails_to_commit_counts_only_when_it_is_retried_and_commits(
    pool: asyncpg.Pool, new_handler: Callable[..., OrchestrationHandler]
) -> None:
    stale, other = new_handler(), new_handler()
    instance_id = unique("metrics-")
    start = messages.start(instance_id, "hello_cities", CITIES)
    execution = messages.execution_of(start)
    await handle(stale, pool, [start])
    # Another writer steps the instance: ``stale``'s cached copy is behind the store.
    await handle(other, pool, [messages.task_completed(instance_id, execution, 0, "Hello!")])
    deltas = Deltas(
        of("durable_events_raised_total", orchestrator="hello_cities"),
        of("durable_orchestrator_episode_duration_seconds_count", orchestrator="hello_cities"),
        of("durable_orchestrator_batch_messages_count"),
    )
    second = messages.event_raised(instance_id, execution, "Nudge", "hi")

    with pytest.raises(ConcurrencyError):
        await stale.handle([second])
    assert deltas.now() == [0, 0, 0]

    await handle(stale, pool, [second])  # the consumer's retry: rebuilt from the store
    assert deltas.now() == [1, 1, 1]


async def test_a_timer_fired_late_is_counted_with_its_lateness(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology
) -> None:
    now = datetime.now(UTC)
    handler = OrchestrationHandler(pool, functions, InstanceCache(), topology, clock=lambda: now)
    instance_id = unique("metrics-")
    deltas = Deltas(
        of("durable_timers_scheduled_total"),
        of("durable_timers_fired_total"),
        of("durable_timer_lateness_seconds_sum"),
        of("durable_orchestrations_ended_total", orchestrator="sleeper", outcome="completed"),
    )

    committed = await handler.handle([messages.start(instance_id, "sleeper", 1)])
    [fire] = committed.held_fires  # due within the cascade's margin: held, not published
    now += timedelta(seconds=3.5)  # released 2.5 s after it was due
    await handler.handle([fire])

    scheduled, fired, lateness, completed = deltas.now()
    assert (scheduled, fired, completed) == (1, 1, 1)
    assert lateness == pytest.approx(2.5)


async def test_the_worker_counts_each_execution_by_activity_and_outcome_and_its_dead_letters(
    worker: ActivityWorker,
    amqp_connection: AbstractConnection,
    publisher: Publisher,
    private_topology: Topology,
) -> None:
    count = "durable_activity_duration_seconds_count"
    queue = private_topology.activity_queue("echo")
    deltas = Deltas(
        of(count, activity="echo", outcome="completed"),
        of(count, activity="always_fails", outcome="failed"),
        of("durable_dead_lettered_messages_total", queue=queue),
    )
    await worker.attach(amqp_connection)
    exchange, routing_key = private_topology.activity_route("echo")
    await publisher.publish_many(
        [
            OutgoingMessage.of(
                messages.activity_task(unique("m-"), "echo", 1), exchange, routing_key
            ),
            OutgoingMessage.of(
                messages.activity_task(unique("m-"), "always_fails", 2),
                *private_topology.activity_route("always_fails"),
            ),
            OutgoingMessage(
                exchange=exchange,
                routing_key=routing_key,
                message_id=unique("garbage-"),
                correlation_id="garbage",
                message_type="ActivityTask",
                body=b"not json",
            ),
        ]
    )

    async def counted() -> bool:
        assert deltas.now() == [1, 1, 1]
        return True

    await assert_eventually(counted, timeout=15)


async def test_the_outbox_backlog_is_measured_for_the_partitions_the_process_holds(
    private_pool: asyncpg.Pool, publisher: Publisher, private_topology: Topology
) -> None:
    exchange, routing_key = private_topology.activity_route("echo")
    waiting = [
        OutgoingMessage.of(messages.activity_task(unique("m-"), "echo", i), exchange, routing_key)
        for i in range(3)
    ]
    async with private_pool.acquire() as connection, connection.transaction():
        await insert_outbox_txn(connection, waiting, partition=1)

    await OutboxRelay(private_pool, publisher, partitions=[1, 2]).measure_backlog()
    assert sample("durable_outbox_rows") == 3
    assert sample("durable_outbox_oldest_age_seconds") >= 0

    await OutboxRelay(private_pool, publisher, partitions=[2]).measure_backlog()
    assert (sample("durable_outbox_rows"), sample("durable_outbox_oldest_age_seconds")) == (0, 0)
