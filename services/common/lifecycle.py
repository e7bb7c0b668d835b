"""Running a service: clear start-up errors, and a stop event set by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import aiormq
import asyncpg
import structlog

from services.common.loader import FunctionModuleError


def stop_event_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (a second one kills as usual)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        stopping.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)
    return stopping


def run_service(service: str, main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine; turn unreachable dependencies into one clear line.

    A missing database or an unreachable broker at start-up is a configuration problem, not a
    crash: it is reported with what to check, and the process exits with status 2.
    """
    log = structlog.get_logger(service)
    try:
        asyncio.run(main)
    except asyncpg.InvalidCatalogNameError as error:
        log.error(
            "service.cannot_start",
            error=str(error),
            hint="create it with `make migrate` (or `python -m services.common.migrate "
            "--create-database`), or point DF_DATABASE_URL at an existing database",
        )
        sys.exit(2)
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        aiormq.exceptions.AMQPConnectionError,
    ) as error:
        log.error(
            "service.cannot_start",
            error=repr(error),
            hint="is Postgres (DF_DATABASE_URL) and RabbitMQ (DF_AMQP_URL) reachable? "
            "`make services` starts the local ones",
        )
        sys.exit(2)
    except FunctionModuleError as error:
        log.error("service.cannot_start", error=str(error), hint="check DF_FUNCTION_MODULES")
        sys.exit(2)
