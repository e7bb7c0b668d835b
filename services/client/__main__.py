"""The client service: Durable Functions' HTTP API, and the broker entry points the deployment's
settings name (``DF_ENTRY_POINTS``, ``services.client.entry_points``) alongside it.

Run with ``python -m services.client``; configure with ``DF_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import structlog
import uvicorn
from aio_pika.abc import AbstractConnection

from contracts import limits
from durable.broker import Publisher
from durable.client import DurableClient
from durable.entry_points import EntryPoint, EntryPoints
from durable.store.database import create_pool
from services.client.api import create_app
from services.client.auth import AccessKeys, AccessKeysError
from services.client.entry_points import EntryPointConsumers
from services.client.settings import ClientSettings
from services.common.consuming import ConnectionSupervisor
from services.common.lifecycle import run_service, stop_event_on_signals
from services.common.loader import load_entry_points
from services.common.logging import configure_logging
from services.common.migrate import prepare_schema
from services.common.tracing import start_tracing

log = structlog.get_logger("services.client")


async def serve(settings: ClientSettings, declared: EntryPoints) -> None:
    # Installed before uvicorn's own handlers: uvicorn re-raises the signal once it has shut
    # down, which then sets this event instead of killing the process before the clean-up.
    stopping = stop_event_on_signals()
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await prepare_schema(connection, migrate=settings.migrate_on_start)
    finally:
        await pool.close()
    async with await DurableClient.connect(settings, name="client-service") as client:
        server: uvicorn.Server | None = None

        def server_stopping() -> bool:
            # uvicorn takes the signals while it serves; it marks its own stop here.
            return server is not None and server.should_exit

        app = create_app(settings, client, stopping=server_stopping)
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
            # Requests still running this long after a stop are cancelled: a stop ends the
            # service in bounded time, whatever its callers do.
            timeout_graceful_shutdown=max(int(settings.shutdown_seconds), 1),
            # uvicorn's loggers then propagate to the handler configure_logging installed,
            # so its lines (tracebacks of errors included) are rendered and masked alike.
            log_config=None,
        )
        server = uvicorn.Server(config)
        if not (declared.entry_points or declared.exchanges):
            await server.serve()
            return
        # The consumers start before the API answers, so a deployment that is "ready" (its
        # health check passes) already takes the messages of its entry points.
        publisher = await Publisher.open(
            settings.amqp_url, settings.topology, "client-service.dead-letters"
        )
        consumers = EntryPointConsumers(client, publisher, settings.topology, declared)
        app.state.consumers_readiness = consumers.readiness

        async def attach(connection: AbstractConnection) -> None:
            await consumers.attach(connection, consuming.watch)

        async def detach() -> None:
            consumers.detach()

        consuming = ConnectionSupervisor(
            settings.amqp_url, "client-service.consume", attach, detach
        )
        keeper = await consuming.start(stopping)
        try:
            await server.serve()
        finally:
            stopping.set()
            await consumers.stop(timeout=settings.shutdown_seconds)
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await consuming.close()
            await publisher.close()
            log.info("service.stopped")


def main() -> None:
    settings = ClientSettings()
    configure_logging("client", settings)
    start_tracing("client")
    limits.configure(settings.limits)
    try:
        keys = AccessKeys.from_settings(settings)
    except AccessKeysError as error:
        log.error("service.cannot_start", error=str(error), hint="see README, Configuration")
        sys.exit(2)
    try:
        declared = load_entry_points(settings)
    except Exception as error:  # an unknown reference, or a declaration refusing its settings
        log.error("service.cannot_start", error=str(error), hint="check DF_ENTRY_POINTS")
        sys.exit(2)
    for entry in declared.entry_points:
        log.info("entry_point.declared", queue=entry.queue, message=entry.title, **_senders(entry))
    if keys.disabled:
        log.warning("http.access_keys_disabled", hint="anyone who reaches the port has full access")
    run_service("client", serve(settings, declared))


def _senders(entry: EntryPoint[Any]) -> dict[str, object]:
    """What a start-up line says about who may publish to an entry point."""
    if entry.senders is None:
        return {"senders": "unchecked"}
    identities = entry.senders.identities
    return {"mapped_people": len(identities.broker_users), "gateways": sorted(identities.gateways)}


if __name__ == "__main__":
    main()
