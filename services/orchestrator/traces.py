"""An orchestration episode's span (ADR 32).

Each episode the handler runs on new messages is one span, in the trace its instance's
``ExecutionStarted`` names (the HTTP start, the broker submission, or the parent's episode
for a sub-orchestration), so an instance's episodes stay in one trace across batches,
processes and restarts. Replay makes no span: rebuilding an instance from its history
(``rehydrate``) runs no episode, and an episode's span says only what is new in it: the
messages it took in, and the actions it decided that were not in the history before.

Timers, external events and sub-orchestrations are events on the episode's span: a timer
may wait for days, past restarts, so no process could hold a span open for it; its
creation and its fire are each an instant in the episode that records it.

A span ends when its batch does: committed, or failed (then marked as an error, and the
batch's messages come back and are decided again, in new spans).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from contracts import (
    EventRaised,
    EventSent,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from engine import Decision
from services.common.tracing import NEW_TRACE, context_of, traceparent_of, tracer
from services.orchestrator.cache import InstanceState
from services.orchestrator.episode import Batch

Episode = list[tuple[HistoryEvent, uuid.UUID | None]]


def trace_episode(state: InstanceState, episode: Episode, decision: Decision, batch: Batch) -> None:
    """Open the span of the episode ``state`` is running (``episode``: its new events, an
    ``OrchestratorStarted`` first), before it is recorded: the tasks and children it
    schedules carry its context (``state.episode_traceparent``). Does nothing while tracing
    is off.

    An instance whose start came without a trace context (a client that does not trace)
    gets its own trace here: its first episode is the root, and the ``ExecutionStarted``
    it records carries the root's context for the episodes after it.
    """
    spans = tracer()
    if spans is None:
        return
    at = next((i for i, (e, _) in enumerate(episode) if isinstance(e, ExecutionStarted)), None)
    if at is not None:
        state.traceparent = _started(episode, at).traceparent
    inbound = [event for event, _ in episode[1:]]
    span = spans.start_span(
        f"episode {state.name}",
        context=context_of(state.traceparent) or NEW_TRACE,
        kind=SpanKind.INTERNAL,
        attributes={
            "durable.orchestrator.name": state.name,
            "durable.instance.id": state.instance_id,
            "durable.execution.id": state.execution_id,
            "durable.episode.messages": len(inbound),
            "durable.episode.tasks_scheduled": sum(
                isinstance(e, TaskScheduled) for e in decision.new_events
            ),
            "durable.orchestration.status": decision.status.value,
        },
    )
    traceparent = traceparent_of(span)
    if state.traceparent is None:
        state.traceparent = traceparent
        if at is not None:
            episode[at] = (
                _started(episode, at).model_copy(update={"traceparent": traceparent}),
                episode[at][1],
            )
    state.episode_traceparent = traceparent
    _add_events(span, inbound, decision.new_events)
    if decision.failure is not None:
        span.set_status(Status(StatusCode.ERROR, decision.failure.message[:500]))
    batch.spans.append(span)


def end_episode_spans(batch: Batch, error: BaseException | None = None) -> None:
    """End the batch's episode spans: it committed, or it failed with ``error``."""
    for span in batch.spans:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"batch not committed: {error!r}"[:500]))
        span.end()
    batch.spans.clear()


def _started(episode: Episode, at: int) -> ExecutionStarted:
    event = episode[at][0]
    assert isinstance(event, ExecutionStarted)
    return event


def _add_events(
    span: Span, inbound: Sequence[HistoryEvent], decided: Sequence[HistoryEvent]
) -> None:
    for event in inbound:
        match event:
            case TimerFired():
                span.add_event("timer.fired", {"durable.timer.id": event.timer_id})
            case EventRaised():
                span.add_event("event.raised", {"durable.event.name": event.name})
            case SubOrchestrationInstanceCompleted() | SubOrchestrationInstanceFailed():
                outcome = (
                    "completed"
                    if isinstance(event, SubOrchestrationInstanceCompleted)
                    else "failed"
                )
                span.add_event(
                    f"suborchestration.{outcome}", {"durable.task.id": event.task_scheduled_id}
                )
    for event in decided:
        match event:
            case TimerCreated():
                span.add_event(
                    "timer.created",
                    {
                        "durable.timer.id": event.event_id,
                        "durable.timer.fire_at": event.fire_at.isoformat(),
                    },
                )
            case SubOrchestrationInstanceCreated():
                span.add_event(
                    "suborchestration.created",
                    {
                        "durable.orchestrator.name": event.name,
                        "durable.instance.id": event.instance_id,
                    },
                )
            case EventSent():
                span.add_event(
                    "event.sent",
                    {"durable.event.name": event.name, "durable.instance.id": event.instance_id},
                )
