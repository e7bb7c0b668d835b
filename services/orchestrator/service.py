"""The orchestrator service as one process runs it: settings → pool → store → handler →
membership → partition consumers. ``python -m services.orchestrator`` (``__main__``) starts
it, in each process when there are several. The process consumes the partitions it holds
leases on (``leases``, ADR 27), whichever they are at the moment (``assignments``).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from aio_pika.abc import AbstractConnection

from durable.broker import Publisher
from durable.store.database import create_pool
from durable.store.leases import Lease, session_name
from durable.store.registered_functions import record_registered_functions
from services.common.consuming import ConnectionSupervisor
from services.common.lifecycle import run_service, stop_event_on_signals
from services.common.loader import load_function_apps
from services.common.migrate import prepare_schema
from services.common.observability_port import serve_in_process
from services.common.readiness import ReadinessMonitor
from services.orchestrator.assignments import Assignments
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.leases import LeaseKeeper, default_member_id
from services.orchestrator.local import LocalActivities
from services.orchestrator.processes import PORT_SETTING
from services.orchestrator.readiness import orchestrator_checks
from services.orchestrator.relay import OutboxRelay
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.timers import TimerSweeper
from services.orchestrator.turns import Turns
from services.orchestrator.versions import VersionGate

log = structlog.get_logger("services.orchestrator")

_CACHE_SWEEP_SECONDS = 10.0


async def run(settings: OrchestratorSettings, monitor: ReadinessMonitor) -> None:
    stopping = stop_event_on_signals()
    functions = load_function_apps(settings.modules)
    topology = settings.topology
    member = settings.member_id or default_member_id()
    pool = await create_pool(
        settings.database_url,
        min_size=2,
        max_size=settings.pool_size_per_process,
        server_settings=session_settings(settings, member),
        command_timeout=settings.database_timeout_seconds,
    )
    # The lease keeper's own connections, whose calls may take a lease at most: a member
    # whose database stops answering gives its partitions up after about two leases, rather
    # than waiting as long as any call may.
    lease_pool = await create_pool(
        settings.database_url,
        min_size=1,
        max_size=2,
        server_settings={"application_name": session_name(topology.namespace, member)},
        command_timeout=settings.lease_seconds,
    )
    async with pool.acquire() as connection:
        await prepare_schema(connection, migrate=settings.migrate_on_start)
    await record_registered_functions(
        pool, "orchestrator", functions.orchestrators, functions.protected_events
    )
    await record_registered_functions(pool, "entity", functions.entities)

    publisher = await Publisher.open(
        settings.amqp_url, topology, "orchestrator.publish", delays=True
    )
    # Built below; the sweepers ask it, when they run, which partitions are this process's.
    keeper: LeaseKeeper
    consuming: ConnectionSupervisor
    relay = OutboxRelay(
        pool,
        publisher,
        grace_seconds=settings.outbox_grace_seconds,
        leases=lambda: list(keeper.held.values()),
    )
    timers = TimerSweeper(
        pool,
        publisher,
        topology,
        grace_seconds=settings.timer_grace_seconds,
        # The sweeper's reach is every timer: the holder of partition 0 runs it.
        lease=lambda: keeper.lease(0),
    )
    local = None
    if any(definition.local for definition in functions.activities.values()):
        local = LocalActivities(functions, topology, threads=settings.local_activity_threads)
    cache = InstanceCache(settings.cache_instances, settings.cache_idle_seconds)
    turns = Turns()
    handler = OrchestrationHandler(
        pool,
        functions,
        cache,
        topology,
        keep_continued_history=settings.keep_continued_history,
        local=local,
        inline_seconds=settings.local_inline_seconds,
        activity_batch=settings.activity_batch,
        versions=VersionGate(settings.version_policy, topology, settings.version_retry_seconds),
        turns=turns,
    )

    def lease_lost(partition: int) -> None:
        # Called from the partition's own worker: the keeper stops it from another task.
        keeper.lost(partition)

    def consumer_for(lease: Lease) -> PartitionConsumer:
        return PartitionConsumer(
            lease.partition,
            handler,
            relay,
            publisher,
            topology,
            batch_size=settings.batch_size,
            prefetch=settings.prefetch,
            local=local,
            lease=lease,
            on_lease_lost=lease_lost,
            turns=turns,
        )

    assignments = Assignments(consumer_for, cache, topology.partition_for)

    async def released(lease: Lease) -> None:
        # Handed over to another member: quickly, the other leases must still be renewed;
        # at a stop, as long as a stop may take.
        timeout = settings.shutdown_seconds if stopping.is_set() else settings.lease_seconds / 3
        await assignments.stop(lease, timeout)

    async def lost(lease: Lease) -> None:
        await assignments.stop(lease, 0.0, lost=True)

    keeper = LeaseKeeper(
        lease_pool,
        topology.namespace,
        settings.partitions,
        member=member,
        lease_seconds=settings.lease_seconds,
        on_acquired=assignments.start,
        on_released=released,
        on_lost=lost,
    )

    async def attach(connection: AbstractConnection) -> None:
        await assignments.attach(connection, consuming.watch)

    async def detach() -> None:
        assignments.detach()

    consuming = ConnectionSupervisor(settings.amqp_url, "orchestrator.consume", attach, detach)
    connection_keeper = await consuming.start(stopping)
    await keeper.join()
    background = [
        connection_keeper,
        asyncio.create_task(keeper.run(stopping), name="lease-keeper"),
        asyncio.create_task(relay.run_sweeper(stopping), name="outbox-sweeper"),
        asyncio.create_task(timers.run(stopping), name="timer-sweeper"),
        asyncio.create_task(_evict_idle(cache, stopping), name="cache-eviction"),
        asyncio.create_task(
            monitor.run(
                orchestrator_checks(pool, consuming, publisher, keeper, assignments), stopping
            ),
            name="readiness",
        ),
    ]
    log.info(
        "service.ready",
        member=keeper.member,
        partitions=sorted(keeper.held),
        orchestrators=sorted(functions.orchestrators),
        local_activities=sorted(n for n, d in functions.activities.items() if d.local),
        namespace=topology.namespace,
    )

    await stopping.wait()
    log.info("service.stopping")
    try:
        await keeper.leave()
    except Exception as error:
        # The leases expire on their own; the consumers still stop below.
        log.warning("member.leave_failed", error=repr(error))
    await assignments.stop_all(settings.shutdown_seconds)
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await consuming.close()
    if local is not None:
        local.close()
    await relay.close()
    await publisher.close()
    await lease_pool.close()
    await pool.close()
    log.info("service.stopped")


async def _evict_idle(cache: InstanceCache, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), _CACHE_SWEEP_SECONDS)
        evicted = cache.evict_idle()
        if evicted:
            log.debug("cache.evicted_idle", count=evicted, cached=len(cache))


def serve(
    settings: OrchestratorSettings,
    port: tuple[str, int] | None = None,
    readiness_report: Path | None = None,
) -> None:
    """Run the service until a signal stops it, serving its observability ``port`` (host,
    port), or telling its supervisor whether it is ready in ``readiness_report``."""
    monitor = ReadinessMonitor(readiness_report)
    observability = serve_in_process(port, monitor, PORT_SETTING)
    try:
        run_service("orchestrator", run(settings, monitor))
    finally:
        if observability is not None:
            observability.close()


def session_settings(settings: OrchestratorSettings, member: str) -> dict[str, str]:
    """The Postgres parameters of the orchestrator's sessions (its pool's connections)."""
    return {
        "application_name": session_name(settings.topology.namespace, member),
        # A process paused inside a transaction (SIGSTOP, a frozen VM) would keep its
        # instances' rows locked, and the member that took its partitions waiting on them,
        # for as long as the pause lasts. The other members end the sessions named for it
        # once it has lapsed; Postgres itself ends one idle in its transaction for a lease
        # (ADR 27). Either way its lease has gone, and its writes would be refused anyway.
        "idle_in_transaction_session_timeout": str(round(settings.lease_seconds * 1000)),
        # Every statement planned for its own arguments: a generic plan is kept for the
        # life of a connection, and one made while the timers table was empty scanned
        # all of it for each batch once it held 100,000 timers (W5 after W2: 1,870 scans
        # reading 47 million rows in 10 s, the fires late by a quarter of a second).
        "plan_cache_mode": "force_custom_plan",
    }
