"""The benchmark's workflows and activities in Temporal's Python SDK, as a Temporal user
writes them: ``@workflow.defn`` classes calling ``workflow.execute_activity``, a fan-out with
``asyncio.gather``, signals, ``workflow.wait_condition``, ``workflow.sleep``, and an entity
as a workflow that continues as new.

A module of its own with nothing else in it, because the SDK's default workflow sandbox
re-imports the module of every workflow it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

CITIES = ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]
# Never reached: a step of the benchmark takes milliseconds. The SDK requires a timeout.
ACTIVITY_TIMEOUT = timedelta(minutes=5)


@activity.defn
async def noop(value: int) -> int:
    return value


@activity.defn
async def say_hello(city: str) -> str:
    return f"Hello {city}!"


@workflow.defn
class Sequence:
    """W1: sequential activities."""

    @workflow.run
    async def run(self, steps: int) -> int:
        done = 0
        for step in range(steps):
            result = await workflow.execute_activity(
                noop, step, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            done += result == step
        return done


@workflow.defn
class HelloCities:
    """W2: the five-activity chain."""

    @workflow.run
    async def run(self) -> list[str]:
        return [
            await workflow.execute_activity(
                say_hello, city, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            for city in CITIES
        ]


@workflow.defn
class FanOut:
    """W3: fan-out and fan-in."""

    @workflow.run
    async def run(self, count: int) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(noop, i, start_to_close_timeout=ACTIVITY_TIMEOUT)
                for i in range(count)
            )
        )
        return sum(results)


@workflow.defn
class EventWaiter:
    """W4: counts "ping" signals until it is told to stop."""

    def __init__(self) -> None:
        self.pings = 0
        self.stopped = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.stopped)
        return self.pings

    @workflow.signal
    def ping(self) -> None:
        self.pings += 1

    @workflow.signal
    def stop(self) -> None:
        self.stopped = True


@workflow.defn
class Timers:
    """W5: durable timers, all of an instance's awaited together."""

    @workflow.run
    async def run(self, delays: list[float]) -> int:
        await asyncio.gather(*(workflow.sleep(delay) for delay in delays))
        return len(delays)


@workflow.defn
class Approval:
    """W7: waits, with no deadline, for an "approve" signal."""

    def __init__(self) -> None:
        self.approval: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.approval is not None)
        assert self.approval is not None
        return self.approval

    @workflow.signal
    def approve(self, value: str) -> None:
        self.approval = value


@workflow.defn
class Counter:
    """W9: an entity as Temporal writes one, a workflow per entity living as long as the
    entity. Its state is a workflow variable, each "add" signal is handled one at a time and
    recorded in its history, and the "total" query reads it. After ``signals_per_run`` signals
    it continues as new with its state, so a long-lived entity's history stays bounded; signals
    that reach the server during the hand-over are not lost: the server refuses to close a run
    with signals its code has not seen, and hands them to the same run first."""

    def __init__(self) -> None:
        self.total = 0
        self.handled = 0
        self.runs = 1

    @workflow.run
    async def run(self, total: int, runs: int, signals_per_run: int) -> None:
        # ``+=``: a signal that started the workflow may be handled before this line runs.
        self.total += total
        self.runs = runs
        await workflow.wait_condition(lambda: self.handled >= signals_per_run)
        workflow.continue_as_new(args=[self.total, runs + 1, signals_per_run])

    @workflow.signal
    def add(self, amount: int) -> None:
        self.total += amount
        self.handled += 1

    @workflow.query
    def state(self) -> list[int]:
        """The total, and how many runs the entity has had (continued as new ``runs - 1``
        times)."""
        return [self.total, self.runs]


WORKFLOWS = [Sequence, HelloCities, FanOut, EventWaiter, Timers, Approval, Counter]
ACTIVITIES: list[Callable[..., Any]] = [noop, say_hello]
