"""Crash recovery: ``kill -9`` the orchestrator and the activities worker mid-flight.

Two hundred chains run on a deployment of their own (database and broker namespace), so the
kills disturb no other test; once with activities run by the activities service, once with
local activities (run by the orchestrator, handed to the activities service from the outbox
when it dies). Nothing may be lost and nothing may happen twice in the record:
every instance completes with the right output, every task has exactly one result, every
instance ends once, seqs have no gaps, and the outbox drains.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from contracts import (
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from durable.store.events import StoredEvent, load_histories_txn
from tests.conftest import (
    activity_names_under_test,
)
from tests.fault.conftest import Deployment
from tests.fault.replicas import dead_lettered

pytestmark = pytest.mark.fault

INSTANCES = 200
STEPS = 5
# Long enough that a chain spans several restarts' worth of work, short enough to stay quick.
ACTIVITY_DELAY_SECONDS = 0.1
TOTAL_TASKS = INSTANCES * STEPS
COMPLETIONS = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated)


async def crash_and_restart(deployment: Deployment, *names: str) -> None:
    """``kill -9`` the named services, check work was still in flight, start them again."""
    for name in names:
        deployment.group[name].kill()
    ended = await deployment.count_ended_instances()
    assert ended < INSTANCES, f"all instances had ended before {names} were killed"
    for name in names:
        deployment.group[name].start()
    await deployment.wait_ready()


async def test_chains_survive_orchestrator_and_worker_crashes_without_loss_or_duplicates(
    deployment: Deployment,
) -> None:
    spec = {"steps": STEPS, "delay": ACTIVITY_DELAY_SECONDS}
    instance_ids = await asyncio.gather(
        *(deployment.client.start_new("slow_chain", input=spec) for _ in range(INSTANCES))
    )

    # Crash each service while results and schedules are streaming, and both at once; each
    # crash comes only after the previous restart has made progress of its own.
    await deployment.wait_for_events("TaskCompleted", TOTAL_TASKS // 10)
    await crash_and_restart(deployment, "orchestrator")
    await deployment.wait_for_events("TaskCompleted", TOTAL_TASKS * 4 // 10)
    await crash_and_restart(deployment, "activities")
    await deployment.wait_for_events("TaskCompleted", TOTAL_TASKS * 7 // 10)
    await crash_and_restart(deployment, "orchestrator", "activities")

    await assert_recovered(deployment, instance_ids)


@pytest.mark.parametrize(
    ("activity", "delay"),
    [
        # async: runs after the commit of its step, in a task of the orchestrator's
        ("slow_echo_local", 3 * ACTIVITY_DELAY_SECONDS),
        # plain: runs inline, chained with the next steps before one commit (ADR 14); a
        # whole chain then ends in one episode, so its steps must be long enough for chains
        # to be in flight at the second crash (at 5 ms, all 200 had ended once in CI)
        ("slow_echo_plain_local", 0.02),
    ],
)
async def test_local_activity_chains_survive_orchestrator_crashes_without_loss_or_duplicates(
    deployment: Deployment, activity: str, delay: float
) -> None:
    # Longer steps: local activities skip the broker, so chains would otherwise end before
    # the first crash.
    spec = {"steps": STEPS, "delay": delay, "activity": activity}
    instance_ids = await asyncio.gather(
        *(deployment.client.start_new("slow_chain", input=spec) for _ in range(INSTANCES))
    )

    # The tasks running in the orchestrator when it dies are left in the outbox (the
    # restarted orchestrator's sweeper hands them to the activities service), or their batch
    # was not committed (its messages come back and run again).
    await deployment.wait_for_events("TaskCompleted", TOTAL_TASKS // 10)
    await crash_and_restart(deployment, "orchestrator")
    await deployment.wait_for_events("TaskCompleted", TOTAL_TASKS * 5 // 10)
    await crash_and_restart(deployment, "orchestrator")

    await assert_recovered(deployment, instance_ids)


async def assert_recovered(deployment: Deployment, instance_ids: list[str]) -> None:
    """Every instance completed with the right output and a clean history; nothing is left
    in the outbox or the dead-letter queues."""

    async def all_ended() -> bool:
        ended = await deployment.count_ended_instances()
        assert ended == INSTANCES, f"{ended} of {INSTANCES} instances have ended"
        return True

    await deployment.eventually(all_ended, timeout=120, interval=0.1)

    statuses = {i: await deployment.client.get_status(i) for i in instance_ids}
    wrong = {
        i: None if s is None else (s.runtime_status, s.output, s.failure)
        for i, s in statuses.items()
        if s is None
        or s.runtime_status is not OrchestrationStatus.COMPLETED
        or s.output != expected_output(i, s.execution_id)
    }
    assert not wrong, f"{len(wrong)} instances ended wrongly, e.g. {first(wrong)}\n" + (
        deployment.group.logs()
    )

    async with deployment.pool.acquire() as connection:
        histories = await load_histories_txn(connection, dict.fromkeys(instance_ids, 1))
    problems = {i: p for i, history in histories.items() if (p := history_problems(history))}
    assert not problems, f"{len(problems)} bad histories, e.g. {first(problems)}\n" + (
        deployment.group.logs()
    )

    async def outbox_empty() -> bool:
        left = await deployment.pool.fetchval("SELECT count(*) FROM outbox")
        assert left == 0, f"{left} outbox rows not yet published"
        return True

    await deployment.eventually(outbox_empty, timeout=30, interval=0.1)
    assert await dead_lettered(deployment.topology, activity_names_under_test()) == {}, (
        deployment.group.logs()
    )


def expected_output(instance_id: str, execution_id: str) -> list[dict[str, Any]]:
    """Each step's result names its own task: the right result reached the right task."""
    return [{"step": step, "key": f"{instance_id}:{execution_id}:{step}"} for step in range(STEPS)]


def history_problems(history: list[StoredEvent]) -> list[str]:
    """What is wrong with one instance's event stream (empty when nothing is)."""
    problems = []
    seqs = [stored.seq for stored in history]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"seqs are not 1..{len(seqs)} without gaps: {seqs}")
    events = [stored.event for stored in history]
    starts = sum(isinstance(e, ExecutionStarted) for e in events)
    if starts != 1:
        problems.append(f"{starts} ExecutionStarted events")
    scheduled = Counter(e.event_id for e in events if isinstance(e, TaskScheduled))
    if scheduled != Counter(range(STEPS)):
        problems.append(f"tasks scheduled (id: times): {dict(scheduled)}")
    results = Counter(
        e.task_scheduled_id for e in events if isinstance(e, TaskCompleted | TaskFailed)
    )
    if results != Counter(scheduled.keys()):
        problems.append(f"results per task (id: times): {dict(results)}")
    completions = [e.event_type for e in events if isinstance(e, COMPLETIONS)]
    if len(completions) != 1 or not isinstance(events[-1], COMPLETIONS):
        problems.append(f"completion events {completions}, last event {events[-1].event_type}")
    return problems


def first(mapping: dict[str, Any]) -> tuple[str, Any]:
    return next(iter(mapping.items()))
