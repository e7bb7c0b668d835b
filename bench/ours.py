"""Our runtime under the workloads: the real services as processes, on a database and broker
namespace of their own, measured from the clock and from the timestamps the runtime records.

Each workload returns its metrics and the checks that its results are correct (outputs,
counts); a failed check means the run measured something broken, never that it was slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from bench.config import Sizes
from bench.deployment import (
    OurDeployment,
    Outcome,
    _completed,
    _output,
)
from bench.entities import w9_entity_signals
from bench.hello import hello_round, run_hello_batch
from bench.measure import (
    best_round,
    latency_summary,
    ms,
    percentile,
    wait_settled,
    wait_until,
)
from bench.scale_out import w8_scale_out
from durable.store.events import load_history
from engine import OrchestrationExecutor
from services.orchestrator.dispatch import ARRIVE_EARLY_SECONDS

# --- the workloads ---------------------------------------------------------------------------


async def w1_sequence(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    """The chain twice: through the activity service, then with the same no-op as a local
    activity (run by the orchestrator itself; DBOS's steps run in the workflow's process)."""
    outcome = Outcome()
    for prefix, activity in (("", "bench_noop"), ("local_", "bench_noop_local")):
        steps = sizes.w1_steps
        spec = {"steps": steps, "activity": activity}
        [instance_id] = await deployment.start_many("bench_sequence", [spec])
        await deployment.wait_ended([instance_id], timeout=60 + steps, interval=0.01)
        [row] = await deployment.instances([instance_id])
        wall = (row["completed_at"] - row["created_at"]).total_seconds()
        scheduled = await deployment.event_times(instance_id, "TaskScheduled")
        ends = [*scheduled[1:], *await deployment.event_times(instance_id, "ExecutionCompleted")]
        step_seconds = [(b - a).total_seconds() for a, b in zip(scheduled, ends, strict=True)]
        outcome.metrics |= {
            f"{prefix}activities_per_s": round(steps / wall, 1),
            f"{prefix}wall_s": round(wall, 3),
            **latency_summary(f"{prefix}step_", step_seconds),
        }
        outcome.check(f"{activity}: completed", row["status"] == "Completed", row["status"])
        outcome.check(f"{activity}: all {steps} returned their input", _output(row) == steps)
        outcome.check(f"{activity}: one TaskScheduled per step", len(scheduled) == steps)
    return outcome


async def w2_hello_cities(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    """The batch, ``w2_rounds`` times: the sample as it is, then with its activity local;
    each variant's best round is reported (``bench.measure.best_round``). Each round also
    says what it cost in CPU: the whole machine's, and each process group's."""
    outcome = Outcome()
    for prefix, name in (("", "hello_cities"), ("local_", "hello_cities_local")):
        rounds = [
            await hello_round(deployment, sizes.w2_instances, name, outcome)
            for _ in range(sizes.w2_rounds)
        ]
        best = best_round(rounds, "orchestrations_per_s")
        outcome.metrics |= {f"{prefix}{key}": value for key, value in best.items()}
    return outcome


async def w3_fan_out(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    for count in sizes.w3_fan_out:
        [instance_id] = await deployment.start_many("bench_fan_out", [count])
        await deployment.wait_ended([instance_id], timeout=60 + count / 10, interval=0.02)
        [row] = await deployment.instances([instance_id])
        wall = (row["completed_at"] - row["created_at"]).total_seconds()
        outcome.metrics[f"fan_out_{count}_wall_s"] = round(wall, 3)
        outcome.metrics[f"fan_out_{count}_activities_per_s"] = round(count / wall, 1)
        outcome.check(f"fan-out of {count} completed", row["status"] == "Completed")
        outcome.check(f"fan-out of {count} summed", _output(row) == count * (count - 1) // 2)
    return outcome


async def ping_latencies(
    deployment: OurDeployment, instance_id: str, pings: int, until: asyncio.Event | None = None
) -> list[float]:
    """Raise "Ping" events one at a time; each latency runs from the raise until the
    orchestrator has committed the event (the instance's ``last_seq`` moves)."""
    assert deployment.client is not None
    latencies: list[float] = []
    for _ in range(pings):
        if until is not None and until.is_set():
            break
        before = await deployment.last_seq(instance_id)

        async def recorded(before: int = before) -> bool:
            return await deployment.last_seq(instance_id) > before

        started = time.perf_counter()
        await deployment.client.raise_event(instance_id, "Ping", 1)
        await wait_until(recorded, 60, 0.001, "ping recorded")
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02 if until is not None else 0.005)
    return latencies


async def start_waiting(deployment: OurDeployment, name: str, value: Any) -> str:
    [instance_id] = await deployment.start_many(name, [value])

    async def running() -> bool:
        [row] = await deployment.instances([instance_id])
        return bool(row["status"] == "Running")

    await wait_until(running, 30, 0.01, f"{name} running")
    return instance_id


async def w4_events(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    waiter = await start_waiting(deployment, "bench_event_waiter", 1_000_000)
    idle = await ping_latencies(deployment, waiter, sizes.w4_pings)

    load_done = asyncio.Event()

    async def load() -> tuple[float, list[Any]]:
        try:
            return await run_hello_batch(deployment, sizes.w4_loaded_instances)
        finally:
            load_done.set()

    load_task = asyncio.create_task(load())
    await asyncio.sleep(0.05)
    loaded = await ping_latencies(deployment, waiter, 100_000, until=load_done)
    _, rows = await load_task
    assert deployment.pool is not None
    raised = await deployment.pool.fetchval(
        "SELECT count(*) FROM events WHERE instance_id = $1 AND event_type = 'EventRaised'",
        waiter,
    )
    outcome.metrics = {
        **latency_summary("idle_", idle),
        **latency_summary("loaded_", loaded),
        "loaded_pings": len(loaded),
    }
    outcome.check("every ping recorded once", raised == len(idle) + len(loaded), raised)
    outcome.check("pings measured under load", len(loaded) > 0, len(loaded))
    count = sizes.w4_loaded_instances
    outcome.check(f"the {count} loading chains completed", _completed(rows) == count)
    return outcome


async def w5_timers(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    """The workload's timers (due 1 to 30 s ahead), then ``w5_large_timers`` in the same
    window (issue 21: 100,000 in full mode), then, when the mode has them, as many due
    beyond the cascade's margin, so that every fire passes through the delay cascade (ADR 16:
    the orchestrator holds the fires of timers due within the margin itself)."""
    outcome = Outcome()
    generator = random.Random(5)
    for prefix, count in (("", sizes.w5_timers), ("large_", sizes.w5_large_timers)):
        if count:
            low, high = sizes.w5_min_delay, sizes.w5_max_delay
            delays = [round(generator.uniform(low, high), 3) for _ in range(count)]
            outcome.metrics |= await _timer_lateness(deployment, sizes, delays, outcome, prefix)
    if sizes.w5_cascade_timers:
        low, high = sizes.w5_cascade_min_delay, sizes.w5_cascade_max_delay
        delays = [round(generator.uniform(low, high), 3) for _ in range(sizes.w5_cascade_timers)]
        outcome.check(
            "the cascade's timers were due late enough to enter it",
            low >= ARRIVE_EARLY_SECONDS + 1,
            low,
        )
        outcome.metrics |= await _timer_lateness(deployment, sizes, delays, outcome, "cascade_")
    return outcome


async def _timer_lateness(
    deployment: OurDeployment, sizes: Sizes, delays: list[float], outcome: Outcome, prefix: str
) -> dict[str, Any]:
    """Timers spread over instances of ``w5_timers_per_instance`` each, so that what is
    measured is the timers, not the rate of starting instances. Lateness of each fire is the
    start of the transaction that recorded its ``TimerFired`` minus its due time."""
    per_instance = max(1, sizes.w5_timers_per_instance)
    inputs = [delays[i : i + per_instance] for i in range(0, len(delays), per_instance)]
    started, first_start = time.monotonic(), datetime.now(UTC)
    instance_ids = await deployment.start_many("bench_timers", inputs)
    start_seconds = time.monotonic() - started
    # Every fire is due by now + max delay; past that plus a generous margin it is lost.
    with contextlib.suppress(TimeoutError):
        await deployment.wait_ended(instance_ids, timeout=max(delays) + 60, interval=0.2)
    assert deployment.pool is not None
    fires = await deployment.pool.fetch(
        "SELECT instance_id, recorded_at, payload->>'timer_id' AS timer_id, "
        "payload->>'fire_at' AS due FROM events "
        "WHERE instance_id = ANY($1::text[]) AND event_type = 'TimerFired'",
        instance_ids,
    )
    creation = await deployment.pool.fetchrow(
        "SELECT count(*) AS created, max(recorded_at) AS last FROM events "
        "WHERE instance_id = ANY($1::text[]) AND event_type = 'TimerCreated'",
        instance_ids,
    )
    assert creation is not None
    created, last_created = creation["created"], creation["last"]
    # A fire can be on time only once its timer is recorded: those due before the last
    # timer was recorded measure how long recording them took, the others the firing.
    recorded_s = (last_created - first_start).total_seconds() if last_created else 0.0
    lateness = [
        (row["recorded_at"] - datetime.fromisoformat(row["due"])).total_seconds() for row in fires
    ]
    # Fires due in the last third of the window: late ones there mean steady-state lateness,
    # late ones only in the first seconds mean a backlog from creating the timers.
    due = [datetime.fromisoformat(row["due"]) for row in fires]
    tail_from = min(due, default=None)
    if tail_from is not None:
        tail_from += (max(due) - tail_from) * 2 / 3
    tail = [late for late, d in zip(lateness, due, strict=True) if tail_from and d >= tail_from]
    after = [
        late for late, d in zip(lateness, due, strict=True) if last_created and d >= last_created
    ]
    distinct = len({(row["instance_id"], row["timer_id"]) for row in fires})
    lost = len(delays) - distinct
    duplicates = len(fires) - distinct
    early = sum(late < 0 for late in lateness)
    rows = await deployment.instances(instance_ids)
    which = {"": "a timer", "large_": "a timer of the large run"}.get(prefix, "a cascade timer")
    outcome.check(f"every {which} created", created == len(delays), created)
    outcome.check(f"no fire of {which} lost", lost == 0, lost)
    outcome.check(f"no {which} fired twice", duplicates == 0, duplicates)
    outcome.check(f"no {which} fired early", early == 0, early)
    outcome.check(
        f"every instance of {which} completed with all its fires",
        sorted(_output(r) for r in rows) == sorted(len(i) for i in inputs),
    )
    return {
        f"{prefix}lateness_p50_ms": ms(percentile(lateness, 50)),
        f"{prefix}lateness_p99_ms": ms(percentile(lateness, 99)),
        f"{prefix}lateness_max_ms": ms(max(lateness, default=float("nan"))),
        f"{prefix}lateness_last_third_p99_ms": ms(percentile(tail, 99)),
        f"{prefix}fires_lost": lost,
        f"{prefix}duplicate_fires": duplicates,
        f"{prefix}early_fires": early,
        f"{prefix}instances": len(instance_ids),
        f"{prefix}start_s": round(start_seconds, 2),
        f"{prefix}timers_recorded_s": round(recorded_s, 2),
        f"{prefix}due_after_recorded_lateness_p99_ms": ms(percentile(after, 99)),
        f"{prefix}due_before_recorded": len(lateness) - len(after),
    }


def _step_seconds(scheduled: list[datetime], end: datetime, steps: int) -> list[float]:
    """The intervals between the last ``steps`` TaskScheduled events and the completion."""
    marks = [*scheduled[-steps:], end]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(marks)]


async def w6_history_length(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    assert deployment.pool is not None
    pads = {"short": sizes.w6_short_pad, "long": sizes.w6_long_pad}
    specs = [{"pad": pad, "steps": sizes.w6_steps} for pad in pads.values()]
    chains = dict(zip(pads, await deployment.start_many("bench_padded_chain", specs), strict=True))
    await deployment.wait_all(
        list(chains.values()),
        "custom_status = $2::jsonb",
        json.dumps("padded"),
        timeout=120 + sizes.w6_long_pad / 20,
        what="padded",
    )
    # What the pad's thousands of writes leave behind (autovacuum of events and outbox, the
    # cleaner's deletes) is not the cost of a long history: it settles before the steps.
    await asyncio.sleep(sizes.w6_settle_seconds)
    assert deployment.client is not None
    client = deployment.client
    await asyncio.gather(*(client.raise_event(chain, "Go", None) for chain in chains.values()))
    await deployment.wait_ended(list(chains.values()), timeout=120, interval=0.02)
    step_medians: dict[str, float] = {}
    lengths: dict[str, int] = {}
    for label, instance_id in chains.items():
        [row] = await deployment.instances([instance_id])
        outcome.check(f"{label} chain completed", _output(row) == pads[label] + sizes.w6_steps)
        scheduled = await deployment.event_times(instance_id, "TaskScheduled")
        [end] = await deployment.event_times(instance_id, "ExecutionCompleted")
        steps = _step_seconds(scheduled, end, sizes.w6_steps)
        step_medians[label] = percentile(steps, 50)
        lengths[label] = row["last_seq"]
    long_instance = chains["long"]
    started = time.perf_counter()
    history = await load_history(deployment.pool, long_instance)
    load_seconds = time.perf_counter() - started
    orchestrator = deployment.functions.orchestrators["bench_padded_chain"]
    replay_seconds = []
    for _ in range(3):
        executor = OrchestrationExecutor(orchestrator, long_instance)
        started = time.perf_counter()
        executor.replay(stored.event for stored in history)
        replay_seconds.append(time.perf_counter() - started)
    replay = min(replay_seconds)
    outcome.metrics = {
        "history_short_events": lengths["short"],
        "history_long_events": lengths["long"],
        "step_ms_short": ms(step_medians["short"]),
        "step_ms_long": ms(step_medians["long"]),
        "step_cost_ratio_long_over_short": round(step_medians["long"] / step_medians["short"], 2),
        "cold_replay_events_per_s": round(len(history) / replay),
        "cold_load_events_per_s": round(len(history) / load_seconds),
    }
    outcome.check("replay ends where the history ends", executor.is_finished)
    outcome.check("whole history loaded", len(history) == lengths["long"], len(history))
    return outcome


async def w7_waiting(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    await deployment.restart_services()
    await asyncio.sleep(1.0)
    baseline = deployment.orchestrator_rss()
    count = sizes.w7_instances
    instance_ids = await deployment.start_many("bench_approval", [None] * count)
    await deployment.wait_all(
        instance_ids,
        "status = 'Running' AND last_seq >= 2",
        timeout=120 + count / 20,
        interval=0.2,
        what="waiting",
    )
    await asyncio.sleep(2.0)
    rss = deployment.orchestrator_rss()
    assert deployment.client is not None
    # What W5 and W6 left running must not be counted in the resumes (every system alike).
    settle_s, _ = await wait_settled()
    resumes: list[float] = []
    chosen = random.Random(7).sample(instance_ids, min(sizes.w7_resumes, count))
    for instance_id in chosen:

        async def ended(instance_id: str = instance_id) -> bool:
            return await deployment.count_ended([instance_id]) == 1

        started = time.perf_counter()
        await deployment.client.raise_event(instance_id, "Approval", {"approved": instance_id})
        await wait_until(ended, 60, 0.001, "approved instance completed")
        resumes.append(time.perf_counter() - started)
    rows = await deployment.instances(chosen)
    outcome.metrics = {
        "orchestrator_rss_mb": round(rss / 2**20, 1),
        "waiting_instances": count,
        "orchestrator_rss_idle_mb": round(baseline / 2**20, 1),
        "rss_kb_per_waiting_instance": round((rss - baseline) / 1024 / count, 2),
        "resume_p50_ms": ms(percentile(resumes, 50)),
        "resume_max_ms": ms(max(resumes)),
        "settle_s": round(settle_s, 1),
    }
    outcome.check(
        "resumed instances returned their approval",
        all(_output(r) == {"approved": r["instance_id"]} for r in rows),
    )
    return outcome


WORKLOADS = {
    "W1": w1_sequence,
    "W2": w2_hello_cities,
    "W3": w3_fan_out,
    "W4": w4_events,
    "W5": w5_timers,
    "W6": w6_history_length,
    "W7": w7_waiting,
    "W8": w8_scale_out,
    "W9": w9_entity_signals,
}
