"""durable entity: signal, read, list and clean durable entities (ADR 38) from a shell.

The same exit codes as the other commands (``services.client.cli``): 1 when the entity has
no state, 2 for bad arguments or an entity name no deployment registered.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from durable import EntityId
from durable.client import DurableClient
from services.client import cli_output
from services.client.cli_session import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    parse_json_option,
    run,
    usage_error,
)

entity_app = typer.Typer(
    name="entity",
    help="Signal, read, list and clean durable entities.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NameArgument = Annotated[str, typer.Argument(help="The entity's name.", show_default=False)]
KeyArgument = Annotated[str, typer.Argument(help="The entity's key.", show_default=False)]


def _entity_id(name: str, key: str) -> EntityId:
    try:
        return EntityId.of(EntityId(name, key))
    except ValueError as error:
        raise usage_error(str(error)) from None


@entity_app.command()
def signal(
    name: NameArgument,
    key: KeyArgument,
    operation: Annotated[str, typer.Argument(help="The operation to run.", show_default=False)],
    input: Annotated[
        str | None, typer.Option("--input", help="The operation's input, as JSON.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Send an operation to an entity, one-way (the entity is created by its first one)."""
    entity = _entity_id(name, key)
    payload = parse_json_option(input, "--input")

    async def work(client: DurableClient) -> int:
        registered = await client.registered_entities()
        if entity.name.lower() not in registered:
            known = ", ".join(sorted(registered)) or "none"
            raise CliError(EXIT_USAGE, f"no entity named {name!r} (registered: {known})")
        await client.signal_entity(entity, operation, payload)
        named = entity.name.lower()  # as the entity's id spells it
        body = {"entityId": {"name": named, "key": entity.key}, "operation": operation}
        cli_output.echo(as_json, body, f"signalled {operation!r} to {named}@{entity.key}")
        return 0

    run(work)


@entity_app.command()
def get(name: NameArgument, key: KeyArgument, as_json: AsJson = False) -> None:
    """Print an entity's state and the critical section holding it, if any."""
    entity = _entity_id(name, key)

    async def work(client: DurableClient) -> int:
        record = await client.get_entity(entity)
        if record is None:
            raise CliError(EXIT_REFUSED, f"entity {entity.name}@{entity.key} has no state")
        cli_output.echo(as_json, cli_output.entity_json(record), cli_output.entity_text(record))
        return 0

    run(work)


@entity_app.command("list")
def list_entities(
    name: Annotated[
        str | None, typer.Argument(help="Only entities of this name.", show_default=False)
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="Page size.")] = 100,
    continuation: Annotated[
        str | None, typer.Option("--continuation", help="Token printed by the previous page.")
    ] = None,
    state: Annotated[bool, typer.Option("--state", help="Also print each state.")] = False,
    as_json: AsJson = False,
) -> None:
    """List entities (of one name, or all) in id order, one page at a time."""

    async def work(client: DurableClient) -> int:
        try:
            page = await client.list_entities(name, page_size=top, continuation_token=continuation)
        except ValueError as error:
            raise CliError(EXIT_USAGE, f"--continuation: {error}") from None
        body: dict[str, Any] = {
            "entities": [cli_output.entity_json(r, state) for r in page.entities],
            "continuationToken": page.continuation_token,
        }
        text = cli_output.entity_list_text(page.entities, state)
        if page.continuation_token:
            text += f"\n(more: add --continuation {page.continuation_token})"
        cli_output.echo(as_json, body, text)
        return 0

    run(work)


@entity_app.command()
def clean(as_json: AsJson = False) -> None:
    """Remove entities without state and free locks held by orchestrations that have ended."""

    async def work(client: DurableClient) -> int:
        result = await client.clean_entity_storage()
        removed = result.num_of_empty_entities_removed
        released = result.num_of_orphaned_locks_removed
        body = {"numberOfEmptyEntitiesRemoved": removed, "numberOfOrphanedLocksRemoved": released}
        text = f"removed {removed} empty entities, released {released} orphaned locks"
        cli_output.echo(as_json, body, text)
        return 0

    run(work)
