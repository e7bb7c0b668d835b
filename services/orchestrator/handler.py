"""The handler transaction: the one place the orchestrator does I/O around the engine.

For a batch of messages from one partition, in one transaction:
reuse cached state, or lock and load the instances → drop duplicates → run the engine →
append events at the expected seq, update the read model where its seq is still the expected
one, write the outbox → commit. A batch of cached instances that only appends events and
sends messages is one statement (ADR 0011). The caller then publishes the outbox and
acknowledges the messages. A failure anywhere before the commit loses nothing: the messages
are redelivered, duplicates are dropped.

Local activities that are plain functions run inside the batch, before its commit: their
results step their instances again, and the whole chain is written once (ADR 14).

An answer for a call an instance never made is not recorded but returned to the caller to
dead-letter, and an instance whose write Postgres refuses for one of its values is failed
(``services.orchestrator.unstorable``), not retried forever (ADR 21).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
    Topology,
    is_entity_id,
)
from durable.app import FunctionApp
from durable.store.batch import BatchWrite, write_batch
from durable.store.database import Connection, in_transaction
from durable.store.errors import UNSTORABLE_ERRORS, AmbiguousCommitError, is_connection_failure
from durable.store.leases import Lease
from durable.store.outbox import OutboxRecord, insert_outbox_txn
from engine import Decision
from engine.versions import VersionPolicy
from services.orchestrator.cache import InstanceCache, InstanceState
from services.orchestrator.decisions import Deciding, DecisionSlot
from services.orchestrator.dispatch import batched_tasks
from services.orchestrator.entities import EntityRunner
from services.orchestrator.entity_state import EntityState
from services.orchestrator.episode import Batch, EpisodeRecorder, RefusedMessage
from services.orchestrator.followups import (
    move_executions_txn,
    start_children_txn,
    terminate_children_txn,
)
from services.orchestrator.loading import load_instances_txn
from services.orchestrator.local import LocalActivities
from services.orchestrator.refusals import refusal, refuse
from services.orchestrator.traces import end_episode_spans, trace_episode
from services.orchestrator.turns import NO_TURNS, Turn, Turns
from services.orchestrator.unstorable import fail_unstorable
from services.orchestrator.versions import VersionGate

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Committed:
    """What a committed batch leaves to its caller: outbox rows to publish, fires of timers
    due within the cascade's early margin, to hold until due (ADR 12), and the messages it
    refused, to dead-letter (ADR 21)."""

    records: list[OutboxRecord]
    held_fires: list[OrchestratorMessage]
    refused: list[RefusedMessage] = field(default_factory=list)


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        local: LocalActivities | None = None,
        inline_seconds: float = 0.0,
        activity_batch: int = 1,
        versions: VersionGate | None = None,
        turns: Turns = NO_TURNS,
        decisions: DecisionSlot | None = None,
    ) -> None:
        self._pool = pool
        self._functions = functions
        self._cache = cache
        self._topology = topology
        self._clock = clock
        self._keep_continued_history = keep_continued_history
        self._recorder = EpisodeRecorder(topology)
        self._entities = EntityRunner(functions, topology)
        self._local = local
        self._inline_seconds = inline_seconds
        self._activity_batch = activity_batch
        self._versions = versions or VersionGate(VersionPolicy(), topology, 60)
        self._turns = turns
        self._decisions = decisions or DecisionSlot()

    async def handle(
        self,
        messages: Sequence[OrchestratorMessage],
        partition: int | None = None,
        lease: Lease | None = None,
        *,
        express: bool = False,
    ) -> Committed:
        """Process ``messages`` (of ``partition``, which their outbox rows record) in one
        transaction; return the outbox rows to publish, the timer fires to hold and the
        messages to dead-letter. With ``lease``, nothing is written unless the process still
        holds the partition at the lease's epoch (``LeaseLostError``).

        The batch decides when the process's decision slot is its (ADR 40), and reads the
        clock then; an ``express`` batch (raised events, ADR 39) does not wait for it.

        Raises ``ConcurrencyError`` when another writer appended to one of the instances
        first, and ``AmbiguousCommitError`` when the commit's outcome is unknown. Either way
        nothing of this batch is cached, and the messages must not be acknowledged.
        """
        groups: dict[str, list[OrchestratorMessage]] = {}
        for message in messages:
            groups.setdefault(message.envelope.instance_id, []).append(message)
        batch = Batch(lease=lease)
        # Work in progress: every instance in memory, none to load (ADR 40).
        ongoing = all(self._cache.peek(instance_id) is not None for instance_id in groups)
        try:
            async with self._decisions.take(ongoing=ongoing, express=express) as decision:
                turn = self._turns.turn(partition, on_pause=decision.step_aside)
                records = await self._decide_and_write(
                    batch, groups, self._clock(), partition, turn, decision
                )
        except UNSTORABLE_ERRORS as error:
            end_episode_spans(batch, error)
            self._evict(groups)
            return await self._unstorable(groups, batch, error, partition)
        except BaseException as error:
            end_episode_spans(batch, error)
            self._evict(groups)
            raise
        batch.tally.committed(len(messages))
        end_episode_spans(batch)
        for state in batch.states:
            self._cache.put(state)
        for entity in batch.entities:
            self._cache.put(entity)
        self._evict(batch.finished)
        return Committed(records, batch.held_fires, batch.refused)

    def runs(self, instance_id: str) -> bool:
        """Whether this process has ``instance_id`` in its cache, started: a raised event for
        it can overtake the messages that arrived before it (ADR 39), since its start cannot
        be one of them."""
        state = self._cache.peek(instance_id)
        return isinstance(state, InstanceState) and state.started

    def _evict(self, instance_ids: Iterable[str]) -> None:
        for instance_id in instance_ids:
            self._cache.evict(instance_id)

    async def _unstorable(
        self,
        groups: dict[str, list[OrchestratorMessage]],
        batch: Batch,
        error: asyncpg.PostgresError,
        partition: int | None,
    ) -> Committed:
        """Postgres refused a value ``batch`` writes: fail the instance it belongs to, and
        write the others as they are. One statement does not say whose value it was, so a
        batch of several instances is written again one instance at a time."""
        if len(groups) > 1:
            parts = [await self.handle(group, partition, batch.lease) for group in groups.values()]
            return Committed(
                [record for part in parts for record in part.records],
                [fire for part in parts for fire in part.held_fires],
                [refused for part in parts for refused in part.refused],
            )
        [group] = groups.values()

        async def write_txn(
            connection: Connection, failing: Batch, now: datetime
        ) -> list[OutboxRecord]:
            return await self._write_all_txn(connection, failing, now, partition)

        records, refused = await fail_unstorable(
            self._pool, self._recorder, group, batch, error, self._clock(), write_txn
        )
        return Committed(records, [], refused)

    async def _decide_and_write(
        self,
        batch: Batch,
        groups: dict[str, list[OrchestratorMessage]],
        now: datetime,
        partition: int | None,
        turn: Turn,
        decision: Deciding,
    ) -> list[OutboxRecord]:
        """Cached instances are decided without reading anything (their rows are checked when
        written); the others are locked and loaded in the transaction. Between instances, the
        batch gives the event loop up when it has held it for a slice (``turn``, ADR 39). The
        batch gives up the ``decision`` slot once decided, before local activities run inline
        and before it writes (ADR 40).

        A batch of cached instances that writes only events, rows and messages (most steps
        of a running instance) is written by one statement, which is its own transaction.
        """
        uncached: dict[str, list[OrchestratorMessage]] = {}
        for instance_id, group in groups.items():
            await turn.pause()
            state = self._cache.get(instance_id)
            if state is None:
                uncached[instance_id] = group
            elif isinstance(state, EntityState):
                self._entities.run(state, group, now, batch)
            else:
                self._run_episode(state, group, now, batch)
        if not uncached:
            decision.done()
            await self._run_inline(batch)
            if batch.rows_only:
                self._batch_tasks(batch)
                return await self._write_statement(batch, partition)

        async def write(connection: Connection) -> list[OutboxRecord]:
            if uncached:
                await self._decide_txn(connection, uncached, now, batch, turn)
                decision.done()
                # Inside the transaction: the instances just loaded stay locked meanwhile.
                await self._run_inline(batch)
            decision.done()
            return await self._write_all_txn(connection, batch, now, partition)

        return await in_transaction(self._pool, write)

    async def _write_statement(self, batch: Batch, partition: int | None) -> list[OutboxRecord]:
        """Write a batch of cached instances that has only rows to write: one statement."""
        batch.tally.writing()
        async with self._pool.acquire() as connection:
            try:
                return await write_batch(connection, batch.write(partition))
            except Exception as error:
                if is_connection_failure(error):
                    raise AmbiguousCommitError(str(error)) from error
                raise

    async def _run_inline(self, batch: Batch) -> None:
        """Run the local activities the batch schedules, feed their results back to their
        instances, and repeat while the time allowed lasts; what is left is committed with
        its task messages and runs after the commit (ADR 13, 14).

        Nothing of this is written before the batch commits: a crash makes the batch's
        messages come back, and the activities run again (at least once, as any activity).
        """
        if self._local is None or self._inline_seconds <= 0:
            return
        deadline = time.monotonic() + self._inline_seconds
        # Only instances the batch stepped can have tasks in it; later rounds add none.
        live = {state.instance_id: state for state in batch.states}
        while time.monotonic() < deadline:
            batch.messages, tasks = self._local.take_inline(batch.messages, live)
            if not tasks:
                return
            results: dict[str, list[OrchestratorMessage]] = {}
            for result in await self._local.run_inline(tasks):
                results.setdefault(result.envelope.instance_id, []).append(result)
            now = self._clock()
            for instance_id, group in results.items():
                self._run_episode(live[instance_id], group, now, batch)

    def _batch_tasks(self, batch: Batch) -> None:
        """Carry the batch's activity tasks in batches, one per activity (ADR 17)."""
        local = self._local
        batch.messages = batched_tasks(
            batch.messages,
            self._topology,
            self._activity_batch,
            local.is_local if local is not None else lambda _: False,
        )

    async def _write_all_txn(
        self, connection: Connection, batch: Batch, now: datetime, partition: int | None
    ) -> list[OutboxRecord]:
        """Write ``batch`` (its tasks carried together) and its outbox rows."""
        batch.tally.writing()
        await self._write_txn(connection, batch, now)
        self._batch_tasks(batch)
        return await insert_outbox_txn(connection, batch.messages, partition)

    async def _write_txn(self, connection: Connection, batch: Batch, now: datetime) -> None:
        # The outbox rows follow, once the followups have added theirs.
        await write_batch(
            connection,
            BatchWrite(
                events=batch.events,
                updates=batch.updates,
                expected_seqs=batch.expected_seqs,
                timers=batch.timer_changes,
                lease=batch.lease,
            ),
        )
        await move_executions_txn(connection, batch.continuations, self._keep_continued_history)
        batch.messages += await start_children_txn(connection, self._topology, batch.children, now)
        batch.messages += await terminate_children_txn(
            connection, self._topology, batch.terminated, "the parent was terminated", now
        )

    async def _decide_txn(
        self,
        connection: Connection,
        groups: dict[str, list[OrchestratorMessage]],
        now: datetime,
        batch: Batch,
        turn: Turn,
    ) -> None:
        """Lock and load the instances of ``groups`` (none of them cached) and decide them;
        the entities among them go to the entity runner (ADR 38), the orchestrations to
        ``load_instances_txn``."""
        entities = {i: g for i, g in groups.items() if is_entity_id(i)}
        if entities:
            await self._entities.decide_txn(connection, entities, now, batch)
            groups = {i: g for i, g in groups.items() if i not in entities}
        states = await load_instances_txn(
            connection,
            self._functions,
            self._recorder,
            groups,
            now,
            batch,
            self._versions.policy.accepts,
            turn.pause,
        )
        for instance_id, group in groups.items():
            state = states.get(instance_id)
            if state is not None:
                await turn.pause()
                self._run_episode(state, group, now, batch)

    def _run_episode(
        self,
        state: InstanceState,
        messages: list[OrchestratorMessage],
        now: datetime,
        batch: Batch,
    ) -> None:
        began = time.perf_counter()
        admitted = self._versions.admit(state, messages, now, batch)
        if admitted is None:
            return  # left waiting for a process that runs its version
        messages, failure = admitted
        bound = log.bind(instance_id=state.instance_id, correlation_id=state.correlation_id)
        started = OrchestratorStarted(timestamp=now)
        episode: list[tuple[HistoryEvent, uuid.UUID | None]] = []
        for message in messages:
            refused = refusal(state, message)
            if refused is not None:
                refuse(bound, state, message, refused, batch)
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
                state.parent, state.started = message.body.parent, True
            episode.append((message.body, message.envelope.message_id))
        if not episode:
            if state.executor is None or not state.executor.ended_unrecorded:
                return
            # Rebuilding the instance ended it (a history mismatch): record that now, rather
            # than refusing every message of an instance that looks Running.
            episode.append((started, None))
            bound.warning("orchestration.ended_on_replay", name=state.name)

        inbound = [event for event, _ in episode[1:]]
        decision = (
            state.executor.decide()
            if state.executor is not None
            else self._not_registered(state, inbound, now, failure)
        )
        batch.tally.episode(state.name, time.perf_counter() - began)
        trace_episode(state, episode, decision, batch)
        self._recorder.append_events(state, episode, batch)
        self._recorder.record(state, inbound, decision, now, batch)

    def _not_registered(
        self,
        state: InstanceState,
        inbound: list[HistoryEvent],
        now: datetime,
        failure: FailureDetails | None = None,
    ) -> Decision:
        """This deployment lacks the instance's orchestrator, or may not run its version
        (``failure`` says so): it can only end the instance."""
        terminate = next((e for e in inbound if isinstance(e, ExecutionTerminated)), None)
        if terminate is not None:
            return Decision(status=OrchestrationStatus.TERMINATED, output=terminate.reason)
        failure = failure or FailureDetails(
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
