"""Which committed task messages the orchestrator runs itself, and how it runs them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contracts import (
    ActivityTask,
    ActivityTaskMessage,
    Envelope,
    OrchestratorMessage,
    TaskCompleted,
    Topology,
    deterministic_message_id,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage
from durable.store.outbox import OutboxRecord
from services.orchestrator.local import LocalActivities

TOPOLOGY = Topology(namespace="unit", partitions=2)

app = FunctionApp()


@app.activity(local=True)
def double(value: int) -> int:
    return value * 2


@app.activity
def remote(value: int) -> int:
    return value


def task_record(row_id: int, activity: str, value: int = 0) -> OutboxRecord:
    message = ActivityTaskMessage(
        envelope=Envelope(
            message_id=uuid.uuid4(),
            instance_id="i1",
            execution_id="e1",
            correlation_id="i1",
            type="ActivityTask",
            sent_at=datetime.now(UTC),
        ),
        body=ActivityTask(name=activity, input=value, task_scheduled_id=row_id),
    )
    exchange, routing_key = TOPOLOGY.activity_route(activity)
    return OutboxRecord(row_id, OutgoingMessage.of(message, exchange, routing_key))


def test_only_tasks_of_local_activities_are_kept_back_from_publishing():
    local = LocalActivities(app, TOPOLOGY, threads=1)
    other = OutboxRecord(
        9,
        OutgoingMessage(
            exchange=TOPOLOGY.orchestrator_route("i2")[0],
            routing_key=TOPOLOGY.orchestrator_route("i2")[1],
            message_id=str(uuid.uuid4()),
            correlation_id="i2",
            message_type="ExecutionStarted",
            body=b"{}",
        ),
    )
    records = [task_record(1, "double"), task_record(2, "remote"), other]

    publish, run_here = local.split(records)

    assert [record.id for record in publish] == [2, 9]
    assert [(record.id, definition.name) for record, definition in run_here] == [(1, "double")]
    local.close()


def test_an_app_without_local_activities_publishes_everything():
    local = LocalActivities(FunctionApp(), TOPOLOGY, threads=1)
    records = [task_record(1, "double")]
    assert local.split(records) == (records, [])
    local.close()


async def test_a_local_task_runs_and_answers_like_the_activity_service():
    local = LocalActivities(app, TOPOLOGY, threads=1)
    started: list[OrchestratorMessage] = []

    async def report(message: OrchestratorMessage) -> None:
        started.append(message)

    record = task_record(4, "double", 21)
    [(ran, result)] = await local.run([(record, app.activities["double"])], report)

    assert ran is record
    assert isinstance(result.body, TaskCompleted)
    assert result.body.result == 42
    assert result.body.task_scheduled_id == 4
    assert result.envelope.message_id == deterministic_message_id("i1", "e1", "result", 4)
    assert started == []  # no time-out: nothing to report
    local.close()


@app.activity(local=True)
async def double_async(value: int) -> int:
    return value * 2


def task_message(
    activity: str, instance_id: str, timeout: float | None = None, value: int = 0
) -> OutgoingMessage:
    record = task_record(1, activity, value)
    message = ActivityTaskMessage.model_validate_json(record.message.body)
    message = message.model_copy(
        update={
            "envelope": message.envelope.model_copy(update={"instance_id": instance_id}),
            "body": message.body.model_copy(update={"timeout_seconds": timeout}),
        }
    )
    exchange, routing_key = TOPOLOGY.activity_route(activity)
    return OutgoingMessage.of(message, exchange, routing_key)


def test_only_plain_local_tasks_without_a_time_out_of_the_batch_are_taken_inline():
    local = LocalActivities(app, TOPOLOGY, threads=1)
    inline = task_message("double", "i1")
    others = [
        task_message("double", "i1", timeout=5),  # a time-out: runs after the commit
        task_message("double_async", "i1"),  # async: runs after the commit
        task_message("remote", "i1"),  # not local
        task_message("double", "elsewhere"),  # not an instance the batch stepped
    ]

    keep, taken = local.take_inline([others[0], inline, *others[1:]], {"i1"})

    assert keep == others
    assert [(definition.name, task.body.input) for definition, task in taken] == [("double", 0)]
    local.close()


async def test_tasks_taken_inline_run_and_answer_like_the_activity_service():
    local = LocalActivities(app, TOPOLOGY, threads=1)
    _, taken = local.take_inline([task_message("double", "i1", value=21)], {"i1"})

    [result] = await local.run_inline(taken)

    assert isinstance(result.body, TaskCompleted)
    assert result.body.result == 42
    assert result.envelope.message_id == deterministic_message_id("i1", "e1", "result", 1)
    local.close()
