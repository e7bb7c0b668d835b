"""The context's replay-safe clock, replay flag, ids and custom status."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import pytest

from contracts import OrchestrationStatus
from engine import replay
from tests.helpers.history import T0, HistoryBuilder


def test_current_utc_datetime_is_the_latest_orchestrator_started_timestamp():
    def orchestrator(ctx):
        before = ctx.current_utc_datetime
        yield ctx.call_activity("step")
        return [before.isoformat(), ctx.current_utc_datetime.isoformat()]

    history = HistoryBuilder().start("clock").scheduled(0, "step")
    history.episode(90).completed(0)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.output == [T0.isoformat(), (T0 + timedelta(seconds=90)).isoformat()]


def test_is_replaying_is_true_for_stored_history_and_false_for_new_events():
    observed = []

    def orchestrator(ctx):
        observed.append(ctx.is_replaying)
        yield ctx.call_activity("one")
        observed.append(ctx.is_replaying)
        yield ctx.call_activity("two")
        observed.append(ctx.is_replaying)

    history = HistoryBuilder().start("flag").scheduled(0, "one")
    history.episode().completed(0).scheduled(1, "two")
    history.episode().completed(1)
    past, new = history.split()

    replay(orchestrator, "i1", past, new)

    assert observed == [True, True, False]


def test_is_replaying_is_false_in_the_first_episode():
    observed = []

    def orchestrator(ctx):
        observed.append(ctx.is_replaying)
        yield ctx.call_activity("one")

    replay(orchestrator, "i1", [], HistoryBuilder().start("flag").events)

    assert observed == [False]


def uses_two_uuids(ctx):
    first = ctx.new_uuid()
    yield ctx.call_activity("store", first)
    return [first, ctx.new_uuid()]


def test_new_uuid_is_the_same_on_replay_and_differs_between_calls():
    history = HistoryBuilder().start("ids")
    scheduled = replay(uses_two_uuids, "i1", [], history.events).new_events[0]
    history.add(scheduled).episode().completed(0)
    past, new = history.split()

    first, second = replay(uses_two_uuids, "i1", past, new).output

    assert first == scheduled.input
    assert first != second
    assert uuid.UUID(first).version == uuid.UUID(second).version == 5


def test_new_uuid_differs_between_instances():
    history = HistoryBuilder().start("ids")

    one = replay(uses_two_uuids, "i1", [], history.events).new_events[0].input
    other = replay(uses_two_uuids, "i2", [], history.events).new_events[0].input

    assert one != other


def test_new_guid_is_new_uuid_under_azure_functions_durables_other_name():
    def mixes_both_names(ctx):
        first = ctx.new_guid()
        yield ctx.call_activity("store", first)
        return [first, ctx.new_uuid(), ctx.new_guid()]

    history = HistoryBuilder().start("ids")
    scheduled = replay(mixes_both_names, "i1", [], history.events).new_events[0]
    history.add(scheduled).episode().completed(0)
    past, new = history.split()

    ids = replay(mixes_both_names, "i1", past, new).output
    expected = replay(uses_three_uuids, "i1", past, new).output

    # The two names draw from one sequence: the same ids, in the same order, on every replay.
    assert ids == expected
    assert ids[0] == scheduled.input
    assert len(set(ids)) == 3


def uses_three_uuids(ctx):
    first = ctx.new_uuid()
    yield ctx.call_activity("store", first)
    return [first, ctx.new_uuid(), ctx.new_uuid()]


def test_custom_status_appears_in_the_decision():
    def orchestrator(ctx):
        ctx.set_custom_status({"stage": "drafting"})
        ctx.set_custom_status({"stage": "reviewing", "reviewers": ("ann", "bo")})
        yield ctx.wait_for_external_event("done")

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("status").events)

    assert decision.custom_status == {"stage": "reviewing", "reviewers": ["ann", "bo"]}


@pytest.mark.parametrize(
    ("orchestrator_body", "named"),
    [
        (lambda ctx: ctx.call_activity("store", object()), "the input of activity 'store'"),
        (lambda ctx: ctx.set_custom_status({1, 2}), "the custom status"),
    ],
    ids=["activity input", "custom status"],
)
def test_non_json_values_raise_type_error_naming_what_was_passed(orchestrator_body, named):
    def orchestrator(ctx):
        try:
            orchestrator_body(ctx)
        except TypeError as error:
            return str(error)
        return "not reached"

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("bad").events)

    assert decision.output.startswith(f"{named} is not JSON-serializable")


def test_non_json_activity_input_left_uncaught_fails_the_execution():
    def orchestrator(ctx):
        yield ctx.call_activity("store", {"when": object()})

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("bad").events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "TypeError"
    assert "the input of activity 'store'" in decision.failure.message


def test_non_json_output_fails_the_execution_naming_the_output():
    def orchestrator(ctx):
        yield ctx.call_activity("noop")
        return {"tags": {"a", "b"}}

    history = HistoryBuilder().start("bad").scheduled(0, "noop")
    history.episode().completed(0)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "TypeError"
    assert "the orchestrator's output is not JSON-serializable" in decision.failure.message
    assert [event.event_type for event in decision.new_events] == ["ExecutionFailed"]


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (["ok\x00"], "$[0] is a string holding U+0000"),
        ({"note": "\ud800"}, "$.note is a string holding a lone surrogate"),
        (functools.reduce(lambda inner, _: [inner], range(64), []), "nests deeper than 64 levels"),
    ],
    ids=["nul", "lone-surrogate", "too-deep"],
)
def test_an_output_that_cannot_be_stored_fails_the_execution_naming_it(output, problem):
    # The engine used to let the refusal escape, so the handler retried the message until it
    # was dead-lettered and the instance stayed Running for good.
    def orchestrator(ctx):
        yield ctx.call_activity("noop")
        return output

    history = HistoryBuilder().start("unstorable").scheduled(0, "noop")
    history.episode().completed(0)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "ValueRefusedError"
    assert "the orchestrator's output cannot be stored" in decision.failure.message
    assert problem in decision.failure.message
    assert [event.event_type for event in decision.new_events] == ["ExecutionFailed"]
