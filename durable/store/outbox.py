"""The transactional outbox: messages written in the same transaction as the state they announce.

Whoever commits publishes its own rows right after the commit and then deletes them; a relay
(in the orchestrator service) sweeps rows that stayed behind because their writer crashed
between commit and publish. Consumers drop duplicates, so publishing a row twice is harmless;
never publishing it is what the outbox prevents.

Deleting a published row is bookkeeping, not a guarantee: nobody waits for it. An
``OutboxCleaner`` deletes rows in the background, all that were published since its last
statement in one, with ``synchronous_commit`` off for that statement only (ADR 0011). If the
process or the server dies first, the rows stay, the sweeper publishes them again, and the
consumers drop the copies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from durable.broker import OutgoingMessage, Publisher, PublishFailedError, together
from durable.store.columns import RowShape, Statement, column
from durable.store.database import Connection

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    message: OutgoingMessage


OUTBOX_ROWS: RowShape[OutgoingMessage] = RowShape(
    (
        column("exchange", "text"),
        column("routing_key", "text"),
        column("message_id", "uuid"),
        column("correlation_id", "text"),
        column("message_type", "text"),
        column("body", "text", lambda m: m.body.decode()),
    )
)
"""An outgoing message's outbox columns, in the table's order."""

_INSERT = Statement()
_MESSAGES = _INSERT.rows("messages", OUTBOX_ROWS, "m")
_PARTITION = _INSERT.value("partition", "smallint")
_INSERT_SQL = f"""
    INSERT INTO outbox ({OUTBOX_ROWS.names}, partition)
    SELECT *, {_PARTITION} FROM {_MESSAGES}
    RETURNING id
"""


async def insert_outbox_txn(
    connection: Connection, messages: Sequence[OutgoingMessage], partition: int | None = None
) -> list[OutboxRecord]:
    """Insert ``messages`` inside the caller's transaction, as written by ``partition``'s
    batch (None: by no partition); return them with their row ids."""
    if not messages:
        return []
    rows = await connection.fetch(
        _INSERT_SQL, *_INSERT.arguments(messages=messages, partition=partition)
    )
    return [OutboxRecord(row["id"], message) for row, message in zip(rows, messages, strict=True)]


async def delete_outbox(pool: asyncpg.Pool, ids: Sequence[int]) -> None:
    """Delete published rows; the commit does not wait for the WAL flush (see module doc)."""
    if not ids:
        return
    # One round trip: a multi-statement query is one implicit transaction, which is what
    # SET LOCAL applies to. The ids are integers from our own RETURNING, written as literals.
    literal = ",".join(str(int(i)) for i in ids)
    await pool.execute(
        "SET LOCAL synchronous_commit TO OFF; "
        f"DELETE FROM outbox WHERE id = ANY('{{{literal}}}'::bigint[])"
    )


class OutboxCleaner:
    """Deletes published outbox rows in the background, many per statement.

    ``discard`` returns at once; a task deletes whatever has gathered since its last
    statement, so under load one statement covers many batches, and no publisher waits for a
    delete. ``close`` deletes what is still pending.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def discard(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        self._pending.extend(ids)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-cleaner")

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        await self._flush()

    async def _run(self) -> None:
        # Ends when nothing is pending: no task outlives the work.
        while self._pending:
            await self._flush()

    async def _flush(self) -> None:
        ids, self._pending = self._pending, []
        try:
            await delete_outbox(self._pool, ids)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            # Published but still stored: the sweeper publishes them again, consumers dedup.
            log.warning("outbox.delete_failed", count=len(ids), error=str(error))


async def claim_stale_outbox_txn(
    connection: Connection,
    older_than_seconds: float,
    limit: int,
    partitions: Sequence[int] | None = None,
    skip: Collection[int] = (),
) -> list[OutboxRecord]:
    """Lock up to ``limit`` rows older than the grace period, skipping rows others hold and
    the ids in ``skip``. With ``partitions``, only the rows those partitions wrote, and the
    rows of no partition (the client's) if partition 0 is one of them."""
    rows = await connection.fetch(
        """
        SELECT id, exchange, routing_key, message_id, correlation_id, message_type, body
        FROM outbox
        WHERE created_at < now() - make_interval(secs => $1)
          AND ($3::smallint[] IS NULL
               OR partition = ANY($3::smallint[])
               OR (partition IS NULL AND 0 = ANY($3::smallint[])))
          AND NOT (id = ANY($4::bigint[]))
        ORDER BY id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        older_than_seconds,
        limit,
        None if partitions is None else list(partitions),
        list(skip),
    )
    return [
        OutboxRecord(
            row["id"],
            OutgoingMessage(
                exchange=row["exchange"],
                routing_key=row["routing_key"],
                message_id=str(row["message_id"]),
                correlation_id=row["correlation_id"],
                message_type=row["message_type"],
                body=row["body"].encode(),
            ),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class OutboxBacklog:
    """The rows waiting to be published, and how long the oldest has waited (0 when none)."""

    rows: int
    oldest_age_seconds: float


async def outbox_backlog(
    connection: Connection, partitions: Sequence[int] | None = None
) -> OutboxBacklog:
    """The backlog of the rows ``partitions`` wrote (every row: None), with the rows of no
    partition if partition 0 is one of them, as ``claim_stale_outbox_txn`` takes them."""
    row = await connection.fetchrow(
        """
        SELECT count(*) AS rows,
               coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
        FROM outbox
        WHERE $1::smallint[] IS NULL
           OR partition = ANY($1::smallint[])
           OR (partition IS NULL AND 0 = ANY($1::smallint[]))
        """,
        None if partitions is None else list(partitions),
    )
    assert row is not None
    return OutboxBacklog(row["rows"], max(row["oldest"], 0.0))


async def delete_outbox_txn(connection: Connection, ids: Sequence[int]) -> None:
    """Delete rows inside the caller's transaction (the sweeper's, which claimed them)."""
    await connection.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))


async def publish_committed(
    cleaner: OutboxCleaner,
    publisher: Publisher,
    records: Sequence[OutboxRecord],
    *,
    carried_as: str | None = None,
) -> bool:
    """Publish rows just committed and hand them to ``cleaner`` to delete. False if they stay
    for the sweeper. With ``carried_as``, the messages for one queue travel together in
    carriers of that type (ADR 17); the sweeper would send them one by one."""
    if not records:
        return True
    messages = [record.message for record in records]
    try:
        await publisher.publish_many(together(messages, carried_as) if carried_as else messages)
    except PublishFailedError as error:
        log.warning("outbox.publish_deferred", count=len(records), error=str(error))
        return False
    cleaner.discard([record.id for record in records])
    return True
