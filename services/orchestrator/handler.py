"""The handler transaction: the one place the orchestrator does I/O around the engine.

For a batch of messages from one partition, in one transaction:
lock the instances → drop duplicates → load or reuse state → run the engine →
append events at the expected seq, update the read model, write the outbox → commit.
The caller then publishes the outbox and acknowledges the messages. A failure anywhere
before the commit loses nothing: the messages are redelivered, duplicates are dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import asyncpg
import structlog

from contracts import (
    EventRaised,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionTerminated,
    FailureDetails,
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
from durable.app import FunctionApp
from services.common.amqp import OutgoingMessage
from services.common.db import AmbiguousCommitError, Connection, is_connection_failure
from services.common.events import StoredEvent, load_histories_txn
from services.common.instances import NewInstance, insert_instances_txn
from services.common.outbox import OutboxRecord, insert_outbox_txn
from services.orchestrator import store
from services.orchestrator.cache import InstanceCache, InstanceState
from services.orchestrator.dispatch import messages_for
from services.orchestrator.engine import ContinueAsNewRequest, Decision, OrchestrationExecutor
from services.orchestrator.followups import (
    ChildStart,
    Continuation,
    continue_as_new_txn,
    parent_answer,
    start_children_txn,
    start_message,
    terminate_children_txn,
)
from services.orchestrator.timers import (
    TimerKey,
    TimerRow,
    delete_instance_timers_txn,
    delete_timers_txn,
    insert_timers_txn,
)

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Batch:
    """Everything one transaction writes."""

    events: list[store.NewEvent] = field(default_factory=list)
    updates: list[store.InstanceUpdate] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    states: list[InstanceState] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    timers_created: list[TimerRow] = field(default_factory=list)
    timers_closed: list[TimerKey] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    continuations: list[Continuation] = field(default_factory=list)


class OrchestrationHandler:
    """Runs batches of orchestrator messages through the engine, one transaction per batch."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        functions: FunctionApp,
        cache: InstanceCache,
        topology: Topology,
        clock: Callable[[], datetime] = utc_now,
        *,
        keep_continued_history: bool = False,
    ) -> None:
        self._pool = pool
        self._functions = functions
        self._cache = cache
        self._topology = topology
        self._clock = clock
        self._keep_continued_history = keep_continued_history

    async def handle(self, messages: Sequence[OrchestratorMessage]) -> list[OutboxRecord]:
        """Process ``messages`` in one transaction; return the outbox rows to publish.

        Raises ``ConcurrencyError`` when another writer appended to one of the instances
        first, and ``AmbiguousCommitError`` when the commit's outcome is unknown. Either way
        nothing of this batch is cached, and the messages must not be acknowledged.
        """
        groups: dict[str, list[OrchestratorMessage]] = {}
        for message in messages:
            groups.setdefault(message.envelope.instance_id, []).append(message)
        try:
            batch, records = await self._transaction(groups, self._clock())
        except BaseException:
            for instance_id in groups:
                self._cache.evict(instance_id)
            raise
        for state in batch.states:
            self._cache.put(state)
        for instance_id in batch.finished:
            self._cache.evict(instance_id)
        return records

    async def _transaction(
        self, groups: dict[str, list[OrchestratorMessage]], now: datetime
    ) -> tuple[_Batch, list[OutboxRecord]]:
        async with self._pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                batch = await self._decide_txn(connection, groups, now)
                await store.append_events_txn(connection, batch.events)
                await store.update_instances_txn(connection, batch.updates)
                await insert_timers_txn(connection, batch.timers_created)
                await delete_timers_txn(connection, batch.timers_closed)
                await delete_instance_timers_txn(connection, batch.finished)
                await continue_as_new_txn(
                    connection, batch.continuations, self._keep_continued_history
                )
                batch.messages += await start_children_txn(
                    connection, self._topology, batch.children, now
                )
                batch.messages += await terminate_children_txn(
                    connection, self._topology, batch.terminated, "the parent was terminated", now
                )
                records = await insert_outbox_txn(connection, batch.messages)
            except BaseException:
                await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except Exception as error:
                if is_connection_failure(error):
                    raise AmbiguousCommitError(str(error)) from error
                raise
        return batch, records

    async def _decide_txn(
        self,
        connection: Connection,
        groups: dict[str, list[OrchestratorMessage]],
        now: datetime,
    ) -> _Batch:
        rows = await store.lock_instances_txn(connection, list(groups))
        missing = [
            _new_instance(start, now)
            for instance_id, group in groups.items()
            if instance_id not in rows
            for start in _first_start(group)
        ]
        if missing:
            await insert_instances_txn(connection, missing)
            rows |= await store.lock_instances_txn(connection, [i.instance_id for i in missing])

        states: dict[str, InstanceState] = {}
        to_load: dict[str, int] = {}
        for instance_id, row in rows.items():
            if row.status.is_terminal:
                continue
            cached = self._cache.get(instance_id)
            if (
                cached
                and cached.last_seq == row.last_seq
                and cached.execution_id == row.execution_id
            ):
                states[instance_id] = cached
            else:
                to_load[instance_id] = row.execution_start_seq
        histories = await load_histories_txn(connection, to_load) if to_load else {}
        for instance_id, history in histories.items():
            states[instance_id] = self._rehydrate(rows[instance_id], history)

        batch = _Batch()
        for instance_id, group in groups.items():
            state = states.get(instance_id)
            if state is None:
                record = rows.get(instance_id)
                log.info(
                    "messages.dropped",
                    instance_id=instance_id,
                    count=len(group),
                    reason=f"instance is {record.status.value}" if record else "unknown instance",
                )
                continue
            self._run_episode(state, group, now, batch)
        return batch

    def _rehydrate(self, row: store.InstanceRecord, history: list[StoredEvent]) -> InstanceState:
        orchestrator = self._functions.orchestrators.get(row.name)
        executor = None
        if orchestrator is not None:
            executor = OrchestrationExecutor(orchestrator, row.instance_id)
            executor.replay(stored.event for stored in history)
        return InstanceState(
            instance_id=row.instance_id,
            name=row.name,
            execution_id=row.execution_id,
            correlation_id=row.correlation_id,
            last_seq=row.last_seq,
            executor=executor,
            raised_message_ids={
                stored.message_id
                for stored in history
                if stored.message_id is not None and isinstance(stored.event, EventRaised)
            },
            parent=next(
                (s.event.parent for s in history if isinstance(s.event, ExecutionStarted)), None
            ),
        )

    def _run_episode(
        self,
        state: InstanceState,
        messages: list[OrchestratorMessage],
        now: datetime,
        batch: _Batch,
    ) -> None:
        bound = log.bind(instance_id=state.instance_id, correlation_id=state.correlation_id)
        started = OrchestratorStarted(timestamp=now)
        episode: list[tuple[HistoryEvent, uuid.UUID | None]] = []
        for message in messages:
            reason = self._drop_reason(state, message)
            if reason is not None:
                bound.debug(
                    "message.dropped",
                    message_id=str(message.envelope.message_id),
                    type=message.envelope.type,
                    reason=reason,
                )
                continue
            # Applied one by one, so each is checked against the state the ones before it
            # left behind (a second copy of a result in the same batch is refused).
            if not episode:
                episode.append((started, None))
                if state.executor is not None:
                    state.executor.apply_new(started)
            if state.executor is not None:
                state.executor.apply_new(message.body)
            if isinstance(message.body, EventRaised):
                state.raised_message_ids.add(message.envelope.message_id)
            if isinstance(message.body, ExecutionStarted):
                state.parent = message.body.parent
            episode.append((message.body, message.envelope.message_id))
        if not episode:
            return

        inbound = [event for event, _ in episode[1:]]
        decision = (
            state.executor.decide()
            if state.executor is not None
            else self._not_registered(state, inbound, now)
        )
        for event, message_id in [*episode, *((e, None) for e in decision.new_events)]:
            state.last_seq += 1
            batch.events.append(
                store.NewEvent(
                    state.instance_id, state.last_seq, state.execution_id, event, message_id
                )
            )
        batch.updates.append(
            store.InstanceUpdate(
                instance_id=state.instance_id,
                status=decision.status,
                custom_status=decision.custom_status,
                output=decision.output,
                failure=decision.failure,
                last_seq=state.last_seq,
                updated_at=now,
                completed_at=now if decision.status.is_terminal else None,
            )
        )
        self._record_timers(state, inbound, decision, batch)
        batch.messages += messages_for(self._topology, state, decision, now)
        self._record_followups(state, decision, now, batch)
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

    def _record_followups(
        self, state: InstanceState, decision: Decision, now: datetime, batch: _Batch
    ) -> None:
        batch.children += [
            ChildStart(
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
            )
            for event in decision.new_events
            if isinstance(event, SubOrchestrationInstanceCreated)
        ]
        if state.parent is not None:
            answer = parent_answer(
                self._topology, state.parent, state.correlation_id, decision, now
            )
            if answer is not None:
                batch.messages.append(answer)
        if decision.status is OrchestrationStatus.TERMINATED:
            batch.terminated.append(state.instance_id)
        if decision.continue_as_new is not None:
            self._continue_as_new(state, decision.continue_as_new, now, batch)

    def _continue_as_new(
        self, state: InstanceState, request: ContinueAsNewRequest, now: datetime, batch: _Batch
    ) -> None:
        """Move the instance to its next execution: carried events become its first events,
        and an ExecutionStarted through the partition queue starts it."""
        first_seq = state.last_seq + 1
        carried = [
            EventRaised(timestamp=now, name=name, input=data)
            for name, data in request.carried_events
        ]
        opening: list[HistoryEvent] = [OrchestratorStarted(timestamp=now), *carried]
        for event in opening if carried else []:
            state.last_seq += 1
            batch.events.append(
                store.NewEvent(state.instance_id, state.last_seq, request.new_execution_id, event)
            )
        batch.updates[-1] = replace(batch.updates[-1], last_seq=state.last_seq)
        batch.continuations.append(
            Continuation(state.instance_id, request.new_execution_id, request.input, first_seq)
        )
        batch.timers_closed += []  # the old execution's timers go with it (see below)
        batch.messages.append(
            start_message(
                self._topology,
                state.instance_id,
                state.name,
                request.new_execution_id,
                request.input,
                state.correlation_id,
                state.parent,
                now,
            )
        )

    @staticmethod
    def _record_timers(
        state: InstanceState, inbound: list[HistoryEvent], decision: Decision, batch: _Batch
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

    @staticmethod
    def _drop_reason(state: InstanceState, message: OrchestratorMessage) -> str | None:
        envelope, event = message.envelope, message.body
        if envelope.execution_id is not None and envelope.execution_id != state.execution_id:
            return f"for execution {envelope.execution_id}, current is {state.execution_id}"
        if isinstance(event, EventRaised) and envelope.message_id in state.raised_message_ids:
            return "duplicate event"
        if state.executor is not None and not state.executor.accepts(event):
            return "duplicate or no longer expected"
        return None

    def _not_registered(
        self, state: InstanceState, inbound: list[HistoryEvent], now: datetime
    ) -> Decision:
        """This deployment lacks the instance's orchestrator: it can only end the instance."""
        terminate = next((e for e in inbound if isinstance(e, ExecutionTerminated)), None)
        if terminate is not None:
            return Decision(status=OrchestrationStatus.TERMINATED, output=terminate.reason)
        failure = FailureDetails(
            error_type="OrchestratorNotFound",
            message=(
                f"orchestrator {state.name!r} is not registered in this deployment; "
                f"registered: {sorted(self._functions.orchestrators)}"
            ),
            is_non_retriable=True,
        )
        return Decision(
            new_events=[ExecutionFailed(timestamp=now, failure=failure)],
            status=OrchestrationStatus.FAILED,
            failure=failure,
        )


def _first_start(group: list[OrchestratorMessage]) -> list[OrchestratorMessage]:
    return [m for m in group if isinstance(m.body, ExecutionStarted)][:1]


def _new_instance(message: OrchestratorMessage, now: datetime) -> NewInstance:
    start = message.body
    assert isinstance(start, ExecutionStarted)
    return NewInstance(
        instance_id=message.envelope.instance_id,
        name=start.name,
        execution_id=start.execution_id,
        correlation_id=message.envelope.correlation_id,
        input=start.input,
        created_at=now,
        parent_instance_id=start.parent.instance_id if start.parent else None,
    )
