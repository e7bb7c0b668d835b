"""The ``timers`` table: a durable timer's row, from its ``TimerCreated`` to its fire.

A row is written with its ``TimerCreated`` event, in the same statement (``batch``), and
deleted when the timer fires, is cancelled, or its instance ends. The orchestrator's sweeper
claims the rows of timers overdue by more than a grace period and fires them again
(``services.orchestrator.timers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from durable.store.columns import RowShape, column
from durable.store.database import Connection


@dataclass(frozen=True)
class TimerRow:
    instance_id: str
    execution_id: str
    timer_id: int
    fire_at: datetime
    correlation_id: str

    @property
    def key(self) -> TimerKey:
        return TimerKey(self.instance_id, self.execution_id, self.timer_id)


@dataclass(frozen=True)
class TimerKey:
    instance_id: str
    execution_id: str
    timer_id: int


TIMER_ROWS: RowShape[TimerRow] = RowShape(
    (
        column("instance_id", "text"),
        column("execution_id", "text"),
        column("timer_id", "int"),
        column("fire_at", "timestamptz"),
        column("correlation_id", "text"),
    )
)
TIMER_KEYS: RowShape[TimerKey] = RowShape(
    (column("instance_id", "text"), column("execution_id", "text"), column("timer_id", "int"))
)


@dataclass(frozen=True)
class TimerChanges:
    """The timer rows a batch adds and removes."""

    created: Sequence[TimerRow] = ()
    closed: Sequence[TimerKey] = ()
    """Timers that fired or were cancelled."""
    ended: Sequence[str] = ()
    """Instances that ended (or continued as new): none of their timers is awaited any more."""

    def net(self) -> tuple[list[TimerRow], list[TimerKey], list[str]]:
        """The same changes as applying ``created``, then ``closed``, then ``ended`` one after
        the other: in one statement the deletes cannot see the rows it inserts, so a timer
        created and closed in the same batch is simply not inserted."""
        closed = {(k.instance_id, k.execution_id, k.timer_id) for k in self.closed}
        ended = set(self.ended)
        created = [
            t
            for t in self.created
            if t.instance_id not in ended
            and (t.instance_id, t.execution_id, t.timer_id) not in closed
        ]
        return created, list(self.closed), sorted(ended)


async def claim_overdue_timers_txn(
    connection: Connection, grace_seconds: float, limit: int
) -> list[TimerRow]:
    """Lock up to ``limit`` timers overdue by more than ``grace_seconds`` and not swept
    within that time either, most overdue first, skipping rows others hold."""
    rows = await connection.fetch(
        """
        SELECT instance_id, execution_id, timer_id, fire_at, correlation_id
        FROM timers
        WHERE fire_at < now() - make_interval(secs => $1)
          AND (swept_at IS NULL OR swept_at < now() - make_interval(secs => $1))
        ORDER BY fire_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        grace_seconds,
        limit,
    )
    return [TimerRow(**dict(row)) for row in rows]


_MARK_SWEPT = f"""
    UPDATE timers t SET swept_at = now()
    FROM {TIMER_KEYS.unnest(1, "d")}
    WHERE t.instance_id = d.instance_id
      AND t.execution_id = d.execution_id
      AND t.timer_id = d.timer_id
"""


async def mark_timers_swept_txn(connection: Connection, timers: Sequence[TimerKey]) -> None:
    """Record that ``timers`` were fired by the sweeper now (it fires them again only after
    another grace period)."""
    await connection.execute(_MARK_SWEPT, *TIMER_KEYS.arrays(timers))
