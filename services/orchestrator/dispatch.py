"""What a decision sends: activity tasks, and timer fires through the delay cascade."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from contracts import (
    ACTIVITY_TASK_BATCH,
    ActivityTask,
    ActivityTaskMessage,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
    Envelope,
    HistoryEvent,
    OrchestratorMessage,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    Topology,
    deterministic_message_id,
)
from contracts.topology import MAX_DELAY_SECONDS
from durable.broker import OutgoingMessage, together
from services.orchestrator.cache import InstanceState
from services.orchestrator.entity_dispatch import entity_request


def messages_for(
    topology: Topology, state: InstanceState, events: Sequence[HistoryEvent], now: datetime
) -> tuple[list[OutgoingMessage], list[OrchestratorMessage]]:
    """One message per recorded action: a task for each activity, a request for each entity
    action, a delayed fire for each timer (sub-orchestrations are started with their rows,
    see ``followups``).

    Apart, the fires of timers due within the cascade's early margin: it would send them
    straight back, so the orchestrator holds them itself after the commit; like every held
    fire, their timer rows and the sweeper keep them durable (ADR 12).
    """
    messages: list[OutgoingMessage] = []
    held: list[OrchestratorMessage] = []
    for event in events:
        if isinstance(event, TaskScheduled):
            messages.append(_activity_task(topology, state, event, now))
        elif isinstance(
            event,
            EntityOperationCalled
            | EntityOperationSignaled
            | EntityLockRequested
            | EntityUnlockSent,
        ):
            messages.append(entity_request(topology, state, event, now))
        elif isinstance(event, TimerCreated):
            fire = timer_fired_message(
                state.instance_id,
                state.execution_id,
                state.correlation_id,
                event.event_id,
                event.fire_at,
                now,
            )
            if delay_seconds(event.fire_at, now) == 0:
                held.append(fire)
            else:
                messages.append(delayed(topology, fire, now))
    return messages, held


def _activity_task(
    topology: Topology, state: InstanceState, event: TaskScheduled, now: datetime
) -> OutgoingMessage:
    task = ActivityTaskMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(
                state.instance_id, state.execution_id, "task", event.event_id
            ),
            instance_id=state.instance_id,
            execution_id=state.execution_id,
            correlation_id=state.correlation_id,
            type="ActivityTask",
            sent_at=now,
            traceparent=state.episode_traceparent,
        ),
        body=ActivityTask(
            name=event.name,
            input=event.input,
            task_scheduled_id=event.event_id,
            attempt=event.attempt,
            timeout_seconds=event.timeout_seconds,
        ),
    )
    exchange, routing_key = topology.activity_route(event.name)
    return OutgoingMessage.of(task, exchange, routing_key)


def batched_tasks(
    messages: Sequence[OutgoingMessage],
    topology: Topology,
    most: int,
    runs_here: Callable[[OutgoingMessage], bool],
) -> list[OutgoingMessage]:
    """``messages``, with the activity tasks among them carried in batches (ADR 17).

    The tasks for one activity travel together, at most ``most`` to a message and in the
    order they were scheduled; a task alone stays a plain ``ActivityTask``, and so do those
    ``runs_here`` says the orchestrator runs itself (local activities). Every task keeps its
    own envelope inside the batch.
    """
    if most <= 1:
        return list(messages)
    kept: list[OutgoingMessage] = []
    tasks: list[OutgoingMessage] = []
    for message in messages:
        if (
            message.exchange == topology.activities_exchange
            and message.message_type == "ActivityTask"
            and not runs_here(message)
        ):
            tasks.append(message)
        else:
            kept.append(message)
    return kept + together(tasks, ACTIVITY_TASK_BATCH, most)


def timer_fired_message(
    instance_id: str,
    execution_id: str,
    correlation_id: str,
    timer_id: int,
    fire_at: datetime,
    now: datetime,
) -> OrchestratorMessage:
    """The fire of one timer. Every copy (cascade, re-delay, sweeper) has the same message id."""
    return OrchestratorMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(instance_id, execution_id, "timer", timer_id),
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=correlation_id,
            type="TimerFired",
            sent_at=now,
        ),
        body=TimerFired(timestamp=fire_at, timer_id=timer_id, fire_at=fire_at),
    )


ARRIVE_EARLY_SECONDS = 30
"""How much earlier than due a fire leaves the cascade, and so how soon a timer must be due for
its fire to be held by the orchestrator without passing through the broker (ADR 16).

The margin absorbs the hops and the time a burst of fires takes to enter the cascade: the
delay is counted from the decision, but the broker starts a message's TTL only when it has
queued it, at about 1,400 messages/s into the cascade's quorum queues here, so 10,000 timers
created at once enter it over about seven seconds (ADR 12's five-second margin was crossed).
Thirty seconds covers a burst of about 40,000; held fires cost memory, not broker work."""


def delay_seconds(fire_at: datetime, now: datetime) -> int:
    """Whole seconds to wait in the cascade; 0 for a fire the orchestrator holds itself.

    Rounded down and shortened by ``ARRIVE_EARLY_SECONDS``, so the fire arrives thirty to
    thirty-one seconds before it is due, whatever the publishing and the hops cost, and the
    orchestrator holds it until the exact time: timers keep sub-second precision and the
    cascade adds no lateness. Capped at the cascade's longest delay (an early arrival is sent
    round again).
    """
    remaining = math.floor((fire_at - now).total_seconds()) - ARRIVE_EARLY_SECONDS
    return int(min(max(0, remaining), MAX_DELAY_SECONDS))


def delayed(topology: Topology, fire: OrchestratorMessage, now: datetime) -> OutgoingMessage:
    """``fire`` routed through the delay cascade to arrive when it is due."""
    body = fire.body
    assert isinstance(body, TimerFired)
    routing_key = topology.delay_routing_key(
        delay_seconds(body.fire_at, now), fire.envelope.instance_id
    )
    return OutgoingMessage.of(fire, topology.delay_entry_exchange, routing_key)


def direct(topology: Topology, message: OrchestratorMessage) -> OutgoingMessage:
    """``message`` routed straight to the partition that owns its instance."""
    exchange, routing_key = topology.orchestrator_route(message.envelope.instance_id)
    return OutgoingMessage.of(message, exchange, routing_key)
