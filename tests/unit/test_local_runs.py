"""Local activities run by the partition consumer after the commit: their results come back
without a broker, each result's outbox row is deleted once it is recorded, and a run whose
partition was lost delivers nothing and leaves its rows to the sweeper."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
import structlog

from contracts import (
    ActivityTask,
    ActivityTaskMessage,
    Envelope,
    OrchestratorMessage,
    TaskCompleted,
    TaskStarted,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage
from durable.store.outbox import OutboxRecord
from services.orchestrator.local import LocalActivities
from services.orchestrator.local_runs import LocalRuns
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import TOPOLOGY

app = FunctionApp()
GATES: dict[str, threading.Event] = {}


@app.activity(local=True)
def double(value: int) -> int:
    return value * 2


@app.activity(local=True)
def behind_gate(gate: str) -> str:
    GATES[gate].wait(timeout=10)
    return gate


@app.activity
def remote(value: int) -> int:
    return value


def task_record(
    row_id: int, activity: str, value: object = 0, timeout_seconds: float | None = None
) -> OutboxRecord:
    message = ActivityTaskMessage(
        envelope=Envelope(
            message_id=uuid.uuid4(),
            instance_id=f"i{row_id}",
            execution_id="e1",
            correlation_id="c1",
            type="ActivityTask",
            sent_at=datetime.now(UTC),
        ),
        body=ActivityTask(
            name=activity, input=value, task_scheduled_id=row_id, timeout_seconds=timeout_seconds
        ),
    )
    exchange, routing_key = TOPOLOGY.activity_route(activity)
    return OutboxRecord(row_id, OutgoingMessage.of(message, exchange, routing_key))


class Relay:
    """Records the outbox rows it is asked to delete."""

    def __init__(self) -> None:
        self.discarded: list[int] = []

    def discard(self, ids: Sequence[int]) -> None:
        self.discarded.extend(ids)


class Runs:
    def __init__(self, local: LocalActivities) -> None:
        self.relay = Relay()
        self.delivered: list[OrchestratorMessage] = []
        self.runs = LocalRuns(
            local,
            self.relay,  # type: ignore[arg-type]
            self.delivered.append,
            structlog.get_logger(),
        )

    async def result_for(self, row_id: int) -> OrchestratorMessage:
        """Wait for the result of the task of outbox row ``row_id`` (its instance ``i<id>``)."""

        def delivered() -> OrchestratorMessage | None:
            for message in self.delivered:
                if message.envelope.instance_id == f"i{row_id}" and not isinstance(
                    message.body, TaskStarted
                ):
                    return message
            return None

        return await assert_eventually(delivered, timeout=5)


@pytest.fixture
def local() -> Iterator[LocalActivities]:
    activities = LocalActivities(app, TOPOLOGY, threads=1)
    yield activities
    for gate in GATES.values():
        gate.set()
    GATES.clear()
    activities.close()


async def test_local_tasks_run_here_and_only_the_others_are_published(
    local: LocalActivities,
) -> None:
    runs = Runs(local)
    remote_task = task_record(2, "remote")

    assert runs.runs.start([task_record(1, "double", 21), remote_task]) == [remote_task]

    result = await runs.result_for(1)
    assert isinstance(result.body, TaskCompleted)
    assert result.body.result == 42


async def test_a_results_row_is_deleted_once_the_result_is_recorded(
    local: LocalActivities,
) -> None:
    runs = Runs(local)
    runs.runs.start([task_record(1, "double", 1), task_record(2, "double", 2)])
    first, second = await runs.result_for(1), await runs.result_for(2)
    assert runs.relay.discarded == []

    runs.runs.recorded([first])
    runs.runs.recorded([first, second])

    assert runs.relay.discarded == [1, 2]


async def test_a_result_that_could_not_be_processed_keeps_its_row_for_the_sweeper(
    local: LocalActivities,
) -> None:
    runs = Runs(local)
    runs.runs.start([task_record(1, "double", 1)])
    result = await runs.result_for(1)

    runs.runs.not_recorded(result.envelope.message_id)
    runs.runs.recorded([result])

    assert runs.relay.discarded == []


async def test_a_task_with_a_time_out_reports_its_start_first(local: LocalActivities) -> None:
    runs = Runs(local)
    runs.runs.start([task_record(1, "double", 1, timeout_seconds=5)])

    await runs.result_for(1)

    assert [type(message.body) for message in runs.delivered] == [TaskStarted, TaskCompleted]


async def test_runs_started_before_a_detach_deliver_nothing_and_leave_their_rows(
    local: LocalActivities,
) -> None:
    runs = Runs(local)
    GATES["before"] = threading.Event()
    runs.runs.start([task_record(1, "behind_gate", "before", timeout_seconds=5)])
    await assert_eventually(lambda: runs.delivered, timeout=5)  # its start is reported

    runs.runs.detach()
    GATES["before"].set()
    # One thread: a task started after the detach finishes after the one before it.
    runs.runs.start([task_record(2, "double", 2)])
    after = await runs.result_for(2)
    runs.runs.recorded([after])

    assert [m.envelope.instance_id for m in runs.delivered] == ["i1", "i2"]
    assert isinstance(runs.delivered[0].body, TaskStarted)
    assert runs.relay.discarded == [2]


async def test_a_run_detached_before_it_began_reports_not_even_its_start(
    local: LocalActivities,
) -> None:
    runs = Runs(local)
    runs.runs.start([task_record(1, "double", 1, timeout_seconds=5)])
    runs.runs.detach()

    runs.runs.start([task_record(2, "double", 2)])
    await runs.result_for(2)

    assert [m.envelope.instance_id for m in runs.delivered] == ["i2"]


async def test_cancelled_runs_deliver_nothing(local: LocalActivities) -> None:
    runs = Runs(local)
    GATES["cancelled"] = threading.Event()
    runs.runs.start([task_record(1, "behind_gate", "cancelled")])

    runs.runs.cancel()
    GATES["cancelled"].set()
    runs.runs.start([task_record(2, "double", 2)])
    await runs.result_for(2)

    assert [m.envelope.instance_id for m in runs.delivered] == ["i2"]


async def test_tasks_that_cannot_be_run_here_deliver_nothing(local: LocalActivities) -> None:
    runs = Runs(local)
    readable = task_record(1, "double", 1)
    # Not an ActivityTaskMessage: the task cannot even be read.
    unreadable = OutboxRecord(1, dataclasses.replace(readable.message, body=b"{}"))

    assert runs.runs.start([unreadable]) == []
    runs.runs.start([task_record(2, "double", 2)])
    await runs.result_for(2)

    assert [m.envelope.instance_id for m in runs.delivered] == ["i2"]
