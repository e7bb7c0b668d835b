"""Which task messages a batch shares (ADR 17): per activity, in order, never local ones."""

from __future__ import annotations

import json
import uuid

from contracts import ACTIVITY_TASK_BATCH, Topology
from durable.broker import OutgoingMessage
from services.orchestrator.dispatch import batched_tasks

TOPOLOGY = Topology(namespace="ns", partitions=4)


def task(activity: str, n: int) -> OutgoingMessage:
    exchange, routing_key = TOPOLOGY.activity_route(activity)
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{activity}/{n}")),
        correlation_id="c",
        message_type="ActivityTask",
        body=json.dumps({"task": n}).encode(),
    )


def other(n: int) -> OutgoingMessage:
    exchange, routing_key = TOPOLOGY.orchestrator_route(f"child-{n}")
    return OutgoingMessage(exchange, routing_key, str(uuid.uuid4()), "c", "ExecutionStarted", b"{}")


def never_local(_: OutgoingMessage) -> bool:
    return False


def test_tasks_for_one_activity_share_messages_of_at_most_the_limit_in_their_order():
    tasks = [task("square", n) for n in range(5)]

    sent = batched_tasks(tasks, TOPOLOGY, 2, never_local)

    assert [m.message_type for m in sent] == [ACTIVITY_TASK_BATCH] * 2 + ["ActivityTask"]
    assert [json.loads(m.body) for m in sent[:2]] == [
        [{"task": 0}, {"task": 1}],
        [{"task": 2}, {"task": 3}],
    ]
    assert sent[2] == tasks[4]  # the last one alone stays a plain task
    assert {m.routing_key for m in sent} == {TOPOLOGY.activity_route("square")[1]}


def test_each_activity_has_its_own_batches_and_other_messages_are_left_as_they_are():
    messages = [task("square", 0), other(1), task("say_hello", 0), task("square", 1)]

    sent = batched_tasks(messages, TOPOLOGY, 64, never_local)

    assert sent[0] == messages[1]
    assert sent[1].message_type == ACTIVITY_TASK_BATCH
    assert sent[1].routing_key == TOPOLOGY.activity_route("square")[1]
    assert sent[2] == messages[2]


def test_local_activities_tasks_stay_alone_and_a_limit_of_one_changes_nothing():
    squares = [task("square", n) for n in range(3)]

    assert batched_tasks(squares, TOPOLOGY, 64, lambda _: True) == squares
    assert batched_tasks(squares, TOPOLOGY, 1, never_local) == squares


def test_a_batch_keeps_its_id_when_built_again_from_the_same_tasks():
    tasks = [task("square", n) for n in range(3)]

    first = batched_tasks(tasks, TOPOLOGY, 64, never_local)
    again = batched_tasks(tasks, TOPOLOGY, 64, never_local)

    assert first[0].message_id == again[0].message_id
    assert first[0].message_id not in {t.message_id for t in tasks}
