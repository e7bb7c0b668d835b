"""The transactional outbox: messages written in the same transaction as the state they announce.

Whoever commits publishes its own rows right after the commit and then deletes them; a relay
(in the orchestrator service) sweeps rows that stayed behind because their writer crashed
between commit and publish. Consumers drop duplicates, so publishing a row twice is harmless;
never publishing it is what the outbox prevents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from services.common.amqp import OutgoingMessage, Publisher, PublishFailedError
from services.common.db import Connection

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    message: OutgoingMessage


async def insert_outbox_txn(
    connection: Connection, messages: Sequence[OutgoingMessage]
) -> list[OutboxRecord]:
    """Insert ``messages`` inside the caller's transaction; return them with their row ids."""
    if not messages:
        return []
    rows = await connection.fetch(
        """
        INSERT INTO outbox (exchange, routing_key, message_id, correlation_id, message_type, body)
        SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[])
        RETURNING id
        """,
        [m.exchange for m in messages],
        [m.routing_key for m in messages],
        [m.message_id for m in messages],
        [m.correlation_id for m in messages],
        [m.message_type for m in messages],
        [m.body.decode() for m in messages],
    )
    return [OutboxRecord(row["id"], message) for row, message in zip(rows, messages, strict=True)]


async def delete_outbox(pool: asyncpg.Pool, ids: Sequence[int]) -> None:
    if ids:
        await pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))


async def claim_stale_outbox_txn(
    connection: Connection, older_than_seconds: float, limit: int
) -> list[OutboxRecord]:
    """Lock up to ``limit`` rows older than the grace period, skipping rows others hold."""
    rows = await connection.fetch(
        """
        SELECT id, exchange, routing_key, message_id, correlation_id, message_type, body
        FROM outbox
        WHERE created_at < now() - make_interval(secs => $1)
        ORDER BY id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        older_than_seconds,
        limit,
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


async def publish_committed(
    pool: asyncpg.Pool, publisher: Publisher, records: Sequence[OutboxRecord]
) -> bool:
    """Publish rows just committed, then delete them. False if they stay for the sweeper."""
    if not records:
        return True
    try:
        await publisher.publish_many(record.message for record in records)
    except PublishFailedError as error:
        log.warning("outbox.publish_deferred", count=len(records), error=str(error))
        return False
    try:
        await delete_outbox(pool, [record.id for record in records])
    except (asyncpg.PostgresError, OSError) as error:
        # Published but still stored: the sweeper publishes them again, consumers dedup.
        log.warning("outbox.delete_failed", count=len(records), error=str(error))
    return True
