"""durable-ops: see, check and replay the event store; handle dead letters.

Connects with the ``DF_*`` variables every service reads. Read-only unless the command's name
says it writes: ``import``, ``rebuild-projections --apply``, ``republish``, ``dlq redrive`` and
``dlq discard``. Long runs report progress on stderr; results go to stdout (text, or JSON with
``--json``). Errors are one line on stderr. Exit codes: 0 done; 1 something needs attention
(mismatches, violations, differing rows) or refused; 2 bad arguments; 3 database or broker
unreachable; 130 stopped by Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from typer.exceptions import TyperException

from durable.store.feed import StartFilter
from durable.store.selection import InstanceSelection
from engine import OrchestratorFunction
from services.common.loader import FunctionModuleError, load_function_apps
from services.common.version import VersionOption
from services.operations import cli_dlq, cli_members, cli_output
from services.operations.check_invariants import check_selection as check_invariants
from services.operations.checkpoint import Checkpoint, exclusive, load
from services.operations.rebuild import ProjectionRebuild
from services.operations.replay_check import check_selection
from services.operations.republish import EventPublisher, Republisher
from services.operations.selection import parse_statuses, parse_time
from services.operations.session import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OperationError,
    Progress,
    Session,
    fail,
    run,
    usage,
)
from services.operations.streams import StreamPrinter, show_stream
from services.operations.transfer import export_streams, import_streams

app = typer.Typer(
    name="durable-ops",
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(version: VersionOption = False) -> None:
    """Options that come before any command."""


app.add_typer(cli_dlq.app, name="dlq")
app.command("members")(cli_members.members)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")]
Instances = Annotated[
    list[str] | None, typer.Option("--instance", help="An instance id (repeat for more).")
]
Names = Annotated[list[str] | None, typer.Option("--name", help="Orchestrator name (repeat).")]
Statuses = Annotated[
    list[str] | None,
    typer.Option("--status", help="Runtime status (repeat or comma-separate)."),
]
CreatedFrom = Annotated[str | None, typer.Option("--from", help="Created at or after (ISO 8601).")]
CreatedTo = Annotated[str | None, typer.Option("--to", help="Created at or before (ISO 8601).")]
BatchSize = Annotated[
    int, typer.Option("--batch-size", min=1, max=1000, help="Instances per transaction.")
]


@app.command()
def show(
    instance_id: Annotated[str, typer.Argument(help="The instance id.", show_default=False)],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until it ends.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Print an instance's event stream (seq, time, event, name, ids, short payload)."""

    async def work(session: Session) -> int:
        session.graceful()
        pool = await session.pool()
        printer = StreamPrinter(as_json, cli_output.line)
        ended = await show_stream(
            pool, instance_id, printer, follow=follow, stopping=session.stopping
        )
        return EXIT_OK if ended else EXIT_INTERRUPTED

    run(work)


@app.command("export")
def export_command(
    instances: Instances = None,
    names: Names = None,
    statuses: Statuses = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write instances (rows, events, timers) as JSON lines, streaming."""
    selection = selected(instances, names, statuses, created_from, created_to)

    async def work(session: Session) -> int:
        pool = await session.pool()
        progress = Progress("export")
        target = output.open("wb") if output is not None else sys.stdout.buffer
        try:
            count, events = await export_streams(pool, selection, target, progress)
        finally:
            if output is not None:
                target.close()
        progress.say(f"exported {count:,} instances, {events:,} events")
        return EXIT_OK

    run(work)


@app.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="An export (JSON lines); - for stdin.")],
) -> None:
    """WRITES: restore an export into an empty store (refuses one that has instances)."""
    if str(source) != "-" and not source.is_file():
        fail(EXIT_USAGE, f"no file {str(source)!r}")

    async def work(session: Session) -> int:
        pool = await session.pool()
        progress = Progress("import")
        stream = sys.stdin.buffer if str(source) == "-" else source.open("rb")
        try:
            counts = await import_streams(pool, stream, progress)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        cli_output.line(
            f"imported {counts['instance']:,} instances, {counts['event']:,} events, "
            f"{counts['timer']:,} timers"
        )
        return EXIT_OK

    run(work)


@app.command("replay-check")
def replay_check(
    instances: Instances = None,
    names: Names = None,
    statuses: Statuses = None,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Check this many, chosen at random.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Replay stored histories through the current code (DF_FUNCTION_MODULES); exit 1 on any
    mismatch. Default: every Running or Suspended instance."""
    chosen = parse_or_exit(lambda: parse_statuses(statuses))
    selection = InstanceSelection(
        instance_ids=tuple(instances or ()),
        names=tuple(names or ()),
        statuses=chosen or (() if instances else parse_statuses(["Running,Suspended"])),
        sample=sample,
    )

    async def work(session: Session) -> int:
        orchestrators = _orchestrators(session)
        pool = await session.pool()
        progress = Progress("replay-check")
        summary = await check_selection(
            pool,
            selection,
            orchestrators,
            lambda result: cli_output.replay_result(result, as_json),
            progress,
        )
        cli_output.summary(as_json, summary.to_json(), summary.describe())
        return EXIT_ATTENTION if summary.mismatched else EXIT_OK

    run(work)


@app.command("check-invariants")
def check_invariants_command(
    instances: Instances = None,
    names: Names = None,
    statuses: Statuses = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    batch_size: BatchSize = 100,
    as_json: AsJson = False,
) -> None:
    """Check stored histories are well formed and agree with their rows; exit 1 on any
    violation, naming the instance and the rule. Default: every instance."""
    selection = selected(instances, names, statuses, created_from, created_to)

    async def work(session: Session) -> int:
        pool = await session.pool()
        summary = await check_invariants(
            pool,
            selection,
            lambda violation: cli_output.violation(violation, as_json),
            Progress("check-invariants"),
            page_size=batch_size,
        )
        cli_output.summary(as_json, summary.to_json(), summary.describe())
        return EXIT_OK if summary.clean else EXIT_ATTENTION

    run(work)


@app.command("rebuild-projections")
def rebuild_projections(
    instances: Instances = None,
    names: Names = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="WRITES: repair the rows that differ.")
    ] = False,
    batch_size: BatchSize = 100,
    as_json: AsJson = False,
) -> None:
    """Rebuild the instances read model from the events; report (and, with --apply, repair)
    every row that differs. Exit 1 when rows differ and were not repaired."""
    selection = InstanceSelection(instance_ids=tuple(instances or ()), names=tuple(names or ()))

    async def work(session: Session) -> int:
        orchestrators = _orchestrators(session)
        pool = await session.pool()
        rebuild = ProjectionRebuild(
            pool,
            orchestrators,
            apply=apply,
            report=lambda report: cli_output.row_report(report, as_json),
            progress=Progress("rebuild-projections"),
            batch_size=batch_size,
        )
        summary = await rebuild.run(selection)
        cli_output.summary(
            as_json, cli_output.rebuild_summary_json(summary), cli_output.rebuild_text(summary)
        )
        unrepaired = summary.differing - summary.repaired
        return EXIT_ATTENTION if unrepaired or summary.busy else EXIT_OK

    run(work)


@app.command()
def republish(
    to_exchange: Annotated[
        str | None, typer.Option("--to-exchange", help="Exchange (routing key: event type).")
    ] = None,
    to_queue: Annotated[str | None, typer.Option("--to-queue", help="Queue.")] = None,
    from_position: Annotated[
        int | None, typer.Option("--from-position", min=1, help="First global position.")
    ] = None,
    from_time: Annotated[
        str | None, typer.Option("--from-time", help="Events recorded at or after (ISO 8601).")
    ] = None,
    checkpoint_path: Annotated[
        Path | None, typer.Option("--checkpoint", help="Resume from, and record progress in.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep publishing new events until Ctrl-C.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """WRITES (to the broker): publish stored events in order to an exchange or a queue,
    exactly once across stops and resumes with --checkpoint."""
    if (to_exchange is None) == (to_queue is None):
        fail(EXIT_USAGE, "give exactly one of --to-exchange and --to-queue")
    if from_position is not None and from_time is not None:
        fail(EXIT_USAGE, "give at most one of --from-position and --from-time")
    target = f"queue:{to_queue}" if to_queue is not None else f"exchange:{to_exchange}"
    start = StartFilter(from_position, parse_or_exit(lambda: parse_time(from_time, "--from-time")))
    start_json: dict[str, object] | None = None
    if from_position is not None:
        start_json = {"from_position": from_position}
    elif start.from_time is not None:
        start_json = {"from_time": start.from_time.isoformat()}

    async def work(session: Session) -> int:
        session.graceful()
        if checkpoint_path is None:
            return await _republish(session, target, start, start_json, None, follow, limit)
        with exclusive(checkpoint_path):
            return await _republish(
                session, target, start, start_json, checkpoint_path, follow, limit
            )

    run(work)


async def _republish(
    session: Session,
    target: str,
    start: StartFilter,
    start_json: dict[str, object] | None,
    path: Path | None,
    follow: bool,
    limit: int | None,
) -> int:
    if path is None:
        checkpoint = Checkpoint(target, start_json or {})
    else:
        checkpoint = load(path, target, start_json)
    if checkpoint.start:
        saved = checkpoint.start
        from_time = parse_time(saved.get("from_time"), "checkpoint from_time")
        start = StartFilter(saved.get("from_position"), from_time)
    pool = await session.pool()
    publisher = await EventPublisher.open(await session.broker(), target)
    progress = Progress("republish")
    republisher = Republisher(
        pool,
        publisher,
        checkpoint,
        path,
        start,
        progress,
        session.stopping,
        follow=follow,
        limit=limit,
    )
    finished = await republisher.run()
    cursor = checkpoint.cursor
    progress.say(
        f"published {republisher.published:,} events in this run "
        f"({checkpoint.published:,} with this checkpoint); up to {cursor.text()}"
    )
    return EXIT_INTERRUPTED if session.stopping.is_set() and not finished else EXIT_OK


def _orchestrators(session: Session) -> dict[str, OrchestratorFunction]:
    try:
        functions = load_function_apps(session.settings.modules)
    except FunctionModuleError as error:
        raise usage(str(error)) from None
    except Exception as error:  # a function module that fails while it is imported
        raise usage(f"loading DF_FUNCTION_MODULES failed: {error!r}") from None
    return dict(functions.orchestrators)


T = TypeVar("T")


def selected(
    instances: list[str] | None,
    names: list[str] | None,
    statuses: list[str] | None,
    created_from: str | None,
    created_to: str | None,
) -> InstanceSelection:
    """The instances the selection options name (every one when none is given)."""
    return InstanceSelection(
        instance_ids=tuple(instances or ()),
        names=tuple(names or ()),
        statuses=parse_or_exit(lambda: parse_statuses(statuses)),
        created_from=parse_or_exit(lambda: parse_time(created_from, "--from")),
        created_to=parse_or_exit(lambda: parse_time(created_to, "--to")),
    )


def parse_or_exit(parse: Callable[[], T]) -> T:
    """Parse an option before connecting; a bad value ends the command with exit code 2."""
    try:
        return parse()
    except OperationError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None


def main() -> None:
    """Run the command; usage errors are one line too (``error: ...``, exit code 2)."""
    try:
        code = app(standalone_mode=False)
    except TyperException as error:  # click's usage errors, as typer vendors them
        format_message = getattr(error, "format_message", None)
        message = format_message() if callable(format_message) else str(error)
        typer.echo(f"error: {message}", err=True)
        sys.exit(getattr(error, "exit_code", EXIT_USAGE))
    except typer.Abort:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
