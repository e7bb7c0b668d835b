"""The instance cache is invisible: with it and without it, the same inputs store the same thing.

Each scenario is a list of batches (duplicates and out-of-order results included) fed to two
handlers, one that keeps instances live between batches and one that rebuilds them from the
event store every time. Both use the same fixed clock, so their stores must be identical.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts import OrchestratorMessage, Topology
from durable import FunctionApp
from services.orchestrator.cache import InstanceCache
from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import StoredInstance, handle, stored_instance

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EXECUTION = "execution-1"
Scenario = Callable[[str], list[list[OrchestratorMessage]]]


def fan_out_with_duplicates(instance_id: str) -> list[list[OrchestratorMessage]]:
    def done(task_id: int) -> OrchestratorMessage:
        return messages.task_completed(instance_id, EXECUTION, task_id, task_id**2, at=T0)

    nudge = messages.event_raised(
        instance_id, EXECUTION, "Nudge", "hi", message_id=uuid.uuid4(), at=T0
    )
    start = messages.start(instance_id, "fan_out_fan_in", 3, execution_id=EXECUTION, at=T0)
    return [[start], [done(2)], [done(0), done(2), nudge], [nudge, start], [done(1)]]


def chain_with_duplicates(instance_id: str) -> list[list[OrchestratorMessage]]:
    def done(task_id: int, city: str) -> OrchestratorMessage:
        return messages.task_completed(instance_id, EXECUTION, task_id, f"Hello {city}!", at=T0)

    start = messages.start(
        instance_id, "hello_cities", ["Tokyo", "Seattle", "Cairo"], execution_id=EXECUTION, at=T0
    )
    stale = messages.task_completed(instance_id, "an-earlier-execution", 1, "stale", at=T0)
    return [
        [start, start],
        [done(0, "Tokyo")],
        [done(0, "Tokyo"), stale],
        [done(1, "Seattle"), done(1, "Seattle")],
        [done(2, "Cairo")],
    ]


def failure_then_recovery(instance_id: str) -> list[list[OrchestratorMessage]]:
    failed = messages.task_failed(instance_id, EXECUTION, 0, "RuntimeError", "no", at=T0)
    start = messages.start(
        instance_id, "carries_on_after_a_failure", 1, execution_id=EXECUTION, at=T0
    )
    after = messages.task_completed(instance_id, EXECUTION, 1, "after the failure", at=T0)
    return [[start], [failed], [failed], [failed, after]]


def comparable(stored: StoredInstance) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Everything stored, minus what names the instance (its id and the ids derived from it)."""
    row = {k: v for k, v in stored.row.items() if k not in ("instance_id", "correlation_id")}
    events = [
        (e["seq"], e["execution_id"], e["event_type"], e["payload"], e["message_id"] is None)
        for e in stored.event_rows
    ]
    return row, events


async def run(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    topology: Topology,
    scenario: Scenario,
    cache_instances: int,
) -> StoredInstance:
    ticks = itertools.count()
    cache = InstanceCache(max_instances=cache_instances)
    handler = OrchestrationHandler(
        pool, functions, cache, topology, clock=lambda: T0 + timedelta(seconds=next(ticks))
    )
    instance_id = unique("cache-")
    for number, batch in enumerate(scenario(instance_id)):
        await handle(handler, pool, batch)
        if number == 0:
            assert (cache.get(instance_id) is not None) == (cache_instances > 0)
    return await stored_instance(pool, instance_id)


@pytest.mark.parametrize(
    ("scenario", "status", "output"),
    [
        (fan_out_with_duplicates, "Completed", "5"),
        (chain_with_duplicates, "Completed", '["Hello Tokyo!", "Hello Seattle!", "Hello Cairo!"]'),
        (
            failure_then_recovery,
            "Completed",
            '{"after": "after the failure", "caught": "RuntimeError"}',
        ),
    ],
)
async def test_the_cache_changes_nothing_that_is_stored(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    topology: Topology,
    scenario: Scenario,
    status: str,
    output: str,
) -> None:
    without_cache = await run(pool, functions, topology, scenario, cache_instances=0)
    with_cache = await run(pool, functions, topology, scenario, cache_instances=10_000)

    assert comparable(with_cache) == comparable(without_cache)
    assert (with_cache.row["status"], with_cache.row["output"]) == (status, output)
    assert with_cache.seqs == list(range(1, len(with_cache.seqs) + 1))
