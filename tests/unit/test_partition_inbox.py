"""The partition inbox: what is buffered goes as one batch, up to the batch size; deliveries
wait for publishing and due messages do not; when both are ready they take turns; raised
events are taken apart, at once, and no other batch is taken while they are processed."""

from __future__ import annotations

import asyncio
import contextlib

from services.orchestrator.inbox import BatchItem, PartitionInbox, is_raised_event
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import Channel, Delivery, deliveries, task_completed, timer_fire


class Lane:
    busy = False


def inbox(batch_size: int = 16) -> tuple[PartitionInbox, Lane]:
    lane = Lane()
    return PartitionInbox(batch_size, lambda: lane.busy), lane


async def loop_turns(count: int = 10) -> None:
    """Let every task that can run without waiting run (no time passes)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def taken(batch: asyncio.Task[list[BatchItem]]) -> list[BatchItem]:
    return await asyncio.wait_for(batch, timeout=5)


async def test_what_is_buffered_goes_as_one_batch_up_to_the_batch_size() -> None:
    partition, _ = inbox(batch_size=3)
    arrived = deliveries(Channel(), 5)
    for delivery in arrived:
        partition.put_delivery(delivery)  # type: ignore[arg-type]

    assert await partition.next_batch() == arrived[:3]
    assert await partition.next_batch() == arrived[3:]


async def test_a_batch_is_taken_as_soon_as_something_arrives() -> None:
    partition, _ = inbox()
    batch = asyncio.create_task(partition.next_batch())
    await loop_turns()
    assert not batch.done()

    [delivery] = deliveries(Channel(), 1)
    partition.put_delivery(delivery)  # type: ignore[arg-type]

    assert await taken(batch) == [delivery]


async def test_deliveries_wait_for_publishing_and_due_messages_do_not() -> None:
    partition, lane = inbox()
    lane.busy = True
    [delivery] = deliveries(Channel(), 1)
    fire = timer_fire(due_in_seconds=0)
    partition.put_delivery(delivery)  # type: ignore[arg-type]
    partition.put_due(fire)

    assert await partition.next_batch() == [fire]
    batch = asyncio.create_task(partition.next_batch())
    await loop_turns()
    assert not batch.done()

    lane.busy = False
    partition.wake()
    assert await taken(batch) == [delivery]


async def test_due_messages_and_deliveries_take_turns_when_both_are_ready() -> None:
    partition, _ = inbox(batch_size=2)
    first, second = deliveries(Channel(), 2)
    due = [task_completed(task_scheduled_id=n) for n in range(1, 5)]
    for message in due:
        partition.put_due(message)
    partition.put_delivery(first)  # type: ignore[arg-type]
    partition.put_delivery(second)  # type: ignore[arg-type]

    batches = [await partition.next_batch() for _ in range(3)]

    assert batches == [due[:2], [first, second], due[2:]]


async def test_due_messages_go_on_while_no_delivery_is_ready() -> None:
    partition, _ = inbox(batch_size=1)
    due = [task_completed(task_scheduled_id=n) for n in range(1, 4)]
    for message in due:
        partition.put_due(message)

    assert [await partition.next_batch() for _ in range(3)] == [[m] for m in due]


async def test_idle_once_the_worker_asks_again_with_nothing_buffered_or_publishing() -> None:
    partition, lane = inbox()
    await asyncio.wait_for(partition.wait_idle(), timeout=5)  # nothing has arrived yet

    [delivery] = deliveries(Channel(), 1)
    partition.put_delivery(delivery)  # type: ignore[arg-type]
    await partition.next_batch()
    idle = asyncio.create_task(partition.wait_idle())
    lane.busy = True  # the batch taken is publishing
    batch = asyncio.create_task(partition.next_batch())
    await loop_turns()
    assert not idle.done()

    lane.busy = False
    partition.wake()
    await assert_eventually(idle.done, timeout=5)
    batch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await batch


async def test_what_was_buffered_before_a_clear_is_never_taken() -> None:
    partition, _ = inbox()
    old, new = deliveries(Channel(), 2)
    partition.put_delivery(old)  # type: ignore[arg-type]
    partition.put_due(timer_fire(due_in_seconds=0))
    partition.clear()

    partition.put_delivery(new)  # type: ignore[arg-type]

    assert await partition.next_batch() == [new]


async def test_raised_events_are_taken_apart_at_once_and_hold_back_other_batches() -> None:
    partition, lane = inbox(batch_size=16)
    lane.busy = True
    channel = Channel()
    bulk = deliveries(channel, 3)
    events = [Delivery(channel, tag, type="EventRaised") for tag in (4, 5)]
    fire = timer_fire(due_in_seconds=0)
    for delivery in [bulk[0], events[0], bulk[1], events[1], bulk[2]]:
        partition.put_delivery(delivery, express=delivery in events)  # type: ignore[arg-type]
    partition.put_due(fire)
    assert partition.has_events

    # Both events, in their order, without waiting for publishing.
    assert await partition.next_events() == events
    assert not partition.has_events
    # No other batch is taken while they are processed (not even a due fire): a batch taken
    # beside them could hold deliveries numbered after them, and its multiple ack cover them.
    batch = asyncio.create_task(partition.next_batch())
    await loop_turns()
    assert not batch.done()

    partition.events_done()
    assert await taken(batch) == [fire]
    lane.busy = False
    assert await partition.next_batch() == bulk


async def test_an_event_arriving_while_others_are_processed_keeps_other_batches_back() -> None:
    partition, _ = inbox()
    channel = Channel()
    first, second = (Delivery(channel, tag, type="EventRaised") for tag in (1, 3))
    [later] = deliveries(Channel(), 1)
    partition.put_delivery(first, express=True)  # type: ignore[arg-type]
    assert await partition.next_events() == [first]
    partition.put_delivery(second, express=True)  # type: ignore[arg-type]
    partition.put_delivery(later)  # type: ignore[arg-type]

    partition.events_done()  # the second is still buffered
    batch = asyncio.create_task(partition.next_batch())
    await loop_turns()
    assert not batch.done()

    assert await partition.next_events() == [second]
    partition.events_done()
    assert await taken(batch) == [later]


def test_a_raised_event_is_known_by_its_delivery_type() -> None:
    channel = Channel()
    assert is_raised_event(Delivery(channel, 1, type="EventRaised"))  # type: ignore[arg-type]
    assert not is_raised_event(Delivery(channel, 2, type="TaskCompleted"))  # type: ignore[arg-type]
    assert not is_raised_event(Delivery(channel, 3, type="OrchestratorMessageBatch"))  # type: ignore[arg-type]
    assert not is_raised_event(task_completed(task_scheduled_id=1))
