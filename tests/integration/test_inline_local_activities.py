"""Plain-function local activities run inside the batch that schedules them, before its
commit (ADR 14): a chain of them is stepped and written at once, within the time allowed."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from contracts import OrchestratorMessage, Topology
from durable import FunctionApp
from services.orchestrator.cache import InstanceCache
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.local import LocalActivities
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import handle, stored_instance


@pytest.fixture
def local(functions: FunctionApp, topology: Topology) -> Iterator[LocalActivities]:
    local = LocalActivities(functions, topology, threads=2)
    yield local
    local.close()


def handler_for(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    topology: Topology,
    local: LocalActivities,
    inline_seconds: float,
) -> OrchestrationHandler:
    return OrchestrationHandler(
        pool, functions, InstanceCache(), topology, local=local, inline_seconds=inline_seconds
    )


async def transactions_of(pool: asyncpg.Pool, instance_id: str) -> int:
    """How many transactions wrote the instance's events."""
    count = await pool.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM events WHERE instance_id = $1", instance_id
    )
    return int(count)


async def drive(
    handler: OrchestrationHandler, pool: asyncpg.Pool, first: OrchestratorMessage
) -> int:
    """Handle ``first``, then the results of the tasks each batch leaves, as the consumer
    would after the commit; the number of batches it took."""
    batches, pending = 0, [first]
    while pending:
        batches += 1
        tasks = await handle(handler, pool, pending)
        pending = [
            messages.task_completed(
                t.envelope.instance_id,
                t.envelope.execution_id or "",
                t.body.task_scheduled_id,
                f"{t.body.input}".upper() + "!",
            )
            for t in tasks
        ]
    return batches


async def test_a_chain_of_local_activities_is_stepped_and_written_in_one_batch(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology, local: LocalActivities
) -> None:
    inline = handler_for(pool, functions, topology, local, inline_seconds=10)
    after_commit = handler_for(pool, functions, topology, local, inline_seconds=0)
    words = ["tokyo", "seattle", "cairo"]
    first, second = unique("inline-"), unique("after-commit-")

    assert await drive(inline, pool, messages.start(first, "shouts", words)) == 1
    assert await drive(after_commit, pool, messages.start(second, "shouts", words)) == 4

    chained, stepped = await stored_instance(pool, first), await stored_instance(pool, second)
    assert chained.row["status"] == "Completed"
    assert chained.row["output"] == '["TOKYO!", "SEATTLE!", "CAIRO!"]'
    assert chained.row["output"] == stepped.row["output"]
    # The same history as when each result is its own batch, written by one transaction.
    assert chained.event_types == stepped.event_types
    assert chained.seqs == list(range(1, len(chained.seqs) + 1))
    assert await transactions_of(pool, first) == 1
    assert await transactions_of(pool, second) == 4


async def test_a_failing_local_activity_fails_its_step_inline(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology, local: LocalActivities
) -> None:
    handler = handler_for(pool, functions, topology, local, inline_seconds=10)
    instance_id = unique("inline-fails-")

    tasks = await handle(handler, pool, [messages.start(instance_id, "shouts", ["ok", 7])])

    stored = await stored_instance(pool, instance_id)
    assert tasks == []
    assert stored.row["status"] == "Failed"
    assert stored.event_types.count("TaskCompleted") == 1
    assert stored.event_types.count("TaskFailed") == 1
    assert "upper" in stored.row["failure"]


async def test_past_the_time_allowed_the_next_task_is_committed_to_run_after(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology, local: LocalActivities
) -> None:
    # Each dawdle takes 50 ms: the first round runs, the time is up before a second.
    handler = handler_for(pool, functions, topology, local, inline_seconds=0.03)
    instance_id = unique("inline-budget-")

    tasks = await handle(handler, pool, [messages.start(instance_id, "dawdles", ["a", "b", "c"])])

    stored = await stored_instance(pool, instance_id)
    assert stored.row["status"] == "Running"
    assert stored.event_types.count("TaskCompleted") == 1
    assert [(t.body.name, t.body.input) for t in tasks] == [("dawdle", "b")]


async def test_async_local_activities_and_remote_ones_are_not_run_inline(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology, local: LocalActivities
) -> None:
    handler = handler_for(pool, functions, topology, local, inline_seconds=10)
    held, remote = unique("inline-async-"), unique("inline-remote-")

    tasks = await handle(
        handler,
        pool,
        [messages.start(held, "calls_held_local", "k"), messages.start(remote, "hello_cities")],
    )

    assert sorted(t.body.name for t in tasks) == ["held_local", "say_hello"]
    for instance_id in (held, remote):
        assert (await stored_instance(pool, instance_id)).row["status"] == "Running"
