"""Orchestrator members and partition leases (ADR 27): who runs, who holds which partition.

Every orchestrator process is a member of its deployment (its namespace): it heartbeats, and
holds leases on a fair share of the partitions. Every time comes from the database's clock, so
members on hosts whose clocks disagree still agree on what has expired. A lease's epoch grows
each time the partition changes owner; ``fence_txn`` (and the batch statement, through
``LEASE_FENCE``) fails a transaction whose process no longer holds its partition at that
epoch, with ``LeaseLostError``.

A member's database sessions carry its ``session_name``, so that the others can end them once
it has lapsed (``end_lapsed_sessions``): a process paused between two messages of a statement
keeps its transaction's row locks, and Postgres 15 has no time-out for that state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from durable.store.database import Connection
from durable.store.errors import LeaseLostError, is_lease_lost


@dataclass(frozen=True)
class Lease:
    """``member`` holds ``partition`` of ``namespace`` at ``epoch``."""

    namespace: str
    partition: int
    member: str
    epoch: int


@dataclass(frozen=True)
class Acquired:
    """A lease just taken; ``previous`` is the member whose expired lease it replaced (None:
    the partition was free)."""

    lease: Lease
    previous: str | None


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_age_seconds: float


@dataclass(frozen=True)
class LeaseRow:
    partition: int
    owner: str | None
    epoch: int
    held_seconds: float | None
    expires_in_seconds: float | None


# Postgres keeps the first 63 bytes of an application_name, and only printable ASCII.
_MAX_SESSION_NAME = 63


def session_name(namespace: str, member: str) -> str:
    """The ``application_name`` of ``member``'s sessions: readable in ``pg_stat_activity``
    when it fits, a digest of the two otherwise."""
    name = f"durable orchestrator {member}@{namespace}"
    if len(name) <= _MAX_SESSION_NAME and name.isascii() and name.isprintable():
        return name
    digest = hashlib.blake2s(f"{namespace}\0{member}".encode(), digest_size=8).hexdigest()
    return f"durable orchestrator {digest}"


async def end_lapsed_sessions(
    connection: Connection, namespace: str, lease_seconds: float, *, wait_seconds: float
) -> dict[str, int]:
    """End the database sessions of every member of ``namespace`` whose last heartbeat is a
    lease old, waiting up to ``wait_seconds`` for each to go; how many each member had.

    A lapsed member holds no lease any more, and every write it tries is refused; but a
    transaction it had open keeps its row locks until its session ends, which, for a process
    paused between a statement's Parse and its Bind, Postgres 15 would not do by itself.
    Needs the right to signal those sessions: the same role, or ``pg_signal_backend``.
    """
    lapsed = await connection.fetch(
        "SELECT member_id FROM orchestrator_members "
        "WHERE namespace = $1 AND heartbeat_at <= now() - make_interval(secs => $2)",
        namespace,
        lease_seconds,
    )
    names = {session_name(namespace, row["member_id"]): row["member_id"] for row in lapsed}
    if not names:
        return {}
    rows = await connection.fetch(
        "SELECT application_name, pg_terminate_backend(pid, $2) AS ended "
        "FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = ANY($1::text[]) AND pid <> pg_backend_pid()",
        list(names),
        max(1, round(wait_seconds * 1000)),
    )
    ended: dict[str, int] = {}
    for row in rows:
        member = names[row["application_name"]]
        ended[member] = ended.get(member, 0) + 1
    return ended


async def join_txn(
    connection: Connection, namespace: str, member: str, host: str, pid: int, partitions: int
) -> None:
    """Register ``member`` (or refresh it) and make sure every partition has its lease row."""
    await connection.execute(
        "INSERT INTO partition_leases (namespace, partition) "
        "SELECT $1, p FROM generate_series(0, $2 - 1) AS p ON CONFLICT DO NOTHING",
        namespace,
        partitions,
    )
    await heartbeat(connection, namespace, member, host, pid)


async def heartbeat(
    connection: Connection, namespace: str, member: str, host: str, pid: int
) -> None:
    await connection.execute(
        "INSERT INTO orchestrator_members (namespace, member_id, host, pid) "
        "VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (namespace, member_id) DO UPDATE SET heartbeat_at = now()",
        namespace,
        member,
        host,
        pid,
    )


async def live_members(connection: Connection, namespace: str, lease_seconds: float) -> list[str]:
    """The members that heartbeat within the last ``lease_seconds``, in id order."""
    rows = await connection.fetch(
        "SELECT member_id FROM orchestrator_members "
        "WHERE namespace = $1 AND heartbeat_at > now() - make_interval(secs => $2) "
        "ORDER BY member_id",
        namespace,
        lease_seconds,
    )
    return [row["member_id"] for row in rows]


async def renew(connection: Connection, held: Sequence[Lease], lease_seconds: float) -> set[int]:
    """Extend the leases ``held``; the partitions whose lease is still this member's at its
    epoch (the others were lost)."""
    if not held:
        return set()
    rows = await connection.fetch(
        "UPDATE partition_leases AS l SET expires_at = now() + make_interval(secs => $4) "
        "FROM unnest($2::smallint[], $3::bigint[]) AS h(partition, epoch) "
        "WHERE l.namespace = $1 AND l.partition = h.partition AND l.epoch = h.epoch "
        "AND l.owner = $5 RETURNING l.partition",
        held[0].namespace,
        [lease.partition for lease in held],
        [lease.epoch for lease in held],
        lease_seconds,
        held[0].member,
    )
    return {row["partition"] for row in rows}


async def acquire(
    connection: Connection,
    namespace: str,
    member: str,
    partitions: int,
    count: int,
    lease_seconds: float,
) -> list[Acquired]:
    """Take up to ``count`` partitions that are free or whose lease expired, lowest first."""
    if count <= 0:
        return []
    rows = await connection.fetch(
        """
        WITH candidates AS (
            SELECT partition, owner FROM partition_leases
            WHERE namespace = $1 AND partition < $3
              AND (owner IS NULL OR expires_at < now())
            ORDER BY partition
            LIMIT $4
            FOR UPDATE SKIP LOCKED
        )
        UPDATE partition_leases AS l
        SET owner = $2, epoch = l.epoch + 1, acquired_at = now(),
            expires_at = now() + make_interval(secs => $5)
        FROM candidates AS c
        WHERE l.namespace = $1 AND l.partition = c.partition
        RETURNING l.partition, l.epoch, c.owner AS previous
        """,
        namespace,
        member,
        partitions,
        count,
        lease_seconds,
    )
    return [
        Acquired(Lease(namespace, row["partition"], member, row["epoch"]), row["previous"])
        for row in sorted(rows, key=lambda row: row["partition"])
    ]


async def release(connection: Connection, leases: Sequence[Lease]) -> None:
    """Give ``leases`` up at once, so another member takes them without waiting for expiry.

    Every change of owner locks the row ``FOR UPDATE`` first, so that it waits for the writes
    in flight, which hold it ``FOR KEY SHARE`` (``durable_lease_fence``); renewals do not.
    """
    if not leases:
        return
    await connection.execute(
        "WITH locked AS ("
        " SELECT l.partition FROM partition_leases AS l"
        " JOIN unnest($2::smallint[], $3::bigint[]) AS h(partition, epoch)"
        " ON l.partition = h.partition AND l.epoch = h.epoch"
        " WHERE l.namespace = $1 AND l.owner = $4 FOR UPDATE OF l) "
        "UPDATE partition_leases AS l SET owner = NULL, expires_at = NULL "
        "FROM locked WHERE l.namespace = $1 AND l.partition = locked.partition",
        leases[0].namespace,
        [lease.partition for lease in leases],
        [lease.epoch for lease in leases],
        leases[0].member,
    )


async def leave(connection: Connection, namespace: str, member: str) -> None:
    """``member`` stops: its leases are freed and it is no longer counted."""
    await connection.execute(
        "WITH locked AS (SELECT partition FROM partition_leases"
        " WHERE namespace = $1 AND owner = $2 FOR UPDATE) "
        "UPDATE partition_leases AS l SET owner = NULL, expires_at = NULL "
        "FROM locked WHERE l.namespace = $1 AND l.partition = locked.partition",
        namespace,
        member,
    )
    await connection.execute(
        "DELETE FROM orchestrator_members WHERE namespace = $1 AND member_id = $2",
        namespace,
        member,
    )


async def fence_txn(connection: Connection, lease: Lease) -> None:
    """Fail the transaction unless ``lease`` still holds; the lease row stays locked (``FOR KEY
    SHARE``) until it ends, so the partition cannot change owner while it writes."""
    try:
        await connection.execute(
            "SELECT durable_lease_fence($1, $2::smallint, $3, $4)",
            lease.namespace,
            lease.partition,
            lease.member,
            lease.epoch,
        )
    except asyncpg.PostgresError as error:
        if is_lease_lost(error):
            raise LeaseLostError(str(error)) from error
        raise


def lease_arguments(lease: Lease | None) -> Mapping[str, object]:
    """The batch statement's lease parameters (all None: no fence)."""
    if lease is None:
        return {
            "lease_namespace": None,
            "lease_partition": None,
            "lease_member": None,
            "lease_epoch": None,
        }
    return {
        "lease_namespace": lease.namespace,
        "lease_partition": lease.partition,
        "lease_member": lease.member,
        "lease_epoch": lease.epoch,
    }


async def members_and_leases(
    connection: Connection | asyncpg.Pool, namespace: str
) -> tuple[list[MemberRow], list[LeaseRow]]:
    """What ``durable-ops members`` shows: every member, and every partition's lease."""
    members = await connection.fetch(
        "SELECT member_id, host, pid, started_at, "
        "extract(epoch FROM now() - heartbeat_at)::float8 AS age "
        "FROM orchestrator_members WHERE namespace = $1 ORDER BY member_id",
        namespace,
    )
    leases = await connection.fetch(
        "SELECT partition, owner, epoch, "
        "extract(epoch FROM now() - acquired_at)::float8 AS held, "
        "extract(epoch FROM expires_at - now())::float8 AS expires_in "
        "FROM partition_leases WHERE namespace = $1 ORDER BY partition",
        namespace,
    )
    return (
        [
            MemberRow(m["member_id"], m["host"], m["pid"], m["started_at"], m["age"])
            for m in members
        ],
        [
            LeaseRow(
                row["partition"],
                row["owner"],
                row["epoch"],
                row["held"] if row["owner"] is not None else None,
                row["expires_in"],
            )
            for row in leases
        ],
    )


async def fence_all_txn(connection: Connection, held: Sequence[Lease]) -> None:
    """``fence_txn`` for several leases of one member, in one statement."""
    if not held:
        return
    try:
        await connection.execute(
            "SELECT durable_lease_fence($1, p, $3, e) "
            "FROM unnest($2::smallint[], $4::bigint[]) AS h(p, e)",
            held[0].namespace,
            [lease.partition for lease in held],
            held[0].member,
            [lease.epoch for lease in held],
        )
    except asyncpg.PostgresError as error:
        if is_lease_lost(error):
            raise LeaseLostError(str(error)) from error
        raise
