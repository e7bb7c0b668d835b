"""Sub-orchestrations: scheduling a child, its result, its failure, retrying it."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    FailureDetails,
    OrchestrationStatus,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
)
from contracts.limits import check_instance_id
from durable.errors import TaskFailedError
from durable.retry import RetryOptions
from engine import OrchestrationExecutor
from tests.helpers.history import HistoryBuilder

CHILD_FAILURE = FailureDetails(error_type="ValueError", message="child gave up")


def parent(ctx):
    try:
        result = yield ctx.call_sub_orchestrator("child", {"n": 1}, instance_id="kid-1")
    except TaskFailedError as error:
        return {"caught": error.details.error_type, "message": error.details.message}
    return {"child said": result}


def started(orchestrator=parent) -> tuple[OrchestrationExecutor, HistoryBuilder, list]:
    history = HistoryBuilder().start("parent", execution_id="e123456789")
    executor = OrchestrationExecutor(orchestrator, "p-1")
    decision = executor.execute(history.events)
    return executor, history, decision.new_events


def test_a_child_is_recorded_with_its_name_instance_id_and_input():
    _, history, new_events = started()

    assert new_events == [
        SubOrchestrationInstanceCreated(
            event_id=0, timestamp=history.now, name="child", instance_id="kid-1", input={"n": 1}
        )
    ]


def test_the_default_child_id_is_derived_from_the_parent_execution_and_task():
    def unnamed(ctx):
        return (yield ctx.call_sub_orchestrator("child"))

    _, _, new_events = started(unnamed)

    assert new_events[0].instance_id == "p-1:e1234567:0"


def test_the_default_child_id_of_a_long_parent_id_is_cut_to_a_valid_id_still_its_own():
    # It used to be the parent's id with the suffix, past 255 bytes for a parent id of more
    # than 240: the parent failed as if its code had asked for an invalid id.
    def unnamed(ctx):
        return (yield ctx.call_sub_orchestrator("child"))

    parents = ["é" * 120 + "x" * 15, "é" * 120 + "x" * 14 + "y"]  # 255 bytes each
    children = []
    for parent_id in parents:
        history = HistoryBuilder().start("parent", execution_id="e123456789")
        decision = OrchestrationExecutor(unnamed, parent_id).execute(history.events)
        assert decision.status is OrchestrationStatus.RUNNING, decision.failure
        children.append(decision.new_events[0].instance_id)

    assert children[0] != children[1]
    for parent_id, child_id in zip(parents, children, strict=True):
        check_instance_id(child_id)
        assert len(child_id.encode()) <= 255
        assert child_id.startswith(parent_id[:100])
        assert child_id.endswith(":e1234567:0")


def test_the_child_output_completes_the_parent_task():
    executor, history, new_events = started()
    history.add(new_events[0]).episode()
    history.add(
        SubOrchestrationInstanceCompleted(timestamp=history.now, task_scheduled_id=0, result=42)
    )

    decision = executor.execute(history.events[-2:])

    assert decision.output == {"child said": 42}


def test_a_child_failure_is_a_catchable_task_failed_error_with_the_child_details():
    executor, history, new_events = started()
    history.add(new_events[0]).episode()
    failed = SubOrchestrationInstanceFailed(
        timestamp=history.now, task_scheduled_id=0, failure=CHILD_FAILURE
    )
    assert executor.accepts(failed)
    history.add(failed)

    decision = executor.execute(history.events[-2:])

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {"caught": "ValueError", "message": "child gave up"}
    assert not executor.accepts(failed)


def test_a_failed_child_is_started_again_under_a_retry_policy():
    policy = RetryOptions(500, 2)

    def retries_child(ctx):
        return (yield ctx.call_sub_orchestrator_with_retry("child", policy, None, "kid-1"))

    executor, history, new_events = started(retries_child)
    history.add(new_events[0]).episode()
    history.add(
        SubOrchestrationInstanceFailed(
            timestamp=history.now, task_scheduled_id=0, failure=CHILD_FAILURE
        )
    )
    waiting = executor.execute(history.events[-2:])
    history.add(waiting.new_events[0]).episode(0.5).timer_fired(1, history.now)

    again = executor.execute(history.events[-2:])

    assert waiting.new_events[0].fire_at == history.now
    assert again.new_events[0] == SubOrchestrationInstanceCreated(
        event_id=2, timestamp=history.now, name="child", instance_id="kid-1", input=None
    )
    assert history.now - waiting.new_events[0].timestamp == timedelta(seconds=0.5)
