"""A value in the history that Postgres's ``jsonb`` refuses fails its instance with a clear
failure, instead of leaving it Running while its message is retried (ADR 21).

The history is written through the store as it was written before values were checked where
they enter: ``events.payload`` is ``json`` and keeps a string holding U+0000, which the
``instances`` row's ``jsonb`` columns refuse. The poisoned events are built with
``model_construct``, as such data was built then, unchecked.

Today the engine refuses such an output itself (``contracts.limits``), and the instance fails
with ``ValueRefusedError`` before anything reaches Postgres. What Postgres refuses is the
safety net for a value no check knows about; the tests of that net take the checks away
(``without_value_checks``), as for code written before them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

import contracts.limits
import contracts.values
from contracts import (
    ORCHESTRATOR_MESSAGE_BATCH,
    SCHEMA_VERSION,
    Envelope,
    EventRaised,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    OrchestratorStarted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskScheduled,
    Topology,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage, Publisher, carrier
from durable.store.batch import BatchWrite, InstanceUpdate, NewEvent, write_batch
from durable.store.outbox import delete_outbox
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.conftest import unique
from tests.helpers.waiting import assert_eventually
from tests.integration import messages
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers
from tests.integration.messages import ids_on_one_partition
from tests.integration.queues import message_count
from tests.integration.stored import handle, stored_instance

CITIES = ["Tokyo", "Cairo"]
POISONED_GREETING = "Hello \x00Tokyo!"


async def append_unchecked(
    pool: asyncpg.Pool,
    instance_id: str,
    execution_id: str,
    events: list[HistoryEvent],
    custom_status: object = None,
) -> None:
    """Append ``events`` after the instance's last one, and move its row along, through the
    store, as an orchestrator of before the checks would have written them."""
    last_seq = await pool.fetchval(
        "SELECT last_seq FROM instances WHERE instance_id = $1", instance_id
    )
    now = datetime.now(UTC)
    async with pool.acquire() as connection:
        await write_batch(
            connection,
            BatchWrite(
                [
                    NewEvent(instance_id, last_seq + 1 + n, execution_id, event)
                    for n, event in enumerate(events)
                ],
                [
                    InstanceUpdate(
                        instance_id=instance_id,
                        status=OrchestrationStatus.RUNNING,
                        custom_status=custom_status,
                        output=None,
                        failure=None,
                        last_seq=last_seq + len(events),
                        updated_at=now,
                        completed_at=None,
                    )
                ],
                {instance_id: last_seq},
            ),
        )


async def greeting_cities(
    handler: OrchestrationHandler, pool: asyncpg.Pool, instance_id: str, first_greeting: str
) -> str:
    """``hello_cities`` over Tokyo and Cairo, waiting for Cairo's greeting, with
    ``first_greeting`` recorded as Tokyo's; returns the execution id."""
    start = messages.start(instance_id, "hello_cities", CITIES)
    await handle(handler, pool, [start])
    execution_id = messages.execution_of(start)
    now = datetime.now(UTC)
    await append_unchecked(
        pool,
        instance_id,
        execution_id,
        [
            OrchestratorStarted(timestamp=now),
            TaskCompleted.model_construct(
                timestamp=now, task_scheduled_id=0, result=first_greeting
            ),
            TaskScheduled(timestamp=now, event_id=1, name="say_hello", input="Cairo"),
        ],
        custom_status={"greeting": "Cairo", "done": 1, "of": 2},
    )
    return execution_id


def unstorable_failure(row: dict[str, object]) -> FailureDetails:
    assert row["status"] == "Failed", row
    failure = FailureDetails.model_validate_json(str(row["failure"]))
    assert failure.error_type == "UnstorableValueError"
    assert failure.is_non_retriable
    return failure


@pytest.fixture
def without_value_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values pass as they did before they were checked where they enter."""

    def unchecked(value: object, what: str, limits: object = None) -> None:
        return None

    monkeypatch.setattr(contracts.limits, "check_json_value", unchecked)
    monkeypatch.setattr(contracts.values, "check_json_value", unchecked)


@pytest.fixture
def consumers_handler(
    pool: asyncpg.Pool, functions: FunctionApp, private_topology: Topology
) -> OrchestrationHandler:
    """A handler of its own for the consumers: its cache knows nothing of the setup."""
    return OrchestrationHandler(pool, functions, InstanceCache(), private_topology)


@pytest.fixture
async def partition_consumers(
    consumers_handler: OrchestrationHandler,
    pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    amqp_connection: AbstractConnection,
) -> AsyncIterator[list[PartitionConsumer]]:
    consumers = await start_partition_consumers(
        consumers_handler,
        OutboxRelay(pool, publisher),
        publisher,
        private_topology,
        amqp_connection,
    )
    yield consumers
    await stop_partition_consumers(consumers)


async def test_an_output_that_cannot_be_stored_fails_the_instance_where_it_is_produced(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    instance_id = unique("refused-")
    handler = new_handler()
    execution_id = await greeting_cities(handler, pool, instance_id, POISONED_GREETING)
    last = messages.task_completed(instance_id, execution_id, 1, "Hello Cairo!")

    await new_handler().handle([last])

    row = (await stored_instance(pool, instance_id)).row
    assert row["status"] == "Failed", row
    failure = FailureDetails.model_validate_json(str(row["failure"]))
    assert failure.error_type == "ValueRefusedError"
    assert failure.message == (
        "the orchestrator's output cannot be stored: $[0] is a string holding U+0000, "
        "which Postgres cannot store"
    )
    assert row["output"] is None


@pytest.mark.usefixtures("without_value_checks")
async def test_an_output_jsonb_refuses_fails_the_instance_instead_of_retrying_its_message(
    new_handler: Callable[..., OrchestrationHandler],
    pool: asyncpg.Pool,
    partition_consumers: list[PartitionConsumer],
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    [instance_id] = ids_on_one_partition(private_topology, 1)
    execution_id = await greeting_cities(new_handler(), pool, instance_id, POISONED_GREETING)
    before = await stored_instance(pool, instance_id)
    last = messages.task_completed(instance_id, execution_id, 1, "Hello Cairo!")

    await publisher.publish(
        OutgoingMessage.of(last, *private_topology.orchestrator_route(instance_id))
    )

    async def failed() -> dict[str, object]:
        stored = await stored_instance(pool, instance_id)
        assert stored.row["status"] == "Failed", f"still {stored.row['status']}"
        return stored.row

    row = await assert_eventually(failed, timeout=10)
    failure = unstorable_failure(row)
    assert failure.message.startswith("its output cannot be stored: Postgres refused it with")
    assert "22P05 unsupported Unicode escape sequence" in failure.message
    assert row["output"] is None
    assert row["completed_at"] is not None
    after = await stored_instance(pool, instance_id)
    # The result that could not be written is not recorded; the failure is.
    assert after.event_types == [*before.event_types, "OrchestratorStarted", "ExecutionFailed"]
    # Nothing is retried, nor dead-lettered: the message was acknowledged. (Stopping the
    # consumers first would put an unacknowledged message back in its queue.)
    await stop_partition_consumers(partition_consumers)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
    assert await message_count(channel, queue_name) == 0
    assert await message_count(channel, f"{queue_name}.dlq") == 0


@pytest.mark.usefixtures("without_value_checks")
async def test_a_refused_value_in_one_instance_of_a_batch_fails_only_that_one(
    new_handler: Callable[..., OrchestrationHandler],
    pool: asyncpg.Pool,
    partition_consumers: list[PartitionConsumer],
    private_topology: Topology,
    publisher: Publisher,
) -> None:
    poisoned_id, healthy_id = ids_on_one_partition(private_topology, 2)
    setup = new_handler()
    poisoned = await greeting_cities(setup, pool, poisoned_id, POISONED_GREETING)
    healthy = await greeting_cities(setup, pool, healthy_id, "Hello Tokyo!")
    exchange, routing_key = private_topology.orchestrator_route(poisoned_id)
    results = [
        messages.task_completed(poisoned_id, poisoned, 1, "Hello Cairo!"),
        messages.task_completed(healthy_id, healthy, 1, "Hello Cairo!"),
    ]

    # One carrier: both results are decided in one batch, written by one statement.
    singles = [OutgoingMessage.of(result, exchange, routing_key) for result in results]
    await publisher.publish(carrier(singles, ORCHESTRATOR_MESSAGE_BATCH))

    async def both_ended() -> tuple[dict[str, object], dict[str, object]]:
        rows = [(await stored_instance(pool, i)).row for i in (poisoned_id, healthy_id)]
        assert [row["status"] for row in rows] == ["Failed", "Completed"]
        return rows[0], rows[1]

    failed, completed = await assert_eventually(both_ended, timeout=10)
    assert "its output cannot be stored" in unstorable_failure(failed).message
    assert completed["output"] == '["Hello Tokyo!", "Hello Cairo!"]'


def unchecked_message(
    instance_id: str, execution_id: str, body: HistoryEvent
) -> OrchestratorMessage:
    return OrchestratorMessage.model_construct(
        envelope=Envelope.model_construct(
            message_id=uuid.uuid4(),
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=f"corr-{instance_id}",
            type=body.event_type,
            schema_version=SCHEMA_VERSION,
            sent_at=datetime.now(UTC),
        ),
        body=body,
    )


@pytest.mark.usefixtures("without_value_checks")
async def test_a_sub_orchestration_that_cannot_be_written_fails_and_its_parent_is_answered(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    parent_id, child_id = unique("parent-"), unique("child-")
    setup = new_handler()
    committed = await setup.handle([messages.start(parent_id, "waits_on_child", child_id)])
    await delete_outbox(pool, [record.id for record in committed.records])
    [child_start] = [
        OrchestratorMessage.model_validate_json(record.message.body)
        for record in committed.records
        if record.message.message_type == "ExecutionStarted"
    ]
    await handle(setup, pool, [child_start])
    assert await pool.fetchval("SELECT count(*) FROM timers WHERE instance_id = $1", child_id)
    assert isinstance(child_start.body, ExecutionStarted)
    child_execution = child_start.body.execution_id
    now = datetime.now(UTC)
    # The approval the child waits for, recorded before it was checked: its output, built
    # from it, cannot be stored.
    await append_unchecked(
        pool,
        child_id,
        child_execution,
        [
            OrchestratorStarted(timestamp=now),
            EventRaised.model_construct(timestamp=now, name="Approval", input="yes\x00"),
        ],
    )

    later = messages.event_raised(child_id, child_execution, "Reminder")
    answered = await new_handler().handle([later])
    await delete_outbox(pool, [record.id for record in answered.records])

    child = await stored_instance(pool, child_id)
    assert "its output cannot be stored" in unstorable_failure(child.row).message
    assert await pool.fetchval("SELECT count(*) FROM timers WHERE instance_id = $1", child_id) == 0
    [answer] = [
        OrchestratorMessage.model_validate_json(record.message.body)
        for record in answered.records
        if record.message.routing_key == setup._topology.orchestrator_route(parent_id)[1]
    ]
    assert isinstance(answer.body, SubOrchestrationInstanceFailed)
    assert answer.body.failure.error_type == "UnstorableValueError"


async def test_a_start_whose_instance_cannot_be_written_is_refused_for_the_dead_letters(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    instance_id = unique("unwritable-")
    start = unchecked_message(
        instance_id,
        "e1",
        ExecutionStarted.model_construct(
            timestamp=datetime.now(UTC),
            name="hello_cities",
            execution_id="e1",
            input=["Tok\x00yo"],
            parent=None,
            scheduled_start_at=None,
        ),
    )

    committed = await new_handler().handle([start])

    assert committed.records == []
    [refused] = committed.refused
    assert refused.message is start
    assert refused.reason.startswith(
        f"instance {instance_id!r} cannot be written: the input of its start cannot be stored"
    )
    assert (await stored_instance(pool, instance_id)).instance_row is None


async def test_a_repeated_result_is_dropped_quietly_and_one_never_scheduled_is_refused(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    handler = new_handler()
    instance_id = unique("hello-")
    start = messages.start(instance_id, "hello_cities", CITIES)
    await handle(handler, pool, [start])
    execution_id = messages.execution_of(start)
    first = messages.task_completed(instance_id, execution_id, 0, "Hello Tokyo!")
    await handle(handler, pool, [first])
    stray = messages.task_completed(instance_id, execution_id, 4, "from nowhere")

    committed = await handler.handle([first, stray])

    assert [(r.message, r.reason) for r in committed.refused] == [
        (
            stray,
            f"TaskCompleted for instance {instance_id!r} (execution {execution_id}): "
            "no activity #4 was scheduled",
        )
    ]


async def test_a_message_whose_instance_id_postgres_cannot_read_is_refused(
    new_handler: Callable[..., OrchestrationHandler],
) -> None:
    instance_id = unique("nul-\x00-")
    event = messages.event_raised("placeholder", None, "Approval").body
    message = unchecked_message(instance_id, "e1", event)

    committed = await new_handler().handle([message])

    [refused] = committed.refused
    assert refused.message is message
    assert "failing the instance was refused too: 22021" in refused.reason
