"""Recording an episode: turning a decision into the rows and messages of the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from contracts import (
    EventRaised,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCreated,
    TimerCreated,
    TimerFired,
    Topology,
)
from durable.broker import OutgoingMessage
from durable.store.batch import BatchWrite, InstanceUpdate, NewEvent
from durable.store.leases import Lease
from durable.store.timers import TimerChanges, TimerKey, TimerRow
from engine import ContinueAsNewRequest, Decision
from services.common.metrics import BatchTally
from services.orchestrator.cache import InstanceState
from services.orchestrator.dispatch import messages_for
from services.orchestrator.followups import ChildStart, Continuation, parent_answer, start_message

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from services.orchestrator.entity_state import EntityState

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RefusedMessage:
    """A message a batch does not record because it does not belong where it came (an
    answer for a call the instance never made, a message of an instance that cannot be
    written): the consumer dead-letters it with ``reason`` (ADR 21)."""

    message: OrchestratorMessage
    reason: str


@dataclass
class Batch:
    """Everything one transaction writes."""

    events: list[NewEvent] = field(default_factory=list)
    updates: list[InstanceUpdate] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    states: list[InstanceState] = field(default_factory=list)
    entities: list[EntityState] = field(default_factory=list)
    """The entities the batch ran, to cache once it commits (ADR 38)."""
    finished: list[str] = field(default_factory=list)
    timers_created: list[TimerRow] = field(default_factory=list)
    timers_closed: list[TimerKey] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    continuations: list[Continuation] = field(default_factory=list)
    held_fires: list[OrchestratorMessage] = field(default_factory=list)
    """Fires of timers due so soon that the orchestrator keeps them instead of publishing."""
    refused: list[RefusedMessage] = field(default_factory=list)
    """Messages not recorded that go to the dead-letter queue."""
    expected_seqs: dict[str, int] = field(default_factory=dict)
    """Each instance's ``last_seq`` before this batch: its row is written only if unchanged."""
    lease: Lease | None = None
    """The lease of the partition the batch is for; its writes fail unless it still holds."""
    tally: BatchTally = field(default_factory=BatchTally)
    """The batch's metrics, counted once it commits."""
    spans: list[Span] = field(default_factory=list)
    """Its episodes' spans, ended once it commits or fails (``traces``); none untraced."""
    _update_at: dict[str, int] = field(default_factory=dict, repr=False)

    def put_update(self, update: InstanceUpdate) -> None:
        """Set the instance's row update: an instance stepped more than once in the batch
        (local activities run before the commit) writes its row once, as it ends up."""
        at = self._update_at.setdefault(update.instance_id, len(self.updates))
        if at == len(self.updates):
            self.updates.append(update)
        else:
            self.updates[at] = update

    def update_of(self, instance_id: str) -> InstanceUpdate:
        return self.updates[self._update_at[instance_id]]

    @property
    def rows_only(self) -> bool:
        """Whether events, rows, timers and messages are all it writes (one statement can)."""
        return not (self.children or self.terminated or self.continuations)

    @property
    def timer_changes(self) -> TimerChanges:
        return TimerChanges(self.timers_created, self.timers_closed, self.finished)

    def write(self, partition: int | None) -> BatchWrite:
        """Everything the batch writes, as one statement writes it (``rows_only``)."""
        return BatchWrite(
            events=self.events,
            updates=self.updates,
            expected_seqs=self.expected_seqs,
            messages=self.messages,
            timers=self.timer_changes,
            partition=partition,
            lease=self.lease,
        )


class EpisodeRecorder:
    """Adds an episode's events, read-model update, timers and messages to a batch."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def append_events(
        self,
        state: InstanceState,
        events: Sequence[tuple[HistoryEvent, uuid.UUID | None]],
        batch: Batch,
        execution_id: str | None = None,
    ) -> None:
        batch.expected_seqs.setdefault(state.instance_id, state.last_seq)
        for event, message_id in events:
            state.last_seq += 1
            batch.events.append(
                NewEvent(
                    state.instance_id,
                    state.last_seq,
                    execution_id or state.execution_id,
                    event,
                    message_id,
                )
            )

    def record(
        self,
        state: InstanceState,
        inbound: Sequence[HistoryEvent],
        decision: Decision,
        now: datetime,
        batch: Batch,
    ) -> None:
        """The decision's events (after the episode's, already appended) and its effects."""
        self.append_events(state, [(event, None) for event in decision.new_events], batch)
        batch.put_update(
            InstanceUpdate(
                instance_id=state.instance_id,
                status=decision.status,
                custom_status=decision.custom_status,
                output=decision.output,
                failure=decision.failure,
                last_seq=state.last_seq,
                updated_at=now,
                completed_at=now if decision.status.is_terminal else None,
                version=state.version,
            )
        )
        self._record_timers(state, inbound, decision, batch)
        messages, held = messages_for(self.topology, state, decision.new_events, now)
        batch.messages += messages
        batch.held_fires += held
        self._record_followups(state, decision, now, batch)
        batch.tally.recorded(
            state.name,
            inbound,
            decision.new_events,
            decision.status,
            continued_as_new=decision.continue_as_new is not None,
            now=now,
        )
        bound = log.bind(instance_id=state.instance_id, correlation_id=state.correlation_id)
        if decision.status.is_terminal:
            batch.finished.append(state.instance_id)
            bound.info(
                "orchestration.ended",
                name=state.name,
                status=decision.status.value,
                error=decision.failure.message if decision.failure else None,
            )
        elif decision.continue_as_new is not None:
            batch.finished.append(state.instance_id)
            bound.debug("orchestration.continued_as_new", name=state.name)
        else:
            batch.states.append(state)

    @staticmethod
    def _record_timers(
        state: InstanceState, inbound: Sequence[HistoryEvent], decision: Decision, batch: Batch
    ) -> None:
        def key(timer_id: int) -> TimerKey:
            return TimerKey(state.instance_id, state.execution_id, timer_id)

        batch.timers_created += [
            TimerRow(
                state.instance_id, state.execution_id, e.event_id, e.fire_at, state.correlation_id
            )
            for e in decision.new_events
            if isinstance(e, TimerCreated)
        ]
        batch.timers_closed += [key(e.timer_id) for e in inbound if isinstance(e, TimerFired)]
        batch.timers_closed += [key(timer_id) for timer_id in decision.cancelled_timers]

    def _record_followups(
        self, state: InstanceState, decision: Decision, now: datetime, batch: Batch
    ) -> None:
        batch.children += [
            child_start(state, event)
            for event in decision.new_events
            if isinstance(event, SubOrchestrationInstanceCreated)
        ]
        if state.parent is not None:
            answer = parent_answer(self.topology, state.parent, state.correlation_id, decision, now)
            if answer is not None:
                batch.messages.append(answer)
        if decision.status is OrchestrationStatus.TERMINATED:
            batch.terminated.append(state.instance_id)
        if decision.continue_as_new is not None:
            self._continue_as_new(state, decision.continue_as_new, now, batch)

    def _continue_as_new(
        self, state: InstanceState, request: ContinueAsNewRequest, now: datetime, batch: Batch
    ) -> None:
        """Move the instance to its next execution: carried events become its first events,
        and an ExecutionStarted through the partition queue starts it. (The old execution's
        timers go with the instance's other rows in ``batch.finished``.)"""
        first_seq = state.last_seq + 1
        if request.carried_events:
            carried: list[tuple[HistoryEvent, uuid.UUID | None]] = [
                (OrchestratorStarted(timestamp=now), None),
                *(
                    (EventRaised(timestamp=now, name=n, input=d), None)
                    for n, d in request.carried_events
                ),
            ]
            self.append_events(state, carried, batch, execution_id=request.new_execution_id)
        batch.put_update(replace(batch.update_of(state.instance_id), last_seq=state.last_seq))
        batch.continuations.append(
            Continuation(state.instance_id, request.new_execution_id, request.input, first_seq)
        )
        batch.messages.append(
            start_message(
                self.topology,
                state.instance_id,
                state.name,
                request.new_execution_id,
                request.input,
                state.correlation_id,
                state.parent,
                now,
                traceparent=state.traceparent,
            )
        )


def child_start(state: InstanceState, event: SubOrchestrationInstanceCreated) -> ChildStart:
    """The start of the child an instance's ``SubOrchestrationInstanceCreated`` recorded."""
    return ChildStart(
        parent=ParentInstance(
            instance_id=state.instance_id,
            execution_id=state.execution_id,
            task_scheduled_id=event.event_id,
            name=state.name,
        ),
        name=event.name,
        instance_id=event.instance_id,
        input=event.input,
        correlation_id=state.correlation_id,
        version=event.version,
        traceparent=state.episode_traceparent,
    )
