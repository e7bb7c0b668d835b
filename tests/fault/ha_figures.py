"""What the ha fault tests measure of an outage, from the store: when commits resumed, the
longest pause between commits, how late the timers due meanwhile fired, the throughput
around it; and how the starts refused meanwhile are summed up (``tests.fault.ha_load``)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tests.fault.http_starts import Attempt
from tests.fault.replicas import ScaleOut, seconds


@dataclass(frozen=True)
class Outage:
    """One fault (the clock of ``HaDeployment.clock``): when it began, when the first commit
    after it began, when every partition had committed since, and when what failed was back
    (a promoted standby, the queues a lost node led led again, a process started again)."""

    what: str
    began: datetime
    first_commit: datetime
    every_partition: datetime
    restored: datetime | None = None

    @property
    def ended(self) -> datetime:
        """When every partition had committed again and what failed was back."""
        return max(self.every_partition, self.restored or self.every_partition)

    @property
    def recovery(self) -> float:
        """Seconds from the fault to its end."""
        return seconds(self.ended, self.began)

    def holds(self, at: datetime) -> bool:
        return self.began <= at <= self.ended


async def first_commit_after(deployment: ScaleOut, since: datetime) -> datetime:
    """When the first transaction that appended events after ``since`` began."""

    async def committed() -> datetime:
        try:
            first = await deployment.pool.fetchval(
                "SELECT min(recorded_at) FROM events WHERE recorded_at > $1", since
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise AssertionError(f"the store does not answer yet: {error!r}") from error
        assert first is not None, "no commit since the fault"
        return first  # type: ignore[no-any-return]

    return await deployment.eventually(committed, timeout=60, interval=0.1)


async def every_partition_commits(deployment: ScaleOut, since: datetime) -> dict[int, datetime]:
    everything = set(range(deployment.topology.partitions))
    firsts = await deployment.first_commits_after(since, everything)
    assert set(firsts) == everything, f"no commit yet on {sorted(everything - set(firsts))}"
    return firsts


async def longest_pause(pool: asyncpg.Pool, start: datetime, end: datetime) -> float:
    """The longest time (s) from ``start`` to ``end`` in which nothing was committed."""
    rows = await pool.fetch(
        "SELECT DISTINCT recorded_at FROM events WHERE recorded_at >= $1 AND recorded_at < $2",
        start,
        end,
    )
    times = [start, *sorted(row["recorded_at"] for row in rows), end]
    return max(seconds(b, a) for a, b in itertools.pairwise(times))


async def timer_lateness(
    deployment: ScaleOut, sleepers: list[str], outage: Outage
) -> dict[str, float]:
    """How late (s) the timer of each of ``sleepers`` due during ``outage`` was recorded as
    fired (``problems`` has checked that each fired once)."""
    rows = await deployment.pool.fetch(
        "SELECT instance_id, recorded_at, (payload->>'fire_at')::timestamptz AS fire_at "
        "FROM events WHERE event_type = 'TimerFired' AND instance_id = ANY($1::text[])",
        sleepers,
    )
    return {
        row["instance_id"]: seconds(row["recorded_at"], row["fire_at"])
        for row in rows
        if outage.holds(row["fire_at"])
    }


async def completions_per_second(pool: asyncpg.Pool, start: datetime, end: datetime) -> float:
    completed = await pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'ExecutionCompleted' "
        "AND recorded_at >= $1 AND recorded_at < $2",
        start,
        end,
    )
    return int(completed) / seconds(end, start)


def summary(refused: list[Attempt]) -> str:
    kinds: dict[str, int] = {}
    for attempt in refused:
        kind = str(attempt.status or "no answer")
        if "whether it was cannot be known" in attempt.message:
            kind += " outcome unknown"
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
