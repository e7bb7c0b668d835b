"""W2's batch of Hello cities chains, which W2, W4 (as its load) and W8 run: started all at
once, timed from the first start to the last completion the instances recorded, its
results checked."""

from __future__ import annotations

import time
from typing import Any

from bench.deployment import HELLO_OUTPUT, OurDeployment, Outcome, _completed, _output
from bench.measure import busy_cpu_seconds, cpu_ms_per


async def run_hello_batch(
    deployment: OurDeployment, count: int, name: str = "hello_cities"
) -> tuple[float, list[Any]]:
    """Start ``count`` Hello cities chains at once; the time from the first start to the
    last completion (recorded), and the instances' rows."""
    started = time.time()
    instance_ids = await deployment.start_many(name, [None] * count)
    # The time is taken from what the instances recorded, so polling slowly changes nothing
    # but the CPU the harness takes from the services (a 50 ms poll of a thousand ids took a
    # quarter of a core).
    await deployment.wait_ended(instance_ids, timeout=120 + count / 5, interval=0.5)
    rows = await deployment.instances(instance_ids)
    last = max(row["completed_at"] for row in rows).timestamp()
    return last - started, rows


async def hello_round(
    deployment: OurDeployment, count: int, name: str, outcome: Outcome
) -> dict[str, float]:
    """One batch of ``count`` chains of ``name``: its rate, what it cost in CPU, the whole
    machine's and each process group's, and how many transactions wrote its events (fewer,
    larger batches when the orchestrator is busier); its results are checked into
    ``outcome``."""
    processes_before = deployment.cpu_seconds_by_process()
    busy_before = busy_cpu_seconds()
    wall, rows = await run_hello_batch(deployment, count, name)
    busy = busy_cpu_seconds() - busy_before
    processes_after = deployment.cpu_seconds_by_process()
    transactions = await deployment.transactions([row["instance_id"] for row in rows])
    outcome.check(f"{name}: {count} completed", _completed(rows) == count, _completed(rows))
    outcome.check(
        f"{name}: every output is the five greetings",
        all(_output(r) == HELLO_OUTPUT for r in rows),
    )
    return {
        "orchestrations_per_s": round(count / wall, 1),
        "wall_s": round(wall, 3),
        "cpu_ms_per_orchestration": cpu_ms_per(busy, count),
        "transactions_per_orchestration": round(transactions / count, 3),
        **{
            f"cpu_ms_per_orchestration_{process}": cpu_ms_per(
                processes_after[process] - seconds, count
            )
            for process, seconds in processes_before.items()
        },
    }
