"""How a ``durable`` command runs: settings from ``DF_*``, connecting, and turning every
expected failure (unreachable database or broker, a refusal, bad arguments) into one line on
stderr and an exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import aiormq
import asyncpg
import typer
from pydantic import JsonValue, ValidationError

from contracts import limits
from contracts.limits import ValueRefusedError
from durable.broker import Publisher, PublishFailedError
from durable.client import DurableClient
from durable.client.errors import StartOutcomeUnknownError
from durable.redaction import hide_password
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.common.logging import configure_logging

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMED_OUT = 4
CONNECT_TIMEOUT_SECONDS = 10.0


class CliError(Exception):
    """Ends the command with one line on stderr and ``exit_code``."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def parse_json_option(value: str | None, option: str) -> JsonValue:
    """``value`` parsed as JSON (None when the option was not given); a usage error if not."""
    if value is None:
        return None
    try:
        parsed: JsonValue = json.loads(value)
    except ValueError as error:
        raise usage_error(f"{option} is not valid JSON: {error}") from None
    return parsed


def run(work: Callable[[DurableClient], Awaitable[int]]) -> None:
    """Connect, run the command, close; turn every expected failure into one line."""
    try:
        settings = CommonSettings()
    except ValidationError as error:
        problem = error.errors()[0]
        setting = f"DF_{str(problem['loc'][0]).upper()}"
        raise usage_error(f"invalid setting {setting}: {problem['msg']}") from None
    configure_logging("cli", settings, log_format="console", level="warning")
    limits.configure(settings.limits)
    # Libraries log connection failures themselves; the command reports them in one line.
    logging.getLogger().setLevel(logging.CRITICAL)
    try:
        exit_code = asyncio.run(_session(settings, work))
    except CliError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    raise typer.Exit(exit_code)


async def _session(
    settings: CommonSettings, work: Callable[[DurableClient], Awaitable[int]]
) -> int:
    client = await _connect(settings)
    try:
        return await work(client)
    except (ValueRefusedError, TypeError) as error:
        # An id, a name or a value no layer could store or send, refused before any write
        # (contracts.limits); TypeError: a value JSON cannot hold.
        raise CliError(EXIT_USAGE, str(error)) from None
    except StartOutcomeUnknownError as error:
        raise CliError(EXIT_UNREACHABLE, str(error)) from None
    except asyncpg.UndefinedTableError:
        raise CliError(
            EXIT_UNREACHABLE,
            f"the database at {_redacted(settings.database_url)} has no event store; "
            "run `make migrate` (or start a service, which migrates it)",
        ) from None
    except PublishFailedError as error:
        raise CliError(
            EXIT_UNREACHABLE,
            f"cannot reach the broker at {_redacted(settings.amqp_url)}: {_reason(error)}",
        ) from None
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        aiormq.exceptions.AMQPError,
    ) as error:
        raise CliError(
            EXIT_UNREACHABLE, f"lost the database or broker connection: {error}"
        ) from None
    finally:
        await client.close()


async def _connect(settings: CommonSettings) -> DurableClient:
    database = _redacted(settings.database_url)
    try:
        pool = await asyncio.wait_for(
            create_pool(settings.database_url, min_size=1, max_size=2), CONNECT_TIMEOUT_SECONDS
        )
    except asyncpg.InvalidCatalogNameError:
        raise CliError(
            EXIT_UNREACHABLE,
            f"the database at {database} does not exist; create it with `make migrate`",
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise CliError(
            EXIT_UNREACHABLE, f"cannot reach the database at {database}: {_reason(error)}"
        ) from None
    # The broker is connected on the first publish: read-only commands work while it is down,
    # and a command that publishes reports an unreachable broker as a PublishFailedError.
    publisher = Publisher(settings.amqp_url, settings.topology, "cli.publish")
    return DurableClient(
        pool,
        publisher,
        settings.topology,
        owns_resources=True,
        start_existing=settings.start_existing,
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    return str(error) or type(error).__name__


def _redacted(url: str) -> str:
    """The URL (each, of a list) without its password, for messages."""
    return hide_password(url)
