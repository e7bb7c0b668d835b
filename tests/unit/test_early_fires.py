"""Timer fires that arrive early are acknowledged and held until due, once per fire; those
too early for the cascade's margin go round again; dropped ones are left to the sweeper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from contracts import OrchestratorMessage, TimerFired
from services.orchestrator.acknowledgements import Acknowledgements
from services.orchestrator.early_fires import REDELAY_AFTER_SECONDS, EarlyFires
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import (
    TOPOLOGY,
    Channel,
    Delivery,
    Publisher,
    task_completed,
    timer_fire,
)

# Asyncio may run a timer callback up to its clock's resolution early; a fire is not early
# by more than that.
RESOLUTION = timedelta(milliseconds=5)


class Released:
    """The fires ``EarlyFires`` released, with when."""

    def __init__(self) -> None:
        self.fires: list[tuple[OrchestratorMessage, datetime]] = []

    def __call__(self, fire: OrchestratorMessage) -> None:
        self.fires.append((fire, datetime.now(UTC)))

    @property
    def messages(self) -> list[OrchestratorMessage]:
        return [fire for fire, _ in self.fires]

    async def wait_for(self, fire: OrchestratorMessage) -> None:
        await assert_eventually(lambda: fire in self.messages, timeout=5)


def early_fires(publisher: Publisher | None = None) -> tuple[EarlyFires, Released]:
    released = Released()
    fires = EarlyFires(
        publisher or Publisher(),  # type: ignore[arg-type]
        TOPOLOGY,
        Acknowledgements(structlog.get_logger()),
        released,
    )
    return fires, released


def fire_at(fire: OrchestratorMessage) -> datetime:
    assert isinstance(fire.body, TimerFired)
    return fire.body.fire_at


async def test_an_early_fire_is_acknowledged_at_once_and_released_when_due() -> None:
    fires, released = early_fires()
    channel = Channel()
    fire = timer_fire(due_in_seconds=0.3)

    assert await fires.held_until_due(Delivery(channel, 1), fire)  # type: ignore[arg-type]
    assert channel.settled == [("ack", 1, False)]
    assert released.fires == []

    await released.wait_for(fire)
    [(_, at)] = released.fires
    assert at >= fire_at(fire) - RESOLUTION


async def test_a_fire_that_is_due_and_any_other_message_go_into_the_batch() -> None:
    fires, _ = early_fires()
    channel = Channel()
    overdue, other = timer_fire(due_in_seconds=-1), task_completed()

    assert not await fires.held_until_due(Delivery(channel, 1), overdue)  # type: ignore[arg-type]
    assert not await fires.held_until_due(Delivery(channel, 2), other)  # type: ignore[arg-type]
    assert channel.settled == []


async def test_a_fire_too_early_for_the_margin_goes_through_the_cascade_again() -> None:
    publisher = Publisher()
    fires, _ = early_fires(publisher)
    channel = Channel()
    fire = timer_fire(due_in_seconds=REDELAY_AFTER_SECONDS + 60)

    assert await fires.held_until_due(Delivery(channel, 1), fire)  # type: ignore[arg-type]

    [sent] = publisher.published
    assert sent.exchange == TOPOLOGY.delay_entry_exchange
    assert sent.message_id == str(fire.envelope.message_id)
    assert channel.settled == [("ack", 1, False)]


async def test_a_fire_the_cascade_does_not_take_back_is_requeued_not_acknowledged() -> None:
    fires, _ = early_fires(Publisher(fail=True))
    channel = Channel()
    fire = timer_fire(due_in_seconds=REDELAY_AFTER_SECONDS + 60)

    assert await fires.held_until_due(Delivery(channel, 1), fire)  # type: ignore[arg-type]
    assert channel.settled == [("requeue", 1, False)]


async def test_a_fire_without_a_delivery_of_its_own_is_held_not_sent_round_again() -> None:
    publisher = Publisher()
    fires, _ = early_fires(publisher)

    assert await fires.held_until_due(None, timer_fire(due_in_seconds=REDELAY_AFTER_SECONDS + 60))
    assert publisher.published == []
    fires.drop()


async def test_copies_of_one_fire_are_released_once() -> None:
    fires, released = early_fires()
    channel = Channel()
    fire = timer_fire(due_in_seconds=0.1)
    later = timer_fire(due_in_seconds=0.3)

    await fires.held_until_due(Delivery(channel, 1), fire)  # type: ignore[arg-type]
    await fires.held_until_due(Delivery(channel, 2), fire.model_copy())  # type: ignore[arg-type]
    fires.hold([fire, later])
    await released.wait_for(later)

    assert [m.envelope.message_id for m in released.messages] == [
        fire.envelope.message_id,
        later.envelope.message_id,
    ]
    # Both copies' deliveries are settled: the one held stands for both.
    assert channel.settled == [("ack", 1, False), ("ack", 2, False)]


async def test_fires_a_batch_returned_are_released_when_due_and_overdue_ones_at_once() -> None:
    fires, released = early_fires()
    soon, overdue = timer_fire(due_in_seconds=0.2), timer_fire(due_in_seconds=-5)

    fires.hold([soon, overdue])

    await released.wait_for(soon)
    assert released.messages == [overdue, soon]
    assert released.fires[1][1] >= fire_at(soon) - RESOLUTION


async def test_dropped_fires_are_never_released_and_may_be_held_again() -> None:
    fires, released = early_fires()
    dropped, kept = timer_fire(due_in_seconds=0.05), timer_fire(due_in_seconds=0.2)

    fires.hold([dropped])
    fires.drop()
    fires.hold([kept])
    await released.wait_for(kept)
    assert released.messages == [kept]

    fires.hold([dropped])  # a copy delivered after the drop is held, not taken for a duplicate
    await released.wait_for(dropped)
