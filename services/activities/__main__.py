"""The activities service: settings → function apps → one consumer per activity queue.

Run with ``python -m services.activities``; configure with ``DF_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aio_pika.abc import AbstractConnection

from contracts import limits
from durable.broker import Publisher
from durable.declarations import declare_activity_queues
from durable.store.database import create_pool
from durable.store.registered_functions import record_registered_functions
from services.activities.http_calls import http_functions
from services.activities.readiness import activities_checks
from services.activities.settings import ActivitiesSettings
from services.activities.worker import ActivityWorker
from services.common.consuming import ConnectionSupervisor
from services.common.lifecycle import run_service, stop_event_on_signals
from services.common.loader import load_function_apps
from services.common.logging import configure_logging
from services.common.migrate import prepare_schema
from services.common.observability_port import serve_in_process
from services.common.readiness import ReadinessMonitor
from services.common.tracing import start_tracing

log = structlog.get_logger("services.activities")


PORT_SETTING = "DF_ACTIVITIES_OBSERVABILITY_PORT"


async def run(settings: ActivitiesSettings, monitor: ReadinessMonitor) -> None:
    stopping = stop_event_on_signals()
    functions = load_function_apps(settings.modules)
    functions.merge(
        http_functions(
            timeout_seconds=settings.call_http_timeout_seconds,
            max_response_bytes=settings.call_http_max_response_bytes,
            allowed_hosts=settings.call_http_allowed_hosts.split(","),
        )
    )
    topology = settings.topology

    pool = await create_pool(
        settings.database_url,
        min_size=1,
        max_size=2,
        command_timeout=settings.database_timeout_seconds,
    )
    try:
        async with pool.acquire() as connection:
            await prepare_schema(connection, migrate=settings.migrate_on_start)
        await record_registered_functions(pool, "activity", functions.activities)
    finally:
        await pool.close()

    publisher = await Publisher.open(settings.amqp_url, topology, "activities.publish")
    worker = ActivityWorker(
        functions,
        publisher,
        topology,
        prefetch=settings.activity_prefetch,
        threads=settings.activity_threads,
    )

    async def attach(connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await declare_activity_queues(channel, topology, functions.activities)
        await channel.close()
        await worker.attach(connection, consuming.watch)

    async def detach() -> None:
        worker.detach()

    consuming = ConnectionSupervisor(settings.amqp_url, "activities.consume", attach, detach)
    keeper = await consuming.start(stopping)
    readiness = asyncio.create_task(
        monitor.run(activities_checks(consuming, publisher, worker), stopping), name="readiness"
    )
    log.info("service.ready", activities=sorted(functions.activities), namespace=topology.namespace)

    await stopping.wait()
    log.info("service.stopping")
    await worker.stop(settings.shutdown_seconds)
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await readiness
    await consuming.close()
    await publisher.close()
    log.info("service.stopped")


def main() -> None:
    settings = ActivitiesSettings()
    configure_logging("activities", settings)
    start_tracing("activities")
    limits.configure(settings.limits)
    monitor = ReadinessMonitor()
    port = settings.activities_observability_port
    address = None if port is None else (settings.observability_host, port)
    observability = serve_in_process(address, monitor, PORT_SETTING)
    try:
        run_service("activities", run(settings, monitor))
    finally:
        if observability is not None:
            observability.close()


if __name__ == "__main__":
    main()
