"""durable-ops dlq: the deployment's dead-letter queues (partitions, activities, entry points).

``list`` and ``show`` move nothing. ``redrive`` and ``discard`` take the first messages of one
dead-letter queue (all that were there when the command started, or ``--limit``) and nothing
else: other messages and other queues are untouched.
"""

from __future__ import annotations

from typing import Annotated

import typer

from durable.store.registered_functions import registered_activities
from services.common.dead_letters import (
    Action,
    DeadLetterError,
    DeadLetterHandler,
    DeadLetterQueue,
    dead_letter_queues,
    depth,
    find_queue,
)
from services.common.loader import load_entry_points
from services.operations import cli_output
from services.operations.session import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    OperationError,
    Session,
    run,
    usage,
)

app = typer.Typer(help=__doc__.split("\n\n")[0] if __doc__ else None, no_args_is_help=True)

_EXIT_CODES = {
    "unknown_queue": EXIT_USAGE,
    "absent": EXIT_ATTENTION,
    "foreign": EXIT_ATTENTION,
    "unconfirmed": EXIT_UNREACHABLE,
}
"""The exit code of each kind of ``DeadLetterError``."""

QueueArgument = Annotated[
    str, typer.Argument(help="The dead-letter queue (or the queue it serves).", show_default=False)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")]


async def _queues(session: Session) -> list[DeadLetterQueue]:
    topology = session.settings.topology
    try:
        declared = load_entry_points(session.settings)
    except Exception as error:  # an unknown reference, or a declaration refusing its settings
        raise usage(f"loading the entry points (DF_ENTRY_POINTS) failed: {error}") from None
    entry_queues = [topology.workflow_name(entry.queue) for entry in declared.entry_points]
    pool = await session.pool()
    return dead_letter_queues(topology, await registered_activities(pool), entry_queues)


@app.command("list")
def list_queues(as_json: AsJson = False) -> None:
    """Every dead-letter queue of the deployment and how many messages it holds."""

    async def work(session: Session) -> int:
        queues = await _queues(session)
        connection = await session.broker()
        rows = []
        for queue in queues:
            rows.append((queue, await depth(connection, queue.name)))
        if as_json:
            for queue, count in rows:
                cli_output.line(
                    cli_output.dumps(
                        {
                            "kind": "queue",
                            "queue": queue.name,
                            "source": queue.source,
                            "serves": queue.kind,
                            "messages": count,
                        }
                    )
                )
            return EXIT_OK
        width = max(len(queue.name) for queue, _ in rows)
        cli_output.line(f"{'QUEUE':<{width}}  {'SERVES':<9}  MESSAGES")
        for queue, count in rows:
            shown = "absent" if count is None else str(count)
            cli_output.line(f"{queue.name:<{width}}  {queue.kind:<9}  {shown}")
        return EXIT_OK

    run(work)


def _handle(queue_name: str, action: Action, limit: int | None, as_json: bool) -> None:
    async def work(session: Session) -> int:
        try:
            return await handle(session)
        except DeadLetterError as error:
            raise OperationError(_EXIT_CODES[error.kind], str(error)) from None

    async def handle(session: Session) -> int:
        session.graceful()
        queue = find_queue(await _queues(session), queue_name)
        handler = DeadLetterHandler(await session.broker(), queue)
        verb = {"show": "message", "redrive": "redriven", "discard": "discarded"}[action]
        count = await handler.run(
            action,
            limit,
            lambda letter: cli_output.dead_letter(letter, as_json, verb),
            session.stopping,
        )
        if handler.reordered:
            typer.echo(
                f"note: {queue.name} is too long to show without reordering; the messages "
                "shown are now at its end",
                err=True,
            )
        if not as_json:
            done = {"show": "shown", "redrive": "re-driven to", "discard": "discarded from"}
            target = queue.source if action == "redrive" else queue.name
            cli_output.line(f"{count} message(s) {done[action]} {target}")
        return EXIT_INTERRUPTED if session.stopping.is_set() else EXIT_OK

    run(work)


Limit = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")]


@app.command()
def show(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many to show.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Print the first messages with their dead-letter reason and x-death; moves nothing."""
    _handle(queue, "show", limit, as_json)


@app.command()
def redrive(queue: QueueArgument, limit: Limit = None, as_json: AsJson = False) -> None:
    """WRITES: publish the first messages back to the queue they came from, then remove them."""
    _handle(queue, "redrive", limit, as_json)


@app.command()
def discard(queue: QueueArgument, limit: Limit = None, as_json: AsJson = False) -> None:
    """WRITES: remove the first messages for good."""
    _handle(queue, "discard", limit, as_json)
