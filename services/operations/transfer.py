"""Export event streams as JSON lines, and import them into an empty store.

An export is a header line, then for each page of selected instances their ``instances`` rows,
their events (every stored execution, in seq order) and their timer rows. Each page is read in
one short REPEATABLE READ transaction, so an instance's row and its events agree, and events
come through a server-side cursor in bounded fetches: memory stays constant however many
events there are.

The import restores rows as they were exported, ``global_position`` included, in one
transaction: the instance rows are imported, not rebuilt, because ``correlation_id`` (and
``created_at`` once continue-as-new has dropped the first execution) exist nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

import asyncpg
from pydantic import ValidationError

from contracts.history import HISTORY_EVENT_ADAPTER
from durable.store import records
from durable.store.database import Connection
from durable.store.records import FORMAT_VERSION
from durable.store.selection import InstanceSelection, selected_ids
from services.common.migrate import apply_migrations
from services.operations.session import EXIT_ATTENTION, EXIT_USAGE, OperationError, Progress

PAGE_INSTANCES = 200
FETCH_ROWS = 1000
IMPORT_BATCH = 1000


async def export_streams(
    pool: asyncpg.Pool,
    selection: InstanceSelection,
    out: IO[bytes],
    progress: Progress,
) -> tuple[int, int]:
    """Write the selected instances as JSON lines; return (instances, events) written."""
    header = {
        "kind": "export",
        "format": FORMAT_VERSION,
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    out.write(json.dumps(header).encode() + b"\n")
    counts = {"instances": 0, "events": 0}

    def describe() -> str:
        return f"{counts['instances']:,} instances, {counts['events']:,} events"

    async for ids in selected_ids(pool, selection, PAGE_INSTANCES):
        async with (
            pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            lines = await records.instance_lines_txn(connection, ids)
            for line in lines:
                out.write(line.encode() + b"\n")
            counts["instances"] += len(lines)
            async for line in records.event_lines_txn(connection, ids, FETCH_ROWS):
                out.write(line.encode() + b"\n")
                counts["events"] += 1
                if counts["events"] % FETCH_ROWS == 0:
                    progress.update(describe)
            for line in await records.timer_lines_txn(connection, ids):
                out.write(line.encode() + b"\n")
        progress.update(describe)
    out.flush()
    return counts["instances"], counts["events"]


class _Batches:
    """Lines waiting to be inserted, by kind."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {"instance": [], "event": [], "timer": []}
        self.counts = dict.fromkeys(self.lines, 0)


async def import_streams(
    pool: asyncpg.Pool, lines: Iterable[bytes], progress: Progress
) -> dict[str, int]:
    """Restore an export into an empty store, all or nothing; return the rows imported by kind.

    Refuses (``OperationError``) a store that already holds instances or events, and a file
    that is not an export.
    """
    async with pool.acquire() as connection:
        await apply_migrations(connection)
        async with connection.transaction():
            # Nobody may start instances in the store while it is being filled.
            if not await records.lock_for_import_txn(connection):
                raise OperationError(
                    EXIT_ATTENTION,
                    "the store is not empty: import restores an export into an empty "
                    "database only (create one and point DF_DATABASE_URL at it)",
                )
            batches = _Batches()
            header_seen = False
            for number, raw in enumerate(lines, start=1):
                text = raw.decode("utf-8", errors="strict").strip()
                if not text:
                    continue
                kind = _check_line(text, number, header_seen)
                if kind == "export":
                    header_seen = True
                    continue
                batches.lines[kind].append(text)
                if len(batches.lines[kind]) >= IMPORT_BATCH:
                    await _flush(connection, batches, kind)
                    progress.update(lambda: _describe(batches.counts))
            if not header_seen:
                raise OperationError(EXIT_USAGE, "the file is empty: no export header")
            for kind in ("instance", "event", "timer"):
                await _flush(connection, batches, kind)
            await records.continue_global_positions_txn(connection)
    return batches.counts


async def _flush(connection: Connection, batches: _Batches, kind: str) -> None:
    lines = batches.lines[kind]
    if not lines:
        return
    try:
        await records.import_lines_txn(connection, kind, lines)
    except asyncpg.UniqueViolationError as error:
        raise OperationError(
            EXIT_USAGE, f"the file holds the same {kind} twice: {error.detail or error}"
        ) from None
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
        raise OperationError(EXIT_USAGE, f"an {kind} line cannot be stored: {error}") from None
    batches.counts[kind] += len(lines)
    lines.clear()


def _check_line(text: str, number: int, header_seen: bool) -> str:
    """The line's kind, after checking it is one an export writes."""

    def bad(problem: str) -> OperationError:
        return OperationError(EXIT_USAGE, f"line {number}: {problem}")

    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise bad(f"not JSON ({error})") from None
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind == "export":
        if record.get("format") != FORMAT_VERSION:
            raise bad(f"export format {record.get('format')!r}; this tool reads {FORMAT_VERSION}")
        return "export"
    if not header_seen:
        raise bad("not an export (it does not start with the export header)")
    if kind not in ("instance", "event", "timer"):
        raise bad(f"unknown kind {kind!r}")
    assert isinstance(record, dict)
    if kind == "event":
        try:
            event = HISTORY_EVENT_ADAPTER.validate_python(record.get("payload"))
        except ValidationError as error:
            raise bad(f"the payload is not a history event: {error.errors()[0]['msg']}") from None
        if event.event_type != record.get("event_type"):
            raise bad(
                f"event_type {record.get('event_type')!r}, but the payload is {event.event_type}"
            )
    return str(kind)


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {kind}s" for kind, count in counts.items())
