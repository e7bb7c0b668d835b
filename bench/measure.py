"""Small helpers shared by every system's workloads: percentiles, databases, waiting, CPU."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import psutil


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def latency_summary(prefix: str, seconds: Sequence[float]) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": ms(percentile(seconds, 50)),
        f"{prefix}p99_ms": ms(percentile(seconds, 99)),
    }


def best_round(rounds: Sequence[dict[str, float]], key: str) -> dict[str, float]:
    """The round with the highest ``key``, and the lowest ``key`` of all as ``<key>_min``.

    What disturbs a round on a shared machine (another process's work, a vacuum, a system's
    own state left by the round before) only ever slows it down, so the best of a few rounds
    is the closest to what the system can do, for every system alike.
    """
    ordered = sorted(rounds, key=lambda r: r[key])
    return {**ordered[-1], f"{key}_min": ordered[0][key]}


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def create_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, interval: float, what: str
) -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        await asyncio.sleep(interval)


# Time the kernel counts as busy; "guest" time is already inside "user".
_NOT_BUSY = frozenset({"idle", "iowait", "guest", "guest_nice"})


def busy_cpu_seconds() -> float:
    """The CPU time the whole machine has spent busy so far, summed over every core.

    The difference across a workload is what it cost in CPU, whichever processes did the
    work (services, broker, database, the harness): the one measure that treats every system
    alike, however it is split into processes.
    """
    times = psutil.cpu_times()
    return float(sum(getattr(times, name) for name in times._fields if name not in _NOT_BUSY))


def cpu_ms_per(busy_seconds: float, count: int) -> float:
    return round(busy_seconds * 1000 / count, 3)


SETTLED_BUSY_SHARE = 0.2
"""The machine counts as settled once it is busy less than this share of its cores (over all
of them) for a whole second: what an earlier workload left running (autovacuum, sweepers,
compaction) has ended."""
SETTLE_TIMEOUT_SECONDS = 60.0


async def wait_settled(
    busy: Callable[[], float] = busy_cpu_seconds,
    cores: int | None = None,
    *,
    window: float = 1.0,
    timeout: float = SETTLE_TIMEOUT_SECONDS,
) -> tuple[float, bool]:
    """Wait until the whole machine has been busy less than ``SETTLED_BUSY_SHARE`` of its
    cores over a ``window``, or ``timeout`` has passed; return the seconds waited and whether
    it settled. Every system's W7 waits so before its resumes (issue 21), so that none pays
    for what the workloads before it left running."""
    cores = cores or psutil.cpu_count() or 1
    began = time.monotonic()
    while True:
        before, start = busy(), time.monotonic()
        await asyncio.sleep(window)
        share = (busy() - before) / ((time.monotonic() - start) * cores)
        waited = time.monotonic() - began
        if share < SETTLED_BUSY_SHARE:
            return waited, True
        if waited >= timeout:
            return waited, False
