"""wait_for_external_event: buffering, ordering and case-insensitive names."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus
from engine import replay
from tests.helpers.history import HistoryBuilder


def two_approvals_generator(ctx):
    first = yield ctx.wait_for_external_event("Approval")
    second = yield ctx.wait_for_external_event("Approval")
    return [first, second]


async def two_approvals_async(ctx):
    first = await ctx.wait_for_external_event("Approval")
    second = await ctx.wait_for_external_event("Approval")
    return [first, second]


styles = pytest.mark.parametrize("orchestrator", [two_approvals_generator, two_approvals_async])


@styles
def test_waiting_for_an_event_schedules_nothing(orchestrator):
    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("approvals").events)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == []


@styles
def test_events_of_one_name_are_delivered_in_the_order_raised(orchestrator):
    history = HistoryBuilder().start("approvals")
    history.episode().raised("Approval", "first")
    history.episode().raised("Approval", "second")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.output == ["first", "second"]


@styles
def test_events_raised_together_are_delivered_in_order(orchestrator):
    history = HistoryBuilder().start("approvals")
    history.episode().raised("Approval", "first").raised("Approval", "second")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.output == ["first", "second"]


@styles
def test_event_names_are_case_insensitive(orchestrator):
    history = HistoryBuilder().start("approvals")
    history.episode().raised("APPROVAL", "upper").raised("approval", "lower")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.output == ["upper", "lower"]


def test_event_raised_before_the_wait_is_buffered_and_delivered_later():
    def orchestrator(ctx):
        checked = yield ctx.call_activity("check")
        approval = yield ctx.wait_for_external_event("approval")
        return [checked, approval]

    history = HistoryBuilder().start("approvals").scheduled(0, "check")
    history.episode().raised("approval", "yes")
    history.episode().completed(0, "checked")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == ["checked", "yes"]


def test_an_event_of_another_name_does_not_complete_the_wait():
    history = HistoryBuilder().start("approvals")
    history.episode().raised("rejection", "no").raised("Approval", "first")
    past, new = history.split()

    decision = replay(two_approvals_generator, "i1", past, new)

    assert decision.status is OrchestrationStatus.RUNNING
