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
from services.activities.settings import ActivitiesSettings
from services.activities.worker import ActivityWorker
from services.common.consuming import ConnectionSupervisor
from services.common.lifecycle import run_service, stop_event_on_signals
from services.common.loader import load_function_apps
from services.common.logging import configure_logging
from services.common.migrate import apply_migrations
from services.common.tracing import start_tracing

log = structlog.get_logger("services.activities")


async def run(settings: ActivitiesSettings) -> None:
    stopping = stop_event_on_signals()
    functions = load_function_apps(settings.modules)
    topology = settings.topology

    pool = await create_pool(
        settings.database_url,
        min_size=1,
        max_size=2,
        command_timeout=settings.database_timeout_seconds,
    )
    try:
        async with pool.acquire() as connection:
            await apply_migrations(connection)
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
    log.info("service.ready", activities=sorted(functions.activities), namespace=topology.namespace)

    await stopping.wait()
    log.info("service.stopping")
    await worker.stop(settings.shutdown_seconds)
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await consuming.close()
    await publisher.close()
    log.info("service.stopped")


def main() -> None:
    settings = ActivitiesSettings()
    configure_logging("activities", settings)
    start_tracing("activities")
    limits.configure(settings.limits)
    run_service("activities", run(settings))


if __name__ == "__main__":
    main()
