"""W9 on Temporal: signals to entity workflows (``temporal_workflows.Counter``), measured as
ours is (``bench/entities.py``): ``w9_signals`` "add 1" signals to one entity-workflow, then
as many spread round-robin over ``w9_entities`` of them, ``W9_SIGNALS_IN_FLIGHT`` in flight.

Each signal is sent as a Temporal client signals an entity, with signal-with-start: the
entity's workflow is started by its first signal, as ``signal_entity`` creates ours, so on both
systems the entities come into being inside the measured time. The server answers once it has
recorded the signal in the workflow's history (ours: once the broker has confirmed it).

The rate is the signals over the time from the first send until the workflows' states, read by
their "state" query, add up to them all. A query is answered by the worker, which also runs the
workflows, so the driver queries only once every signal is sent (the end cannot come earlier),
and stops querying a workflow once it holds its share.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from bench.config import W9_SIGNALS_IN_FLIGHT, Sizes
from bench.peers import temporal_workflows as flows
from bench.peers.common import check

QUERIES_IN_FLIGHT = 32
"""As many as the driver's starts in flight (``temporal_bench.STARTS_IN_FLIGHT``)."""


async def w9(client: Client, task_queue: str, sizes: Sizes) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    signals = sizes.w9_signals
    per_run = sizes.w9_temporal_signals_per_run
    metrics: dict[str, float] = {"signals_per_run": per_run}
    checks = []
    for label, count in (("one_entity", 1), ("many_entities", sizes.w9_entities)):
        entities = [f"w9-{run}-{label}-{n}" for n in range(count)]
        started = time.monotonic()
        sent = await _signal(client, task_queue, entities, signals, per_run)
        await _wait_for_shares(client, entities, signals)
        wall = time.monotonic() - started
        # Read once more: a signal counted twice would show here.
        states = await _states(client, entities)
        total = sum(state[0] for state in states)
        metrics[f"{label}_signals_per_s"] = round(signals / wall, 1)
        checks += [
            check(f"{label}: every signal counted once", total == signals, total),
            check(
                f"{label}: every entity has state",
                all(state[0] > 0 for state in states),
                sum(state[0] > 0 for state in states),
            ),
        ]
        if label == "one_entity":
            runs = states[0][1]
            metrics["send_per_s"] = round(signals / sent, 1)
            metrics["one_entity_workflow_runs"] = runs
            checks.append(
                check(
                    f"one_entity: continued as new after {per_run} signals",
                    runs > 1 if signals >= per_run else runs == 1,
                    runs,
                )
            )
    return {"metrics": metrics, "checks": checks}


async def _signal(
    client: Client, task_queue: str, entities: Sequence[str], signals: int, per_run: int
) -> float:
    """Send ``signals`` "add 1" signals round-robin over ``entities``; the seconds taken."""
    started = time.monotonic()
    next_signal = iter(range(signals))

    async def sender() -> None:
        for n in next_signal:
            await client.start_workflow(
                flows.Counter.run,
                args=[0, 1, per_run],
                id=entities[n % len(entities)],
                task_queue=task_queue,
                start_signal="add",
                start_signal_args=[1],
            )

    await asyncio.gather(*(sender() for _ in range(min(W9_SIGNALS_IN_FLIGHT, signals))))
    return time.monotonic() - started


def _shares(entities: Sequence[str], signals: int) -> dict[str, int]:
    """What each entity receives from the round-robin."""
    base, extra = divmod(signals, len(entities))
    return {entity: base + (n < extra) for n, entity in enumerate(entities)}


async def _wait_for_shares(client: Client, entities: Sequence[str], signals: int) -> None:
    pending = _shares(entities, signals)
    timeout = 120 + signals / 100
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} entity workflows short after {timeout:.0f} s")
        states = await _states(client, list(pending))
        pending = {
            entity: share
            for (entity, share), state in zip(pending.items(), states, strict=True)
            if state[0] < share
        }
        if pending:
            await asyncio.sleep(0.02)


async def _states(client: Client, entities: Sequence[str]) -> list[list[int]]:
    """Each entity's ``[total, runs]`` by its query, to whichever run is current; ``[0, 0]``
    for one the server cannot answer for yet (between two runs, say)."""
    gate = asyncio.Semaphore(QUERIES_IN_FLIGHT)

    async def state(entity: str) -> list[int]:
        async with gate:
            try:
                current: list[int] = await client.get_workflow_handle(entity).query(
                    flows.Counter.state
                )
                return current
            except RPCError:
                return [0, 0]

    return list(await asyncio.gather(*(state(entity) for entity in entities)))
