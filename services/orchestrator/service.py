"""The orchestrator service as one process runs it: settings → pool → store → handler →
partition consumers. ``python -m services.orchestrator`` (``__main__``) starts it, in each
process when there are several.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aio_pika.abc import AbstractConnection

from durable.broker import Publisher
from durable.store.database import create_pool
from durable.store.registered_functions import record_registered_functions
from services.common.consuming import ConnectionSupervisor
from services.common.lifecycle import run_service, stop_event_on_signals
from services.common.loader import load_function_apps
from services.common.migrate import apply_migrations
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.local import LocalActivities
from services.orchestrator.relay import OutboxRelay
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.timers import TimerSweeper

log = structlog.get_logger("services.orchestrator")

_CACHE_SWEEP_SECONDS = 10.0


async def run(settings: OrchestratorSettings, partitions: list[int]) -> None:
    stopping = stop_event_on_signals()
    functions = load_function_apps(settings.modules)
    topology = settings.topology
    pool = await create_pool(
        settings.database_url, min_size=2, max_size=settings.pool_size_per_process
    )
    async with pool.acquire() as connection:
        await apply_migrations(connection)
    await record_registered_functions(
        pool, "orchestrator", functions.orchestrators, functions.protected_events
    )

    publisher = await Publisher.open(
        settings.amqp_url, topology, "orchestrator.publish", delays=True
    )
    relay = OutboxRelay(
        pool,
        publisher,
        grace_seconds=settings.outbox_grace_seconds,
        partitions=partitions,
    )
    timers = TimerSweeper(pool, publisher, topology, grace_seconds=settings.timer_grace_seconds)
    local = None
    if any(definition.local for definition in functions.activities.values()):
        local = LocalActivities(functions, topology, threads=settings.local_activity_threads)
    cache = InstanceCache(settings.cache_instances, settings.cache_idle_seconds)
    handler = OrchestrationHandler(
        pool,
        functions,
        cache,
        topology,
        keep_continued_history=settings.keep_continued_history,
        local=local,
        inline_seconds=settings.local_inline_seconds,
        activity_batch=settings.activity_batch,
    )
    consumers = [
        PartitionConsumer(
            partition,
            handler,
            relay,
            publisher,
            topology,
            batch_size=settings.batch_size,
            prefetch=settings.prefetch,
            local=local,
        )
        for partition in partitions
    ]
    for consumer in consumers:
        consumer.start_worker()

    async def attach(connection: AbstractConnection) -> None:
        for consumer in consumers:
            await consumer.attach(connection, consuming.watch)

    async def detach() -> None:
        for consumer in consumers:
            consumer.detach()

    consuming = ConnectionSupervisor(settings.amqp_url, "orchestrator.consume", attach, detach)
    keeper = await consuming.start(stopping)
    background = [
        keeper,
        asyncio.create_task(relay.run_sweeper(stopping), name="outbox-sweeper"),
        asyncio.create_task(timers.run(stopping), name="timer-sweeper"),
        asyncio.create_task(_evict_idle(cache, stopping), name="cache-eviction"),
    ]
    log.info(
        "service.ready",
        partitions=partitions,
        orchestrators=sorted(functions.orchestrators),
        local_activities=sorted(n for n, d in functions.activities.items() if d.local),
        namespace=topology.namespace,
    )

    await stopping.wait()
    log.info("service.stopping")
    await asyncio.gather(*(c.stop(settings.shutdown_seconds) for c in consumers))
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await consuming.close()
    if local is not None:
        local.close()
    await relay.close()
    await publisher.close()
    await pool.close()
    log.info("service.stopped")


async def _evict_idle(cache: InstanceCache, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), _CACHE_SWEEP_SECONDS)
        evicted = cache.evict_idle()
        if evicted:
            log.debug("cache.evicted_idle", count=evicted, cached=len(cache))


def serve(settings: OrchestratorSettings, partitions: list[int]) -> None:
    """Run the service on ``partitions`` until a signal stops it."""
    run_service("orchestrator", run(settings, partitions))
