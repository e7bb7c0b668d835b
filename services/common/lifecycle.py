"""Running a service: clear start-up errors, and a stop event set by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import signal
import ssl
import sys
from collections.abc import Coroutine
from typing import Any

import aiormq
import asyncpg
import structlog

from services.common.loader import FunctionModuleError
from services.common.migrate import SchemaNotReadyError


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


# The cyclic garbage collector's thresholds for a service process (see ``run_service``).
GC_THRESHOLDS = (50_000, 50, 1_000)


def run_service(service: str, main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine; turn unreachable dependencies into one clear line.

    A missing database or an unreachable broker at start-up, a schema older than the code, or
    a database role or broker user without a right the service needs is a configuration
    problem, not a crash: it is reported with what to check, and the process exits with
    status 2.

    The cyclic garbage collector runs far less often than Python's default (``GC_THRESHOLDS``
    against 700, 10, 10). A service allocates a great many short-lived objects per message,
    almost all freed at once by reference counting, and keeps a large live heap (the
    orchestrator's cached executors); by default every 700 allocations start a collection,
    and the full ones walk the whole heap. Measured: the orchestrator's CPU per W2
    orchestration 0.66-0.73 ms against 0.75-0.81 ms with the default (docs/performance.md).
    """
    log = structlog.get_logger(service)
    gc.set_threshold(*GC_THRESHOLDS)
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
            hint=_certificate_hint
            if _certificate_refused(error)
            else "is Postgres (DF_DATABASE_URL) and RabbitMQ (DF_AMQP_URL) reachable? "
            "`make services` starts the local ones",
        )
        sys.exit(2)
    except FunctionModuleError as error:
        log.error("service.cannot_start", error=str(error), hint="check DF_FUNCTION_MODULES")
        sys.exit(2)
    except SchemaNotReadyError as error:
        log.error("service.cannot_start", error=str(error))
        sys.exit(2)
    except aiormq.exceptions.ChannelAccessRefused as error:
        # RabbitMQ's reason names the queue or exchange and the user; a refused declaration
        # adds the rights it needs (durable.declarations.BrokerAccessRefusedError).
        log.error(
            "service.cannot_start",
            error=str(error),
            hint="the broker user of DF_AMQP_URL lacks this permission: "
            "`durable-ops broker-definitions` prints what each service's user needs",
        )
        sys.exit(2)


_certificate_hint = (
    "the server's certificate did not verify against the CA the URL names "
    "(DF_AMQP_URL's cafile, DF_DATABASE_URL's sslrootcert) or its host name"
)


def _certificate_refused(error: BaseException) -> bool:
    """Whether ``error`` is (or wraps, as aiormq's connection errors do) a server certificate
    that did not verify."""
    return isinstance(error, ssl.SSLCertVerificationError) or isinstance(
        error.__cause__, ssl.SSLCertVerificationError
    )
