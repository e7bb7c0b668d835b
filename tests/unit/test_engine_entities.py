"""Entities in the engine (ADR 38): an orchestration's calls, signals and critical sections
as recorded actions, and an entity's requests run one at a time, in order, behind locks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import (
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    ExecutionCompleted,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInstance,
)
from contracts.entities import EntityId
from durable import EntityOperationFailedError, LockingRulesViolationError
from engine import EntityExecutor, LockOutcome, OperationOutcome, OrchestrationExecutor
from tests.apps.entities import account, call_counter, counter, signal_counter, transfer_between

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
COUNTER = "@counter@k"


def start(name: str, input_: object) -> list[HistoryEvent]:
    return [
        OrchestratorStarted(timestamp=T0),
        ExecutionStarted(timestamp=T0, name=name, execution_id="e1", input=input_),
    ]


def step(seconds: int, *events: HistoryEvent) -> list[HistoryEvent]:
    return [OrchestratorStarted(timestamp=T0 + timedelta(seconds=seconds)), *events]


def run(orchestrator, history: list[HistoryEvent], new: list[HistoryEvent]):
    executor = OrchestrationExecutor(orchestrator, "orch-1")
    executor.replay(history)
    return executor.execute(new)


# --- the orchestration's side --------------------------------------------------------------


def test_signals_are_recorded_as_actions_and_the_orchestration_goes_on_at_once():
    decision = run(signal_counter, [], start("signal_counter", {"key": "k", "count": 3}))

    signals = [e for e in decision.new_events if isinstance(e, EntityOperationSignaled)]
    assert [(s.event_id, s.target, s.operation, s.input) for s in signals] == [
        (0, COUNTER, "add", 1),
        (1, COUNTER, "add", 1),
        (2, COUNTER, "add", 1),
    ]
    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == 3


def test_a_call_waits_for_the_entity_answer_and_a_failed_operation_raises_in_the_caller():
    first = run(call_counter, [], start("call_counter", "k"))
    [call] = first.new_events
    assert isinstance(call, EntityOperationCalled)
    assert call.operation == "add"

    history = [*start("call_counter", "k"), call]
    answered = step(1, EntityOperationCompleted(timestamp=T0, task_scheduled_id=0, result=5))
    second = run(call_counter, history, answered)
    [failing] = second.new_events
    assert isinstance(failing, EntityOperationCalled)
    assert failing.operation == "add_then_fail"

    history += [*answered, failing]
    failure = FailureDetails(error_type="ValueError", message="failed after changing the state")
    failed = step(2, EntityOperationFailed(timestamp=T0, task_scheduled_id=1, failure=failure))
    third = run(call_counter, history, failed)
    [get] = third.new_events
    history += [*failed, get]
    done = run(
        call_counter,
        history,
        step(3, EntityOperationCompleted(timestamp=T0, task_scheduled_id=2, result=5)),
    )

    assert done.status is OrchestrationStatus.COMPLETED
    assert done.output == {"value": 5, "failed": EntityOperationFailedError.__name__}


def test_a_lock_is_asked_in_entity_id_order_and_released_after_its_block():
    spec = {"from": "b", "to": "a", "amount": 10, "times": 1}
    first = run(transfer_between, [], start("transfer_between", spec))
    [lock] = first.new_events
    assert isinstance(lock, EntityLockRequested)
    assert lock.lock_set == ["@account@a", "@account@b"]

    history = [*start("transfer_between", spec), lock]
    granted = EntityLockGranted(
        timestamp=T0, task_scheduled_id=0, critical_section_id=lock.critical_section_id
    )
    answers = [
        granted,
        EntityOperationCompleted(timestamp=T0, task_scheduled_id=1, result=50),
        EntityOperationCompleted(timestamp=T0, task_scheduled_id=2, result=None),
        EntityOperationCompleted(timestamp=T0, task_scheduled_id=3, result=None),
    ]
    for seconds, answer in enumerate(answers, start=1):
        decision = run(transfer_between, history, step(seconds, answer))
        history += [*step(seconds, answer), *decision.new_events]

    unlocks = [e for e in history if isinstance(e, EntityUnlockSent)]
    assert sorted(u.target for u in unlocks) == ["@account@a", "@account@b"]
    assert {u.critical_section_id for u in unlocks} == {lock.critical_section_id}
    assert isinstance(history[-1], ExecutionCompleted)
    assert history[-1].result == 1
    replayed = run(transfer_between, history, [])
    assert replayed.new_events == []
    assert replayed.non_determinism is None


def test_an_orchestration_that_fails_inside_a_critical_section_releases_its_locks():
    def fails_while_locked(ctx):
        yield ctx.lock([EntityId("counter", "x")])
        raise RuntimeError("boom")

    history = start("f", None)
    [lock] = run(fails_while_locked, [], history).new_events
    history.append(lock)
    granted = EntityLockGranted(
        timestamp=T0, task_scheduled_id=0, critical_section_id=lock.critical_section_id
    )
    decision = run(fails_while_locked, history, step(1, granted))

    assert decision.status is OrchestrationStatus.FAILED
    assert [type(e).__name__ for e in decision.new_events] == [
        "EntityUnlockSent",
        "ExecutionFailed",
    ]


def test_locking_twice_or_calling_an_unlocked_entity_inside_a_section_breaks_the_rules():
    def nested(ctx):
        yield ctx.lock([EntityId("counter", "x")])
        ctx.lock([EntityId("counter", "y")])

    def calls_outside(ctx):
        yield ctx.lock([EntityId("counter", "x")])
        yield ctx.call_entity(EntityId("counter", "y"), "get")

    for orchestrator in (nested, calls_outside):
        history = start("f", None)
        [lock] = run(orchestrator, [], history).new_events
        granted = EntityLockGranted(
            timestamp=T0, task_scheduled_id=0, critical_section_id=lock.critical_section_id
        )
        decision = run(orchestrator, [*history, lock], step(1, granted))
        assert decision.status is OrchestrationStatus.FAILED
        assert decision.failure is not None
        assert decision.failure.error_type == LockingRulesViolationError.__name__


def test_a_changed_entity_call_is_a_non_determinism_error():
    history = [*start("call_counter", "k")]
    history.append(
        EntityOperationCalled(event_id=0, timestamp=T0, target=COUNTER, operation="subtract")
    )
    decision = run(call_counter, history, [])
    assert decision.non_determinism is not None
    assert "call_entity('@counter@k', 'add')" in str(decision.non_determinism)


# --- the entity's side -------------------------------------------------------------------


def parent(instance_id: str, task_id: int = 0) -> ParentInstance:
    return ParentInstance(
        instance_id=instance_id, execution_id="e1", task_scheduled_id=task_id, name="o"
    )


def signal(operation: str, input_: object = None, sender: str | None = None):
    return EntityOperationSignaled(
        timestamp=T0, target=COUNTER, operation=operation, input=input_, sender=sender
    )


def call(operation: str, input_: object, caller: str, task_id: int = 0):
    return EntityOperationCalled(
        timestamp=T0,
        target=COUNTER,
        operation=operation,
        input=input_,
        parent=parent(caller, task_id),
    )


def lock_request(section: str, holder: str, lock_set: list[str] | None = None):
    return EntityLockRequested(
        timestamp=T0,
        critical_section_id=section,
        lock_set=lock_set or [COUNTER],
        parent=parent(holder),
    )


def unlock(section: str, holder: str):
    return EntityUnlockSent(
        timestamp=T0, critical_section_id=section, target=COUNTER, sender=holder
    )


def new_counter() -> EntityExecutor:
    return EntityExecutor(counter, EntityId("counter", "k"), None, False)


def test_operations_run_in_order_and_the_state_starts_from_the_initializer():
    entity = new_counter()
    for _ in range(3):
        entity.process(signal("add", 2))
    [outcome] = entity.process(call("get", None, "o1"))

    assert entity.state == 6
    assert entity.exists
    assert outcome == OperationOutcome(call("get", None, "o1"), 6)


def test_a_failed_operation_keeps_the_previous_state_and_reports_the_error():
    entity = new_counter()
    entity.process(signal("add", 1))
    [outcome] = entity.process(call("add_then_fail", 100, "o1"))

    assert isinstance(outcome, OperationOutcome)
    assert outcome.failure is not None
    assert outcome.failure.error_type == "ValueError"
    assert entity.state == 1


def test_destruct_on_exit_deletes_the_state():
    entity = new_counter()
    entity.process(signal("add", 1))
    entity.process(signal("delete"))
    assert not entity.exists
    assert entity.state is None
    entity.process(signal("add", 4))
    assert entity.state == 4


def test_a_locked_entity_runs_only_its_holder_and_then_its_queue_in_order():
    entity = new_counter()
    [granted] = entity.process(lock_request("s1", "holder"))
    assert isinstance(granted, LockOutcome)

    assert entity.process(signal("add", 10)) == []  # from a client: queued
    assert entity.process(call("add", 1, "other")) == []  # another orchestration: queued
    [own] = entity.process(call("add", 100, "holder"))
    assert isinstance(own, OperationOutcome)
    assert entity.state == 100

    released = entity.process(unlock("s1", "holder"))
    assert [o.request.operation for o in released if isinstance(o, OperationOutcome)] == [
        "add",
        "add",
    ]
    assert entity.state == 111
    assert entity.holder is None


def test_the_queue_stops_at_the_next_lock_it_grants():
    entity = new_counter()
    entity.process(lock_request("s1", "o1"))
    entity.process(lock_request("s2", "o2"))
    entity.process(signal("add", 1))
    effects = entity.process(unlock("s1", "o1"))

    assert [type(e) for e in effects] == [LockOutcome]
    assert entity.holder is not None
    assert entity.holder.instance_id == "o2"
    assert len(entity.queue) == 1
    assert entity.state is None


def test_a_rebuilt_entity_has_the_holder_and_queue_its_requests_left_without_running_them():
    requests = [
        signal("add", 1),
        lock_request("s1", "o1"),
        signal("add", 5),
        call("get", None, "o1"),
    ]
    live = new_counter()
    for request in requests:
        live.process(request)

    rebuilt = EntityExecutor(counter, EntityId("counter", "k"), live.state, live.exists)
    rebuilt.replay(requests)

    assert rebuilt.state == 1
    assert rebuilt.holder == live.holder
    assert list(rebuilt.queue) == list(live.queue)


def test_a_lock_request_that_arrives_after_its_section_ended_is_passed_on_not_granted():
    entity = new_counter()
    entity.process(unlock("s1", "o1"))
    [passed] = entity.process(lock_request("s1", "o1"))
    assert isinstance(passed, LockOutcome)
    assert entity.holder is None


def test_an_unregistered_entity_fails_its_operations():
    entity = EntityExecutor(None, EntityId("ghost", "k"), None, False)
    [outcome] = entity.process(call("get", None, "o1"))
    assert isinstance(outcome, OperationOutcome)
    assert outcome.failure is not None
    assert outcome.failure.error_type == "EntityNotFoundError"


@pytest.mark.parametrize("function", [account])
def test_an_operation_that_raises_in_a_registered_entity_is_reported(function):
    entity = EntityExecutor(function, EntityId("Account", "a"), 5, True)
    [outcome] = entity.process(call("withdraw", 10, "o1"))
    assert isinstance(outcome, OperationOutcome)
    assert outcome.failure is not None
    assert outcome.failure.error_type == "InsufficientFundsError"
    assert entity.state == 5
