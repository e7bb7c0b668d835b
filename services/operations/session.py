"""How a ``durable-ops`` command runs: settings from ``DF_*``, connections opened on first use,
Ctrl-C, and every expected failure turned into one line on stderr and an exit code.

Exit codes (the ``durable`` command's, plus 130):

- 0: done, nothing to report;
- 1: done, and something needs attention (a history the code no longer matches, a read-model
  row that differs), or the command refused (a store that is not empty, no such instance);
- 2: bad arguments;
- 3: the database or the broker cannot be reached, or the store has no (or an old) schema;
- 130: stopped by Ctrl-C or SIGTERM (commands that keep a checkpoint save it first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import aiormq
import asyncpg
import typer
from aio_pika.abc import AbstractConnection
from pydantic import ValidationError

from contracts import limits
from durable.broker import connect
from durable.redaction import hide_password
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.common.logging import configure_logging

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
CONNECT_TIMEOUT_SECONDS = 10.0


class OperationError(Exception):
    """Ends the command with one line on stderr and ``exit_code``."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def usage(message: str) -> OperationError:
    return OperationError(EXIT_USAGE, message)


class Session:
    """Settings and lazily opened connections for one command.

    Attributes:
        stopping: set on the first Ctrl-C/SIGTERM when the command stops gracefully
            (``graceful()``); otherwise the signal cancels the command at once.
    """

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self._graceful = False
        self._pool: asyncpg.Pool | None = None
        self._broker: AbstractConnection | None = None

    def graceful(self) -> None:
        """This command watches ``stopping`` and finishes its current step before it stops."""
        self._graceful = True

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            database = redacted(self.settings.database_url)
            try:
                self._pool = await asyncio.wait_for(
                    create_pool(self.settings.database_url, min_size=1, max_size=3),
                    CONNECT_TIMEOUT_SECONDS,
                )
            except asyncpg.InvalidCatalogNameError:
                raise OperationError(
                    EXIT_UNREACHABLE, f"the database at {database} does not exist"
                ) from None
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise OperationError(
                    EXIT_UNREACHABLE, f"cannot reach the database at {database}: {reason(e)}"
                ) from None
        return self._pool

    async def broker(self) -> AbstractConnection:
        if self._broker is None:
            try:
                self._broker = await connect(
                    self.settings.amqp_url, "durable-ops", timeout=CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as error:
                raise OperationError(
                    EXIT_UNREACHABLE,
                    f"cannot reach the broker at {redacted(self.settings.amqp_url)}: "
                    f"{reason(error)}",
                ) from None
        return self._broker

    async def close(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.close()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)


def run(work: Callable[[Session], Awaitable[int]]) -> NoReturn:
    """Run a command: settings, connections, signals, one-line errors, the exit code."""
    try:
        settings = CommonSettings()
    except ValidationError as error:
        problem = error.errors()[0]
        setting = f"DF_{str(problem['loc'][0]).upper()}"
        fail(EXIT_USAGE, f"invalid setting {setting}: {problem['msg']}")
    configure_logging("durable-ops", settings, log_format="console", level="warning")
    limits.configure(settings.limits)
    # Libraries log connection failures themselves; the command reports them in one line.
    logging.getLogger().setLevel(logging.CRITICAL)
    try:
        exit_code = asyncio.run(_session(Session(settings), work))
    except OperationError as error:
        fail(error.exit_code, str(error))
    except KeyboardInterrupt:
        exit_code = EXIT_INTERRUPTED
    raise typer.Exit(exit_code)


def fail(exit_code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(exit_code)


async def _session(session: Session, work: Callable[[Session], Awaitable[int]]) -> int:
    main = asyncio.current_task()
    assert main is not None
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        if session._graceful and not session.stopping.is_set():
            session.stopping.set()
            return
        interrupted = True
        main.cancel()

    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal)
    try:
        return await work(session)
    except asyncio.CancelledError:
        if interrupted:
            return EXIT_INTERRUPTED
        raise
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except asyncpg.UndefinedTableError:
        raise OperationError(
            EXIT_UNREACHABLE,
            f"the database at {redacted(session.settings.database_url)} has no event store; "
            "run `make migrate` (or start a service, which migrates it)",
        ) from None
    except asyncpg.UndefinedColumnError as error:
        raise OperationError(
            EXIT_UNREACHABLE,
            f"the event store's schema is older than this tool ({error}); "
            "run `make migrate` (or restart a service, which migrates it)",
        ) from None
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        aiormq.exceptions.AMQPConnectionError,
        aiormq.exceptions.ConnectionClosed,
    ) as error:
        raise OperationError(
            EXIT_UNREACHABLE, f"lost the database or broker connection: {reason(error)}"
        ) from None
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        await session.close()


class Progress:
    """Progress of a long run on stderr: at most one line every ``interval`` seconds."""

    def __init__(self, command: str, interval: float = 2.0) -> None:
        self._command = command
        self._interval = interval
        self._last = time.monotonic()

    def update(self, describe: Callable[[], str]) -> None:
        if self.due():
            self.say(describe())

    def due(self) -> bool:
        """True (and the clock restarts) when a line may be printed now."""
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True

    def say(self, text: str) -> None:
        print(f"{self._command}: {text}", file=sys.stderr, flush=True)


def reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    return str(error) or type(error).__name__


def redacted(url: str) -> str:
    """The URL (each, of a list) without its password, for messages."""
    return hide_password(url)
