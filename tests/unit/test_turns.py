"""Turns on a process's event loop (ADR 39): a batch gives the loop up once it has held it for
a slice, and while an event waits in a partition, the others' batches give way to it, for a
bounded time."""

from __future__ import annotations

import asyncio

from services.orchestrator.turns import Turns


async def test_with_no_event_waiting_nothing_gives_way() -> None:
    turns = Turns(give_way_seconds=60)
    await asyncio.wait_for(turns.give_way(3), timeout=5)


async def test_other_partitions_give_way_until_the_event_is_committed() -> None:
    turns = Turns(give_way_seconds=60)
    turns.urgent(1, True)
    waiting = asyncio.create_task(turns.give_way(2))
    await asyncio.wait_for(turns.give_way(1), timeout=5)  # the event's own partition goes on
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiting.done()

    turns.urgent(1, False)
    await asyncio.wait_for(waiting, timeout=5)


async def test_giving_way_is_bounded_so_a_stream_of_events_cannot_stop_the_bulk() -> None:
    turns = Turns(give_way_seconds=0.01)
    turns.urgent(1, True)
    await asyncio.wait_for(turns.give_way(2), timeout=5)
    assert turns.is_urgent(1)


async def test_the_last_urgent_partition_cleared_frees_the_others() -> None:
    turns = Turns(give_way_seconds=60)
    turns.urgent(1, True)
    turns.urgent(4, True)
    waiting = asyncio.create_task(turns.give_way(2))
    turns.urgent(1, False)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiting.done()
    turns.urgent(4, False)
    await asyncio.wait_for(waiting, timeout=5)


async def test_a_pause_yields_only_once_its_slice_is_spent() -> None:
    turns = Turns(slice_seconds=60, give_way_seconds=60)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.create_task(other())
    await turns.turn(0).pause()  # the slice is not spent: no yield, the other task waits
    assert ran == []
    await Turns(slice_seconds=0).turn(0).pause()  # spent: the loop runs the other task
    assert ran == ["other"]
    await task


async def test_a_spent_pause_gives_way_to_an_urgent_partition() -> None:
    turns = Turns(slice_seconds=0, give_way_seconds=60)
    turns.urgent(5, True)
    pause = asyncio.create_task(turns.turn(2).pause())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not pause.done()
    turns.urgent(5, False)
    await asyncio.wait_for(pause, timeout=5)
