"""What the handler does with names and instances it does not know."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from contracts import ExecutionFailed, FailureDetails
from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import StoredInstance, handle, stored_instance


async def test_an_unknown_orchestrator_fails_the_instance_with_orchestrator_not_found(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    handler = new_handler()
    instance_id = unique("unknown-name-")
    start = messages.start(instance_id, "no_such_orchestrator", {"x": 1})

    assert await handle(handler, pool, [start]) == []

    stored = await stored_instance(pool, instance_id)
    assert stored.event_types == ["OrchestratorStarted", "ExecutionStarted", "ExecutionFailed"]
    assert stored.row["status"] == "Failed"
    assert stored.row["completed_at"] is not None
    failure = FailureDetails.model_validate_json(stored.row["failure"])
    assert failure.error_type == "OrchestratorNotFound"
    assert "no_such_orchestrator" in failure.message
    assert failure.is_non_retriable
    failed = stored.events[-1]
    assert isinstance(failed, ExecutionFailed)
    assert failed.failure == failure

    # The instance has ended: whatever arrives for it later is not recorded.
    later = messages.event_raised(instance_id, messages.execution_of(start), "Anyone")
    assert await handle(new_handler(), pool, [later, start]) == []
    assert await stored_instance(pool, instance_id) == stored


async def test_messages_for_an_unknown_instance_are_dropped_without_error(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    handler = new_handler()
    instance_id = unique("never-started-")
    orphans = [
        messages.task_completed(instance_id, "e1", 0, "a result nobody waits for"),
        messages.task_failed(instance_id, "e1", 1),
        messages.event_raised(instance_id, None, "Approval", True),
    ]
    known_id = unique("hello-")
    known = messages.start(known_id, "hello_cities", ["Tokyo"])

    tasks = await handle(handler, pool, [*orphans, known])

    assert await stored_instance(pool, instance_id) == StoredInstance(
        instance_row=None, event_rows=[]
    )
    # The rest of the batch is unaffected.
    assert [task.envelope.instance_id for task in tasks] == [known_id]
    assert (await stored_instance(pool, known_id)).row["status"] == "Running"
