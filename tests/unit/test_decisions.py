"""The process's decision slot (ADR 40): one batch decides at a time, work in progress before a
batch that must load instances, unless that one has waited long enough; raised events taken
express do not wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.orchestrator.decisions import DecisionSlot


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def _take(slot: DecisionSlot, order: list[str], name: str, *, ongoing: bool) -> None:
    async with slot.take(ongoing=ongoing):
        order.append(name)


async def test_a_second_batch_decides_once_the_first_is_done() -> None:
    slot = DecisionSlot()
    order: list[str] = []
    async with slot.take(ongoing=True):
        second = asyncio.create_task(_take(slot, order, "second", ongoing=True))
        await _settle()
        assert order == []
        assert slot.waiting == 1
    await asyncio.wait_for(second, timeout=5)
    assert order == ["second"]


async def test_giving_the_slot_up_early_lets_the_next_decide_while_the_first_writes() -> None:
    slot = DecisionSlot()
    order: list[str] = []
    async with slot.take(ongoing=True) as decision:
        second = asyncio.create_task(_take(slot, order, "second", ongoing=True))
        await _settle()
        decision.done()  # decided: the batch writes now
        await asyncio.wait_for(second, timeout=5)
        assert order == ["second"]
        decision.done()  # once only: the end of the block releases nothing more
    third = asyncio.create_task(_take(slot, order, "third", ongoing=True))
    await asyncio.wait_for(third, timeout=5)
    async with slot.take(ongoing=False):  # free again
        pass


async def _order_after(
    slot: DecisionSlot,
    *,
    holder_ongoing: bool,
    waiters: list[tuple[str, bool]],
    while_held: Callable[[], None] = lambda: None,
) -> list[str]:
    """The order in which ``waiters`` (name, ongoing), lining up one after another while a
    batch holds the slot, decide once it is done (``while_held`` runs just before)."""
    order: list[str] = []
    async with slot.take(ongoing=holder_ongoing):
        tasks = []
        for name, ongoing in waiters:
            tasks.append(asyncio.create_task(_take(slot, order, name, ongoing=ongoing)))
            await _settle()
        while_held()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    return order


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> Callable[[], None]:
        def advance() -> None:
            self.now += seconds

        return advance


async def test_work_in_progress_goes_before_a_batch_that_loads_instances() -> None:
    slot = DecisionSlot(bulk_wait_seconds=60)
    waiters = [("starts", False), ("steps", True)]
    assert await _order_after(slot, holder_ongoing=True, waiters=waiters) == ["steps", "starts"]


@pytest.mark.parametrize(
    ("holder_ongoing", "expected"),
    [
        # Work in progress held the slot 0.1 s since the starts began to wait: they go first.
        (True, ["starts", "steps"]),
        # A long batch of starts held it: that does not count, the fires due meanwhile go first.
        (False, ["steps", "starts"]),
    ],
    ids=["work-in-progress-held-it-long-enough", "other-starts-held-it"],
)
async def test_starts_go_first_once_work_in_progress_has_held_the_slot_long_enough(
    holder_ongoing: bool, expected: list[str]
) -> None:
    clock = Clock()
    slot = DecisionSlot(bulk_wait_seconds=0.1, clock=clock)
    order = await _order_after(
        slot,
        holder_ongoing=holder_ongoing,
        waiters=[("starts", False), ("steps", True)],
        while_held=clock.advance(0.1),
    )
    assert order == expected


async def test_an_express_batch_decides_beside_the_holder() -> None:
    slot = DecisionSlot()
    async with slot.take(ongoing=False), asyncio.timeout(5), slot.take(ongoing=True, express=True):
        assert slot.waiting == 0


@pytest.mark.parametrize(
    "while_waiting",
    [True, False],
    # Cancelled in line, it leaves it; cancelled as the slot is handed to it (before it runs),
    # it passes the slot on.
    ids=["while-waiting", "as-the-slot-reaches-it"],
)
async def test_a_cancelled_batch_leaves_the_slot_to_the_next(while_waiting: bool) -> None:
    slot = DecisionSlot()
    order: list[str] = []
    async with slot.take(ongoing=True):
        cancelled = asyncio.create_task(_take(slot, order, "cancelled", ongoing=True))
        later = asyncio.create_task(_take(slot, order, "later", ongoing=True))
        await _settle()
        if while_waiting:
            cancelled.cancel()
            await _settle()
            assert slot.waiting == 1
    if not while_waiting:
        cancelled.cancel()
    await asyncio.wait_for(later, timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert order == ["later"]


async def test_a_batch_of_starts_steps_aside_for_work_in_progress_and_comes_back_first() -> None:
    slot = DecisionSlot(bulk_wait_seconds=60)
    order: list[str] = []
    async with slot.take(ongoing=False) as starts:
        other_starts = asyncio.create_task(_take(slot, order, "other starts", ongoing=False))
        steps = asyncio.create_task(_take(slot, order, "steps", ongoing=True))
        await _settle()
        await asyncio.wait_for(starts.step_aside(), timeout=5)  # between two instances
        order.append("starts again")
    await asyncio.wait_for(asyncio.gather(other_starts, steps), timeout=5)
    assert order == ["steps", "starts again", "other starts"]


async def test_nothing_steps_aside_when_no_work_in_progress_waits_or_for_a_step() -> None:
    slot = DecisionSlot()
    order: list[str] = []
    async with slot.take(ongoing=False) as starts:
        other_starts = asyncio.create_task(_take(slot, order, "other starts", ongoing=False))
        await _settle()
        await starts.step_aside()
        order.append("starts")
    async with slot.take(ongoing=True) as steps:
        more_steps = asyncio.create_task(_take(slot, order, "more steps", ongoing=True))
        await _settle()
        await steps.step_aside()
        order.append("steps")
    await asyncio.wait_for(asyncio.gather(other_starts, more_steps), timeout=5)
    assert order == ["starts", "other starts", "steps", "more steps"]


async def test_a_batch_cancelled_while_stepping_aside_releases_nothing_twice() -> None:
    slot = DecisionSlot(bulk_wait_seconds=60)
    order: list[str] = []
    steps_hold, steps_go = asyncio.Event(), asyncio.Event()

    async def starts() -> None:
        async with slot.take(ongoing=False) as deciding:
            await steps_hold.wait()
            await deciding.step_aside()
            order.append("starts")

    async def steps() -> None:
        async with slot.take(ongoing=True):
            order.append("steps")
            await steps_go.wait()

    stepping = asyncio.create_task(starts())
    await _settle()
    holding = asyncio.create_task(steps())
    await _settle()
    steps_hold.set()
    await _settle()  # the starts stepped aside: the steps hold the slot
    assert order == ["steps"]
    stepping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stepping
    steps_go.set()
    await asyncio.wait_for(holding, timeout=5)
    async with slot.take(ongoing=False):  # the slot is free, and held once
        waiter = asyncio.create_task(_take(slot, order, "after", ongoing=True))
        await _settle()
        assert not waiter.done()
    await asyncio.wait_for(waiter, timeout=5)
    assert order == ["steps", "after"]
