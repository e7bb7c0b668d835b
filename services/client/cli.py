"""durable: start, inspect and manage orchestration instances from a shell.

Built on ``DurableClient``; connects with the ``DF_*`` variables every service reads
(``DF_DATABASE_URL``, ``DF_AMQP_URL``, ``DF_NAMESPACE``, ``DF_PARTITIONS``). Output is for
people by default, JSON with ``--json`` (the HTTP API's status shape). Errors are one line on
stderr, with these exit codes:

- 0: done (``wait`` and ``start --wait``: the instance Completed);
- 1: refused, or ended badly: no such instance, it has ended, it has not ended, the id is in
  use, or the instance Failed or was Terminated;
- 2: bad arguments (invalid JSON, time, status, unknown orchestrator);
- 3: the database or the broker cannot be reached;
- 4: timed out waiting; the instance is still running.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

import typer

from contracts import OrchestrationStatus
from durable.client import (
    DurableClient,
    ExistingInstancePolicy,
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceRunningError,
)
from services.client import cli_output
from services.client.cli_entities import entity_app
from services.client.cli_session import (
    EXIT_REFUSED,
    EXIT_TIMED_OUT,
    EXIT_USAGE,
    CliError,
    parse_json_option,
    run,
    usage_error,
)
from services.client.filters import parse_statuses, parse_time
from services.common.version import VersionOption

app = typer.Typer(
    name="durable",
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.add_typer(entity_app)


@app.callback()
def _options(version: VersionOption = False) -> None:
    """Options that come before any command."""


AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
InstanceIdArgument = Annotated[str, typer.Argument(help="The instance id.", show_default=False)]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        help="Runtime status (repeat or comma-separate): "
        + ", ".join(s.value for s in OrchestrationStatus),
    ),
]
FromOption = Annotated[str | None, typer.Option("--from", help="Created at or after (ISO 8601).")]
ToOption = Annotated[str | None, typer.Option("--to", help="Created at or before (ISO 8601).")]


@app.command()
def start(
    name: Annotated[str, typer.Argument(help="The orchestrator to start.", show_default=False)],
    instance_id: Annotated[str | None, typer.Option("--id", help="Instance id to use.")] = None,
    input: Annotated[str | None, typer.Option("--input", help="The input, as JSON.")] = None,
    wait: Annotated[
        float | None, typer.Option("--wait", min=0, help="Seconds to wait for the outcome.")
    ] = None,
    if_exists: Annotated[
        ExistingInstancePolicy | None,
        typer.Option(
            "--if-exists",
            help="When --id is in use: error; replace_ended (replace an instance that has "
            "ended); or use_existing (keep it, whatever its state, and start nothing). "
            "Default: DF_START_EXISTING (error).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Start an orchestration; print its instance id (or, with --wait, its outcome)."""
    payload = parse_json_option(input, "--input")

    async def work(client: DurableClient) -> int:
        registered = await client.registered_orchestrators()
        if name not in registered:
            known = ", ".join(sorted(registered)) or "none"
            raise CliError(EXIT_USAGE, f"no orchestrator named {name!r} (registered: {known})")
        try:
            started = await client.start_new(name, instance_id, payload, if_exists=if_exists)
        except InstanceExistsError as error:
            raise CliError(EXIT_REFUSED, str(error)) from None
        if wait is None:
            cli_output.echo(as_json, {"id": started}, started)
            return 0
        return await _wait_and_show(client, started, wait, as_json)

    run(work)


@app.command()
def status(
    instance_id: InstanceIdArgument,
    history: Annotated[bool, typer.Option("--history", help="Also print its events.")] = False,
    as_json: AsJson = False,
) -> None:
    """Print an instance's status (and, with --history, its event stream)."""

    async def work(client: DurableClient) -> int:
        found = await client.get_status(instance_id)
        if found is None:
            raise CliError(EXIT_REFUSED, f"no instance {instance_id!r}")
        events = await client.get_history(instance_id) if history else None
        text = cli_output.status_text(found)
        if events is not None:
            text += "\n" + cli_output.history_text(events)
        cli_output.echo(as_json, cli_output.status_json(found, events), text)
        return 0

    run(work)


@app.command("list")
def list_instances(
    statuses: StatusOption = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Instance id prefix.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Orchestrator name.")] = None,
    custom_status: Annotated[
        str | None,
        typer.Option("--custom-status", help="JSON the custom status contains."),
    ] = None,
    created_from: FromOption = None,
    created_to: ToOption = None,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="Page size.")] = 100,
    continuation: Annotated[
        str | None, typer.Option("--continuation", help="Token printed by the previous page.")
    ] = None,
    count: Annotated[
        bool, typer.Option("--count", help="Also print how many match, all pages together.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List instances, oldest first, one page at a time."""
    filters: dict[str, Any] = {
        "created_time_from": _parse_time(created_from, "--from"),
        "created_time_to": _parse_time(created_to, "--to"),
        "runtime_status": _parse_statuses(statuses),
        "instance_id_prefix": prefix,
        "name": name,
        "custom_status_contains": parse_json_option(custom_status, "--custom-status"),
    }

    async def work(client: DurableClient) -> int:
        try:
            page = await client.get_status_by(**filters, top=top, continuation_token=continuation)
        except ValueError as error:
            raise CliError(EXIT_USAGE, f"--continuation: {error}") from None
        body: dict[str, Any] = {
            "instances": [cli_output.status_json(s) for s in page.instances],
            "continuationToken": page.continuation_token,
        }
        text = cli_output.list_text(page.instances)
        if page.continuation_token:
            text += f"\n(more: add --continuation {page.continuation_token})"
        if count:
            body["totalCount"] = await client.count_instances(**filters)
            text += f"\n{body['totalCount']} matching in all"
        cli_output.echo(as_json, body, text)
        return 0

    run(work)


@app.command("raise-event")
def raise_event(
    instance_id: InstanceIdArgument,
    event_name: Annotated[str, typer.Argument(help="The event's name.", show_default=False)],
    data: Annotated[str | None, typer.Option("--data", help="The event's data, as JSON.")] = None,
    as_json: AsJson = False,
) -> None:
    """Send an event to an instance."""
    payload = parse_json_option(data, "--data")

    async def work(client: DurableClient) -> int:
        await _refusals(client.raise_event(instance_id, event_name, payload))
        cli_output.echo(
            as_json,
            {"id": instance_id, "raised": event_name},
            f"raised {event_name!r} on {instance_id}",
        )
        return 0

    run(work)


@app.command()
def terminate(
    instance_id: InstanceIdArgument, reason: ReasonOption = None, as_json: AsJson = False
) -> None:
    """End an instance as Terminated (its output is the reason)."""
    _operate("terminate", instance_id, reason, as_json)


@app.command()
def suspend(
    instance_id: InstanceIdArgument, reason: ReasonOption = None, as_json: AsJson = False
) -> None:
    """Pause an instance until it is resumed."""
    _operate("suspend", instance_id, reason, as_json)


@app.command()
def resume(
    instance_id: InstanceIdArgument, reason: ReasonOption = None, as_json: AsJson = False
) -> None:
    """Resume a suspended instance."""
    _operate("resume", instance_id, reason, as_json)


@app.command()
def rewind(
    instance_id: InstanceIdArgument, reason: ReasonOption = None, as_json: AsJson = False
) -> None:
    """Send a Failed instance back to before its failures: failed activities run again."""

    async def work(client: DurableClient) -> int:
        try:
            await client.rewind(instance_id, reason)
        except (InstanceNotFoundError, InstanceNotFailedError) as error:
            raise CliError(EXIT_REFUSED, str(error)) from None
        cli_output.echo(
            as_json,
            {"id": instance_id, "requested": "rewind"},
            f"rewind requested for {instance_id}",
        )
        return 0

    run(work)


@app.command()
def restart(
    instance_id: InstanceIdArgument,
    same_id: Annotated[
        bool, typer.Option("--same-id", help="run under the same id (it must have ended)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Start the instance's orchestrator again with the same input (under a new id)."""

    async def work(client: DurableClient) -> int:
        try:
            restarted = await client.restart(instance_id, new_instance_id=not same_id)
        except (InstanceNotFoundError, InstanceExistsError) as error:
            raise CliError(EXIT_REFUSED, str(error)) from None
        cli_output.echo(as_json, {"id": restarted, "restartedFrom": instance_id}, restarted)
        return 0

    run(work)


@app.command()
def purge(instance_id: InstanceIdArgument, as_json: AsJson = False) -> None:
    """Delete an ended instance and its history."""

    async def work(client: DurableClient) -> int:
        try:
            deleted = await client.purge_instance_history(instance_id)
        except InstanceRunningError as error:
            raise CliError(EXIT_REFUSED, str(error)) from None
        if not deleted:
            raise CliError(EXIT_REFUSED, f"no instance {instance_id!r}")
        cli_output.echo(as_json, {"instancesDeleted": deleted}, f"purged {instance_id}")
        return 0

    run(work)


@app.command("purge-by")
def purge_by(
    created_from: Annotated[
        str, typer.Option("--from", help="Created at or after (ISO 8601).", show_default=False)
    ],
    created_to: ToOption = None,
    statuses: StatusOption = None,
    as_json: AsJson = False,
) -> None:
    """Delete every ended instance created in the range (instances still running stay)."""
    start_time = _parse_time(created_from, "--from")
    end_time = _parse_time(created_to, "--to")
    wanted = _parse_statuses(statuses)

    async def work(client: DurableClient) -> int:
        deleted = await client.purge_instance_history_by(start_time, end_time, wanted)
        cli_output.echo(as_json, {"instancesDeleted": deleted}, f"purged {deleted} instance(s)")
        return 0

    run(work)


@app.command()
def wait(
    instance_id: InstanceIdArgument,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait.")] = 60.0,
    as_json: AsJson = False,
) -> None:
    """Wait until an instance ends; print its status (exit 0 only when it Completed)."""

    async def work(client: DurableClient) -> int:
        return await _wait_and_show(client, instance_id, timeout, as_json)

    run(work)


def main() -> None:
    """The ``durable`` console script."""
    app()


# --- helpers -------------------------------------------------------------------------------


def _operate(operation: str, instance_id: str, reason: str | None, as_json: bool) -> None:
    async def work(client: DurableClient) -> int:
        method = {
            "terminate": client.terminate,
            "suspend": client.suspend,
            "resume": client.resume,
        }[operation]
        await _refusals(method(instance_id, reason))
        cli_output.echo(
            as_json,
            {"id": instance_id, "requested": operation},
            f"{operation} requested for {instance_id}",
        )
        return 0

    run(work)


async def _refusals(call: Awaitable[None]) -> None:
    try:
        await call
    except (InstanceNotFoundError, InstanceEndedError) as error:
        raise CliError(EXIT_REFUSED, str(error)) from None


async def _wait_and_show(
    client: DurableClient, instance_id: str, timeout: float, as_json: bool
) -> int:
    try:
        ended = await client.wait_for_completion(instance_id, timeout=timeout)
    except KeyError:
        raise CliError(EXIT_REFUSED, f"no instance {instance_id!r}") from None
    except TimeoutError as error:
        raise CliError(EXIT_TIMED_OUT, str(error)) from None
    cli_output.echo(as_json, cli_output.status_json(ended), cli_output.status_text(ended))
    return 0 if ended.runtime_status is OrchestrationStatus.COMPLETED else EXIT_REFUSED


def _parse_time(value: str | None, option: str) -> datetime | None:
    try:
        return parse_time(value, option) if value is not None else None
    except ValueError as error:
        raise usage_error(str(error)) from None


def _parse_statuses(values: list[str] | None) -> list[OrchestrationStatus] | None:
    try:
        return parse_statuses(values, "--status") if values else None
    except ValueError as error:
        raise usage_error(str(error)) from None


if __name__ == "__main__":
    main()
