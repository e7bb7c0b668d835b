"""Failures: activities that fail, orchestrators that raise or yield what they must not."""

from __future__ import annotations

import asyncio

import pytest

from contracts import ExecutionFailed, FailureDetails, OrchestrationStatus, TaskScheduled
from durable.errors import TaskFailedError
from engine import replay
from tests.helpers.history import HistoryBuilder


def uncaught_generator(ctx):
    return (yield ctx.call_activity("charge", 10))


async def uncaught_async(ctx):
    return await ctx.call_activity("charge", 10)


def caught_generator(ctx):
    try:
        yield ctx.call_activity("charge", 10)
    except TaskFailedError as error:
        return (yield ctx.call_activity("refund", error.details.message))
    return "not reached"


async def caught_async(ctx):
    try:
        await ctx.call_activity("charge", 10)
    except TaskFailedError as error:
        return await ctx.call_activity("refund", error.details.message)
    return "not reached"


def failed_charge() -> HistoryBuilder:
    history = HistoryBuilder().start("pay").scheduled(0, "charge", 10)
    return history.episode().failed(0, "CardDeclined", "insufficient funds")


@pytest.mark.parametrize("orchestrator", [uncaught_generator, uncaught_async])
def test_failed_activity_not_caught_fails_the_execution_with_task_failed_error(orchestrator):
    past, new = failed_charge().split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "TaskFailedError"
    assert "CardDeclined: insufficient funds" in decision.failure.message
    assert decision.failure.inner_failure == FailureDetails(
        error_type="CardDeclined", message="insufficient funds"
    )
    assert decision.new_events == [
        ExecutionFailed(timestamp=new[0].timestamp, failure=decision.failure)
    ]


@pytest.mark.parametrize("orchestrator", [caught_generator, caught_async])
def test_failed_activity_raises_catchable_task_failed_error_with_details(orchestrator):
    history = failed_charge()
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == [
        TaskScheduled(event_id=1, timestamp=history.now, name="refund", input="insufficient funds")
    ]


def raising_generator(ctx):
    yield ctx.call_activity("check", None)
    raise_the_budget_error(ctx.get_input())


async def raising_async(ctx):
    await ctx.call_activity("check", None)
    raise_the_budget_error(ctx.get_input())


def raise_the_budget_error(budget):
    raise ValueError(f"budget {budget} exceeded")


@pytest.mark.parametrize("orchestrator", [raising_generator, raising_async])
def test_orchestrator_exception_fails_with_type_message_and_stack_trace(orchestrator):
    history = HistoryBuilder().start("budget", input=42).scheduled(0, "check")
    history.episode().completed(0)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "ValueError"
    assert decision.failure.message == "budget 42 exceeded"
    assert "raise_the_budget_error" in decision.failure.stack_trace
    assert orchestrator.__name__ in decision.failure.stack_trace


def test_plain_function_that_raises_before_any_yield_fails_the_execution():
    def orchestrator(ctx):
        raise RuntimeError("no yield at all")

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("plain").events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "RuntimeError"


def yields_an_int(ctx):
    yield 42


async def awaits_asyncio_sleep(ctx):
    await asyncio.sleep(0)


async def awaits_an_asyncio_future(ctx):
    loop = asyncio.new_event_loop()
    try:
        await loop.create_future()
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("orchestrator", "yielded"),
    [
        (yields_an_int, "int"),
        (awaits_asyncio_sleep, "NoneType"),
        (awaits_an_asyncio_future, "Future"),
    ],
)
def test_yielding_something_that_is_not_a_task_fails_with_orchestrator_yield_error(
    orchestrator, yielded
):
    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("bad").events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "OrchestratorYieldError"
    assert f"yielded {yielded}" in decision.failure.message


def test_activities_scheduled_in_the_failing_step_are_not_dispatched():
    def schedules_then_raises(ctx):
        ctx.call_activity("notify", "never sent")
        yield ctx.call_activity("first")
        ctx.call_activity("notify", "also never sent")
        raise ValueError("gave up")

    history = HistoryBuilder().start("schedules_then_raises").scheduled(0, "notify", "never sent")
    history.scheduled(1, "first")
    history.episode().completed(1, None)
    past, new = history.split()

    decision = replay(schedules_then_raises, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert [e.event_type for e in decision.new_events] == ["ExecutionFailed"]
