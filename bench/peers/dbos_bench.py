"""DBOS (the ``dbos`` package) under the workloads: workflows and steps on Postgres, in a
system database of its own, with DBOS's defaults (LISTEN/NOTIFY on, synchronous commit as the
server has it).

Idiomatic DBOS: ``@DBOS.workflow`` functions calling ``@DBOS.step`` functions; a fan-out
enqueues the steps on a ``DBOS`` queue and waits for their handles (``BENCH_DBOS_FAN_OUT=children``
starts a child workflow per step instead); events are
``DBOS.send`` to a workflow blocked in ``DBOS.recv``; timers are ``DBOS.sleep_async``.
Times come from what DBOS records (``workflow_status``, ``operation_outputs``).

Run by ``python -m bench``; on its own: ``python -m bench.peers.dbos_bench --sizes '{...}'
--only W1,W2 --output result.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.config import Endpoints, Sizes
from bench.measure import (
    best_round,
    busy_cpu_seconds,
    cpu_ms_per,
    ms,
    percentile,
    unique_name,
    wait_settled,
)
from bench.peers.common import arguments, check, run_workloads, unavailable, versions

PACKAGES = ("dbos", "sqlalchemy", "psycopg")
CITIES = ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]
HELLO_OUTPUT = [f"Hello {city}!" for city in CITIES]
STARTS_IN_FLIGHT = 32

try:
    import psycopg
    from dbos import DBOS, DBOSConfig
except ImportError as error:  # reported as "unavailable" by main()
    IMPORT_ERROR: ImportError | None = error
else:
    IMPORT_ERROR = None

    @DBOS.step()
    def noop_step(value: Any) -> Any:
        return value

    @DBOS.step()
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    @DBOS.step()
    def after_ping(count: int) -> int:
        return count

    @DBOS.step()
    async def wall_clock() -> float:
        return time.time()

    @DBOS.workflow()
    def sequence(steps: int) -> int:
        done = 0
        for step in range(steps):
            done += noop_step(step) == step
        return done

    @DBOS.workflow()
    def hello_cities() -> list[str]:
        return [say_hello(city) for city in CITIES]

    @DBOS.workflow()
    def fan_out(count: int) -> int:
        queue = DBOS.retrieve_queue("bench_fan_out")
        assert queue is not None, "main() registers the queue bench_fan_out before the runs"
        handles = [queue.enqueue(noop_step, i) for i in range(count)]
        return sum(handle.get_result() for handle in handles)

    @DBOS.workflow()
    def noop_workflow(value: Any) -> Any:
        return noop_step(value)

    @DBOS.workflow()
    def fan_out_children(count: int) -> int:
        handles = [DBOS.start_workflow(noop_workflow, i) for i in range(count)]
        return sum(handle.get_result() for handle in handles)

    @DBOS.workflow()
    def event_waiter(count: int) -> int:
        total = 0
        for number in range(count):
            total += DBOS.recv("ping", timeout_seconds=3600)
            after_ping(number)
        return total

    @DBOS.workflow()
    async def sleeper(delay: float) -> dict[str, float]:
        started = await wall_clock()
        await DBOS.sleep_async(delay)
        resumed = await wall_clock()
        return {"due": started + delay, "resumed": resumed}

    @DBOS.workflow()
    async def approval() -> Any:
        return await DBOS.recv_async("approval", timeout_seconds=24 * 3600)


class SystemDatabase:
    """Reads what DBOS recorded, from a connection of the driver's own."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)

    def one(self, sql: str, *parameters: Any) -> Any:
        row = self.connection.execute(sql, parameters).fetchone()
        return None if row is None else row[0]

    def all(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(sql, parameters).fetchall())

    def workflow_times(self, workflow_id: str) -> tuple[float, float]:
        row = self.connection.execute(
            "SELECT created_at, updated_at FROM dbos.workflow_status WHERE workflow_uuid = %s",
            (workflow_id,),
        ).fetchone()
        assert row is not None
        return row[0] / 1000, row[1] / 1000

    def step_count(self, workflow_id: str, name_suffix: str) -> int:
        return int(
            self.one(
                "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = %s "
                "AND function_name LIKE %s",
                workflow_id,
                f"%{name_suffix}",
            )
        )


DB: SystemDatabase


def w1(sizes: Sizes) -> dict[str, Any]:
    steps = sizes.w1_steps
    handle = DBOS.start_workflow(sequence, steps)
    done = handle.get_result()
    created, updated = DB.workflow_times(handle.workflow_id)
    completions = [
        row[0] / 1000
        for row in DB.all(
            "SELECT completed_at_epoch_ms FROM dbos.operation_outputs WHERE workflow_uuid = %s "
            "ORDER BY function_id",
            handle.workflow_id,
        )
    ]
    step_seconds = [b - a for a, b in itertools.pairwise(completions)]
    wall = updated - created
    return {
        "metrics": {
            "activities_per_s": round(steps / wall, 1),
            "wall_s": round(wall, 3),
            "step_p50_ms": ms(percentile(step_seconds, 50)),
            "step_p99_ms": ms(percentile(step_seconds, 99)),
        },
        "checks": [check(f"all {steps} steps returned their input", done == steps, done)],
    }


def hello_batch(count: int) -> tuple[float, list[Any]]:
    started = time.time()
    # One loop, as DBOS applications start workflows: starting from 8 threads at once was
    # tried and made DBOS slower here (24 instead of 42 workflows/s, W4 under load 1 s).
    handles = [DBOS.start_workflow(hello_cities) for _ in range(count)]
    outputs = [handle.get_result() for handle in handles]
    last = DB.one(
        "SELECT max(updated_at) FROM dbos.workflow_status WHERE workflow_uuid = ANY(%s)",
        [h.workflow_id for h in handles],
    )
    return last / 1000 - started, outputs


def w2(sizes: Sizes) -> dict[str, Any]:
    count = sizes.w2_instances
    rounds, checks = [], []
    for _ in range(sizes.w2_rounds):
        busy_before = busy_cpu_seconds()
        wall, outputs = hello_batch(count)
        busy = busy_cpu_seconds() - busy_before
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
    return {"metrics": best_round(rounds, "orchestrations_per_s"), "checks": checks}


def w3(sizes: Sizes) -> dict[str, Any]:
    metrics: dict[str, float] = {}
    checks = []
    for count in [c for c in sizes.w3_fan_out if c <= sizes.w3_peer_max]:
        handle = DBOS.start_workflow(
            fan_out_children if os.environ.get("BENCH_DBOS_FAN_OUT") == "children" else fan_out,
            count,
        )
        total = handle.get_result()
        created, updated = DB.workflow_times(handle.workflow_id)
        wall = updated - created
        metrics[f"fan_out_{count}_wall_s"] = round(wall, 3)
        metrics[f"fan_out_{count}_activities_per_s"] = round(count / wall, 1)
        checks.append(check(f"fan-out of {count} summed", total == count * (count - 1) // 2))
    return {"metrics": metrics, "checks": checks}


def ping_latencies(workflow_id: str, pings: int, until: threading.Event | None) -> list[float]:
    """Send "ping" messages one at a time; each latency runs from the send until the step
    after the ``recv`` is recorded."""
    latencies = []
    for _ in range(pings):
        if until is not None and until.is_set():
            break
        before = DB.step_count(workflow_id, "after_ping")
        started = time.perf_counter()
        DBOS.send(workflow_id, 1, "ping")
        while DB.step_count(workflow_id, "after_ping") == before:
            time.sleep(0.001)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02 if until is not None else 0.005)
    return latencies


def w4(sizes: Sizes) -> dict[str, Any]:
    handle = DBOS.start_workflow(event_waiter, 1_000_000)
    time.sleep(0.5)  # let it block in recv
    idle = ping_latencies(handle.workflow_id, sizes.w4_pings, None)
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def load() -> None:
        try:
            outcome["wall"], outcome["outputs"] = hello_batch(sizes.w4_loaded_instances)
        finally:
            done.set()

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.05)
    loaded = ping_latencies(handle.workflow_id, 100_000, done)
    loader.join()
    recorded = DB.step_count(handle.workflow_id, "after_ping")
    return {
        "metrics": {
            "idle_p50_ms": ms(percentile(idle, 50)),
            "idle_p99_ms": ms(percentile(idle, 99)),
            "loaded_p50_ms": ms(percentile(loaded, 50)),
            "loaded_p99_ms": ms(percentile(loaded, 99)),
            "loaded_pings": len(loaded),
        },
        "checks": [
            check("every ping recorded once", recorded == len(idle) + len(loaded), recorded),
            check("pings measured under load", len(loaded) > 0, len(loaded)),
            check(
                "the loading workflows completed",
                all(o == HELLO_OUTPUT for o in outcome.get("outputs", [None])),
            ),
        ],
    }


async def _start_all(workflow: Any, inputs: list[Any]) -> list[Any]:
    """Start async workflows, 32 at a time as the harness does for ours."""
    gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def start(value: tuple[Any, ...]) -> Any:
        async with gate:
            return await DBOS.start_workflow_async(workflow, *value)

    return list(await asyncio.gather(*(start(value) for value in inputs)))


def w5(sizes: Sizes) -> dict[str, Any]:
    generator = random.Random(5)
    delays = [
        round(generator.uniform(sizes.w5_min_delay, sizes.w5_max_delay), 3)
        for _ in range(sizes.w5_peer_timers)
    ]

    async def run() -> list[Any]:
        handles = await _start_all(sleeper, [(d,) for d in delays])
        return [await handle.get_result() for handle in handles]

    outputs = asyncio.run(run())
    lateness = [o["resumed"] - o["due"] for o in outputs]
    return {
        "metrics": {
            "lateness_p50_ms": ms(percentile(lateness, 50)),
            "lateness_p99_ms": ms(percentile(lateness, 99)),
            "lateness_max_ms": ms(max(lateness)),
            "fires_lost": len(delays) - len(outputs),
            "early_fires": sum(late < 0 for late in lateness),
        },
        "checks": [check("every sleeper resumed", len(outputs) == len(delays), len(outputs))],
    }


def w7(sizes: Sizes) -> dict[str, Any]:
    process = psutil.Process()
    baseline = process.memory_info().rss
    count = sizes.w7_peer_instances

    async def run() -> tuple[int, list[float], list[Any], float]:
        handles = await _start_all(approval, [() for _ in range(count)])
        ids = [h.workflow_id for h in handles]
        deadline = time.monotonic() + 120 + count / 20
        # Waiting = the recv is registered; DBOS records it in operation_outputs only when
        # it returns, so count the workflows that are PENDING and started executing.
        while time.monotonic() < deadline:
            pending = DB.one(
                "SELECT count(*) FROM dbos.workflow_status WHERE workflow_uuid = ANY(%s) "
                "AND status = 'PENDING'",
                ids,
            )
            if pending == count:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        rss = process.memory_info().rss
        settle_s, _ = await wait_settled()  # as every system's W7
        resumes, outputs = [], []
        for index in random.Random(7).sample(range(count), min(sizes.w7_resumes, count)):
            started = time.perf_counter()
            await DBOS.send_async(ids[index], {"approved": ids[index]}, "approval")
            outputs.append(await handles[index].get_result())
            resumes.append(time.perf_counter() - started)
        return rss, resumes, outputs, settle_s

    rss, resumes, outputs, settle_s = asyncio.run(run())
    # The total is comparable with ours only at the same number of waiting instances.
    total = "orchestrator_rss_mb" if count == sizes.w7_instances else "process_rss_mb"
    return {
        "metrics": {
            total: round(rss / 2**20, 1),
            "waiting_instances": count,
            "orchestrator_rss_idle_mb": round(baseline / 2**20, 1),
            "rss_kb_per_waiting_instance": round((rss - baseline) / 1024 / count, 2),
            "resume_p50_ms": ms(percentile(resumes, 50)),
            "resume_max_ms": ms(max(resumes)),
            "settle_s": round(settle_s, 1),
        },
        "checks": [
            check("resumed workflows returned their approval", len(outputs) == len(resumes))
        ],
    }


def main() -> None:
    sizes, only, output = arguments()
    if IMPORT_ERROR is not None:
        reason = f"dbos is not installed ({IMPORT_ERROR}); `make bench` installs it (.[bench])"
        unavailable(output, reason, PACKAGES)
        return
    endpoints = Endpoints.from_environment()
    database = unique_name("bench_dbos_")
    url = endpoints.database_url(database)
    with psycopg.connect(endpoints.admin_database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    result: dict[str, Any] = {
        "status": "ok",
        "versions": versions(*PACKAGES),
        "config": {
            "system_database": database,
            "fan_out": (
                "child workflows started from the workflow"
                if os.environ.get("BENCH_DBOS_FAN_OUT") == "children"
                else "steps enqueued on a DBOS queue (defaults: polled every 1 s, no limit)"
            ),
            "notifications": "LISTEN/NOTIFY (DBOS default)",
            "process": "one Python process runs the workflows and drives the load",
        },
    }
    global DB
    try:
        DBOS(config=config)
        DBOS.launch()
        DBOS.register_queue("bench_fan_out")
        DB = SystemDatabase(url)
        result["workloads"] = run_workloads(
            "dbos",
            {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7},
            {
                "W6": "DBOS does not replay: a step's cost does not depend on the history",
                "W8": "replicas of our orchestrator, one killed: ours alone",
                "W9": "DBOS has no entity (durable object with one-at-a-time operations) built in",
                **(
                    {}
                    if sizes.w5_peer_timers
                    else {"W5": "left out of this mode (w5_peer_timers=0): too slow for it"}
                ),
            },
            sizes,
            only,
        )
    except Exception as error:
        result["status"] = "failed"
        result["reason"] = repr(error)
    finally:
        try:
            DBOS.destroy(destroy_registry=False)
        finally:
            with psycopg.connect(endpoints.admin_database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            Path(output).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
    # Workflows still blocked in recv (W4's waiter) live in DBOS's non-daemon executor
    # threads, which would keep the process alive; the database is gone already.
    os._exit(0)
