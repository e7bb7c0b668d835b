"""Stored histories must keep replaying through the current orchestrator code.

Each file in ``golden/`` is the complete event stream of one finished instance, recorded once
by running the engine at the time (``model_dump(mode="json")`` of every event). Replaying it
must schedule nothing new, report no non-determinism and reach the recorded end. If one of
these tests fails, the change would break instances that are running in production: make the
change replay-compatible rather than re-recording the file.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from contracts import (
    EntityOperationCalled,
    ExecutionCompleted,
    HistoryEvent,
    OrchestrationStatus,
    TaskScheduled,
)
from contracts.history import HISTORY_EVENT_ADAPTER
from engine import OrchestrationExecutor
from tests.apps.entities import transfer_between
from tests.apps.functions import calls_http, catches_failing_activity, versioned_approval
from workflows.samples import fan_out_fan_in, hello_cities

GOLDEN_DIR = Path(__file__).parent / "golden"


def race_with_deadline(ctx):
    """A live price lookup raced against a five-minute deadline, with a cached fallback."""
    deadline = ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=5))
    lookup = ctx.call_activity("lookup_price", ctx.get_input())
    winner = yield ctx.task_any([lookup, deadline])
    if winner == lookup:
        deadline.cancel()
        return {"price": lookup.result, "source": "live"}
    cached = yield ctx.call_activity("cached_price", ctx.get_input())
    return {"price": cached, "source": "cache"}


ORCHESTRATORS = {
    "hello_cities.json": hello_cities,
    "fan_out_fan_in_5.json": fan_out_fan_in,
    "activity_failure_caught.json": catches_failing_activity,
    "task_any_race.json": race_with_deadline,
    "entity_transfer_locked.json": transfer_between,
    "call_http_polled.json": calls_http,
    "versioned_approval_v1.json": versioned_approval,
}


def load_history(file_name: str) -> list[HistoryEvent]:
    raw = json.loads((GOLDEN_DIR / file_name).read_text(encoding="utf-8"))
    return [HISTORY_EVENT_ADAPTER.validate_python(event) for event in raw]


def test_every_golden_file_has_an_orchestrator_to_replay_it():
    assert sorted(path.name for path in GOLDEN_DIR.glob("*.json")) == sorted(ORCHESTRATORS)


@pytest.mark.parametrize("file_name", sorted(ORCHESTRATORS))
def test_golden_history_replays_to_its_recorded_end_without_new_actions(file_name):
    history = load_history(file_name)
    recorded_end = history[-1]
    assert isinstance(recorded_end, ExecutionCompleted), "golden histories end in a completion"
    assert any(isinstance(event, TaskScheduled | EntityOperationCalled) for event in history)

    executor = OrchestrationExecutor(ORCHESTRATORS[file_name], f"golden-{file_name}")
    executor.replay(history)
    decision = executor.execute([])

    assert decision.non_determinism is None, decision.non_determinism
    assert decision.new_events == []
    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == recorded_end.result


def test_golden_outputs_are_what_the_scenarios_produced():
    outputs = {name: load_history(name)[-1].result for name in ORCHESTRATORS}

    assert outputs["hello_cities.json"] == [
        "Hello Tokyo!",
        "Hello Seattle!",
        "Hello London!",
        "Hello Amsterdam!",
        "Hello Cairo!",
    ]
    assert outputs["fan_out_fan_in_5.json"] == 0 + 1 + 4 + 9 + 16
    assert outputs["activity_failure_caught.json"]["caught"] == "RuntimeError"
    assert outputs["task_any_race.json"] == {"price": 41.5, "source": "cache"}
    assert outputs["entity_transfer_locked.json"] == 2
    # Answered 202 + Location twice, then 200: two polls, each after a durable timer.
    assert outputs["call_http_polled.json"] == {"status": 200, "content": '{"report": "ready"}'}
    # Recorded by 1.0's code; today's code branches on the version and keeps to 1.0's path.
    assert outputs["versioned_approval_v1.json"] == {
        "version": "1.0",
        "steps": ["decided: approved"],
    }
