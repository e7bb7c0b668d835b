"""A load of mixed shapes for the scale-out tests: chains, fan-outs, durable timers and waits
for external events that the test raises while it runs; then the checks that every instance
completed once, with its own output, and that nothing in its history happened twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts import (
    EventRaised,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.client import DurableClient
from durable.store.errors import is_unavailable
from durable.store.events import StoredEvent, load_histories_txn

CHAIN_STEPS = 3
RAISE_PATIENCE_SECONDS = 120.0
RAISE_RETRY_PAUSE_SECONDS = 0.5
FAN_OUT = 4
STEP_SECONDS = 0.2
COMPLETIONS = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated)


@dataclass(frozen=True)
class Shape:
    """``count`` instances of ``orchestrator``; ``inputs`` gives the input of the i-th (by
    default ``input_for``)."""

    orchestrator: str
    count: int
    inputs: Callable[[int], Any] | None = None

    def input(self, index: int) -> Any:
        return input_for(self.orchestrator, index) if self.inputs is None else self.inputs(index)


# 2,000 instances: the chains and fan-outs keep activities flowing, the timers (due 6 to 15 s
# after their start) and the event waits keep instances in flight across a fault.
SHAPES = (
    Shape("slow_chain", 600),
    Shape("slow_fan_out", 400),
    Shape("sleeper", 500),
    Shape("waits_for_approval", 500),
)


def input_for(shape: str, index: int) -> Any:
    if shape == "slow_chain":
        return {"steps": CHAIN_STEPS, "delay": STEP_SECONDS}
    if shape == "slow_fan_out":
        return {"count": FAN_OUT, "delay": STEP_SECONDS}
    if shape == "sleeper":
        return 6 + index % 10
    return 3600  # waits_for_approval: its deadline, never reached


class MixedWorkload:
    """Starts the instances, raises their events, waits for them and checks every one."""

    def __init__(
        self, client: DurableClient, pool: asyncpg.Pool, shapes: Sequence[Shape] = SHAPES
    ) -> None:
        self._client = client
        self._pool = pool
        self._shapes = shapes
        self.shapes: dict[str, str] = {}  # instance id -> orchestrator
        self.raises_retried = 0
        """Events raised again because the store could not be reached."""

    @property
    def size(self) -> int:
        return len(self.shapes)

    async def start(self) -> None:
        for shape in self._shapes:
            for first in range(0, shape.count, 250):
                ids = await asyncio.gather(
                    *(
                        self._client.start_new(shape.orchestrator, input=shape.input(i))
                        for i in range(first, min(first + 250, shape.count))
                    )
                )
                self.shapes.update(dict.fromkeys(ids, shape.orchestrator))

    @property
    def waiting(self) -> list[str]:
        """The instances that wait for an event, in the order they were started."""
        return [i for i, shape in self.shapes.items() if shape == "waits_for_approval"]

    async def raise_events(self, waiting: Sequence[str] | None = None) -> None:
        """Raise the event of each of ``waiting`` (by default every instance that waits)."""
        waiting = self.waiting if waiting is None else waiting
        for first in range(0, len(waiting), 250):
            await asyncio.gather(*(self._raise(i) for i in waiting[first : first + 250]))

    async def _raise(self, instance_id: str) -> None:
        """Raise an instance's event as a careful caller does: again (with the same message
        id, which the orchestrator drops if the first arrived) while the store cannot be
        reached, as when this client's pooled connections are to a primary that hangs."""
        message_id = uuid.uuid4()
        deadline = time.monotonic() + RAISE_PATIENCE_SECONDS
        while True:
            try:
                await self._client.raise_event(
                    instance_id, "Approval", {"for": instance_id}, message_id=message_id
                )
                return
            except Exception as error:
                if not is_unavailable(error) or time.monotonic() > deadline:
                    raise
                self.raises_retried += 1
                await asyncio.sleep(RAISE_RETRY_PAUSE_SECONDS)  # a caller's back-off

    async def ended(self) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) "
                "AND status = ANY($2::text[])",
                list(self.shapes),
                [s.value for s in OrchestrationStatus if s.is_terminal],
            )
        )

    async def progress(self) -> int:
        """Activity results recorded so far, over all instances."""
        query = "SELECT count(*) FROM events WHERE event_type = 'TaskCompleted'"
        return int(await self._pool.fetchval(query))

    async def all_ended(self) -> bool:
        ended = await self.ended()
        assert ended == self.size, f"{ended} of {self.size} instances have ended"
        return True

    async def problems(self) -> dict[str, list[str]]:
        """What is wrong with each instance that ended wrongly (empty when none did): its
        status and output, and its history (one start, one end, each task scheduled once and
        answered once, one timer fired, one event received, seqs without gaps)."""
        rows = await self._pool.fetch(
            "SELECT instance_id, execution_id, status, output FROM instances "
            "WHERE instance_id = ANY($1::text[])",
            list(self.shapes),
        )
        found: dict[str, list[str]] = {i: ["no row"] for i in self.shapes}
        async with self._pool.acquire() as connection:
            histories = await load_histories_txn(connection, dict.fromkeys(self.shapes, 1))
        for row in rows:
            instance_id = row["instance_id"]
            shape = self.shapes[instance_id]
            problems = []
            if row["status"] != OrchestrationStatus.COMPLETED.value:
                problems.append(f"status {row['status']}")
            else:
                problems += output_problems(
                    shape, instance_id, row["execution_id"], _json(row["output"])
                )
            problems += history_problems(shape, histories.get(instance_id, []))
            found[instance_id] = problems
        return {i: p for i, p in found.items() if p}


def output_problems(shape: str, instance_id: str, execution_id: str, output: Any) -> list[str]:
    if shape == "slow_chain":
        # Each step's result names its own task: the right result reached the right task.
        expected: Any = [
            {"step": s, "key": f"{instance_id}:{execution_id}:{s}"} for s in range(CHAIN_STEPS)
        ]
    elif shape == "slow_fan_out":
        expected = list(range(FAN_OUT))
    elif shape == "waits_for_approval":
        expected = {"answer": {"for": instance_id}}
    else:
        due, resumed = (datetime.fromisoformat(output[k]) for k in ("due", "resumed"))
        return [] if resumed >= due else [f"resumed at {resumed}, before its due time {due}"]
    return [] if output == expected else [f"output {output!r}, expected {expected!r}"]


def history_problems(shape: str, history: list[StoredEvent]) -> list[str]:
    if not history:
        return ["no events"]
    problems = []
    seqs = [stored.seq for stored in history]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"seqs are not 1..{len(seqs)} without gaps: {seqs}")
    events = [stored.event for stored in history]
    kinds = Counter(type(e) for e in events)
    if kinds[ExecutionStarted] != 1:
        problems.append(f"{kinds[ExecutionStarted]} ExecutionStarted events")
    ends = [e.event_type for e in events if isinstance(e, COMPLETIONS)]
    if len(ends) != 1 or not isinstance(events[-1], COMPLETIONS):
        problems.append(f"completion events {ends}, last event {events[-1].event_type}")
    scheduled = Counter(e.event_id for e in events if isinstance(e, TaskScheduled))
    results = Counter(
        e.task_scheduled_id for e in events if isinstance(e, TaskCompleted | TaskFailed)
    )
    tasks = {"slow_chain": CHAIN_STEPS, "slow_fan_out": FAN_OUT}.get(shape, 0)
    if len(scheduled) != tasks or any(n != 1 for n in scheduled.values()):
        problems.append(f"tasks scheduled (id: times): {dict(scheduled)}")
    if results != Counter(scheduled.keys()):
        problems.append(f"results per task (id: times): {dict(results)}")
    # The sleeper's timer fires; the event wait's deadline (an hour) is created, never fired.
    created, fired = shape in ("sleeper", "waits_for_approval"), shape == "sleeper"
    if (kinds[TimerCreated], kinds[TimerFired]) != (created, fired):
        problems.append(f"{kinds[TimerCreated]} timers created, {kinds[TimerFired]} fired")
    if kinds[EventRaised] != (shape == "waits_for_approval"):
        problems.append(f"{kinds[EventRaised]} events received")
    return problems


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
