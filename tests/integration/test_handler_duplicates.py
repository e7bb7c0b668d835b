"""The handler drops a duplicate of every message kind: the store is exactly as before.

Every test runs twice: with the instance cache (state kept live between batches) and without
it (state rebuilt from the event store for each batch), since each path detects duplicates
from different data.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import handle, stored_instance

pytestmark = pytest.mark.parametrize("cache_instances", [0, 10_000], ids=["no-cache", "cache"])


@pytest.fixture
def handler(
    new_handler: Callable[..., OrchestrationHandler], cache_instances: int
) -> OrchestrationHandler:
    return new_handler(cache_instances)


async def started(
    handler: OrchestrationHandler, pool: asyncpg.Pool, name: str, input: object = None
) -> tuple[str, str]:
    """Start a new instance through the handler; return (instance id, execution id)."""
    instance_id = unique(f"{name}-")
    start = messages.start(instance_id, name, input)
    await handle(handler, pool, [start])
    return instance_id, messages.execution_of(start)


async def test_a_start_delivered_twice_in_one_batch_is_recorded_once(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id = unique("hello-")
    start = messages.start(instance_id, "hello_cities", ["Tokyo", "Seattle"])

    tasks = await handle(handler, pool, [start, start])

    stored = await stored_instance(pool, instance_id)
    assert stored.event_types == ["OrchestratorStarted", "ExecutionStarted", "TaskScheduled"]
    assert [task.body.input for task in tasks] == ["Tokyo"]
    assert (stored.row["status"], stored.row["last_seq"]) == ("Running", 3)


async def test_a_start_delivered_again_in_a_later_batch_changes_nothing(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id = unique("hello-")
    start = messages.start(instance_id, "hello_cities", ["Tokyo", "Seattle"])
    await handle(handler, pool, [start])
    before = await stored_instance(pool, instance_id)

    assert await handle(handler, pool, [start]) == []

    assert await stored_instance(pool, instance_id) == before
    assert before.event_types.count("ExecutionStarted") == 1


async def test_a_task_completed_delivered_again_changes_nothing(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "hello_cities", ["Tokyo", "Seattle"])
    done = messages.task_completed(instance_id, execution_id, 0, "Hello Tokyo!")
    assert [task.body.input for task in await handle(handler, pool, [done])] == ["Seattle"]
    before = await stored_instance(pool, instance_id)

    assert await handle(handler, pool, [done]) == []

    assert await stored_instance(pool, instance_id) == before
    assert before.event_types.count("TaskCompleted") == 1
    assert before.row["status"] == "Running"


async def test_a_task_completed_delivered_twice_in_one_batch_is_recorded_once(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "hello_cities", ["Tokyo", "Seattle"])
    done = messages.task_completed(instance_id, execution_id, 0, "Hello Tokyo!")

    tasks = await handle(handler, pool, [done, done])

    stored = await stored_instance(pool, instance_id)
    assert stored.event_types.count("TaskCompleted") == 1
    assert [task.body.input for task in tasks] == ["Seattle"]


async def test_a_task_failed_delivered_again_changes_nothing(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "carries_on_after_a_failure", 7)
    failed = messages.task_failed(instance_id, execution_id, 0, "RuntimeError", "refused 7")
    assert [task.body.name for task in await handle(handler, pool, [failed])] == ["echo"]
    before = await stored_instance(pool, instance_id)

    assert await handle(handler, pool, [failed]) == []
    assert await handle(handler, pool, [failed, failed]) == []

    assert await stored_instance(pool, instance_id) == before
    assert before.event_types.count("TaskFailed") == 1
    assert before.row["status"] == "Running"


async def test_a_task_failed_delivered_twice_in_one_batch_is_recorded_once(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "carries_on_after_a_failure", 7)
    failed = messages.task_failed(instance_id, execution_id, 0, "RuntimeError", "refused 7")

    tasks = await handle(handler, pool, [failed, failed])

    stored = await stored_instance(pool, instance_id)
    assert stored.event_types.count("TaskFailed") == 1
    assert [task.body.name for task in tasks] == ["echo"]


async def test_an_event_raised_again_with_the_same_message_id_changes_nothing(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "hello_cities", ["Tokyo"])
    raised = messages.event_raised(instance_id, execution_id, "Nudge", {"n": 1})
    await handle(handler, pool, [raised, raised])
    before = await stored_instance(pool, instance_id)

    assert await handle(handler, pool, [raised]) == []

    assert await stored_instance(pool, instance_id) == before
    assert before.event_types.count("EventRaised") == 1
    assert [
        row["message_id"] for row in before.event_rows if row["event_type"] == "EventRaised"
    ] == [raised.envelope.message_id]
    # The same event name under another message id is another event, not a duplicate.
    again = messages.event_raised(instance_id, execution_id, "Nudge", {"n": 1})
    await handle(handler, pool, [again])
    assert (await stored_instance(pool, instance_id)).event_types.count("EventRaised") == 2


async def test_a_result_for_a_previous_execution_is_dropped(
    handler: OrchestrationHandler, pool: asyncpg.Pool
) -> None:
    instance_id, execution_id = await started(handler, pool, "hello_cities", ["Tokyo"])
    before = await stored_instance(pool, instance_id)

    stale = messages.task_completed(instance_id, "an-earlier-execution", 0, "stale greeting")
    assert await handle(handler, pool, [stale]) == []
    assert await stored_instance(pool, instance_id) == before

    current = messages.task_completed(instance_id, execution_id, 0, "Hello Tokyo!")
    await handle(handler, pool, [current])
    after = await stored_instance(pool, instance_id)
    assert (after.row["status"], after.row["output"]) == ("Completed", '["Hello Tokyo!"]')
