"""The instance cache: live executors of running instances, so a step needs no replay.

Bounded by count (least recently used goes first) and by idleness: an instance that has not
been touched for ``idle_seconds`` (typically one waiting for a person) is evicted, i.e.
dehydrated; its next message rehydrates it from the event store.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from contracts import EventRaised, ExecutionStarted, ParentInstance
from durable.app import FunctionApp
from durable.store.events import StoredEvent
from engine import OrchestrationExecutor
from services.common import metrics
from services.orchestrator.entity_state import EntityState

if TYPE_CHECKING:  # the store's module imports the cache's, through the timers
    from durable.store.instances import InstanceRecord


@dataclass
class InstanceState:
    """What the orchestrator keeps of one running instance between episodes.

    Attributes:
        last_seq: the seq of the instance's last stored event; the cache entry is only used
            while the row in Postgres still says the same.
        executor: the live orchestrator code, or ``None`` when this deployment does not have
            the instance's orchestrator.
        raised_message_ids: message ids of the ``EventRaised`` events in the current
            execution, to drop a redelivered event.
        parent: where to report the outcome, when the instance is a sub-orchestration.
        started: its execution has an ``ExecutionStarted`` (recorded, or in this episode).
        version: the app version its execution started under.
        admitted: the version gate let it run here (``services.orchestrator.versions``);
            only admitted instances are cached.
        traceparent: the trace its episodes join (its ``ExecutionStarted``'s), when traced.
        episode_traceparent: the current episode's span, which the tasks and children it
            schedules name as their parent (ADR 32); None while tracing is off.
    """

    instance_id: str
    name: str
    execution_id: str
    correlation_id: str
    last_seq: int
    executor: OrchestrationExecutor | None
    raised_message_ids: set[uuid.UUID] = field(default_factory=set)
    parent: ParentInstance | None = None
    started: bool = False
    version: str | None = None
    admitted: bool = False
    traceparent: str | None = None
    episode_traceparent: str | None = None

    @classmethod
    def of(
        cls,
        row: InstanceRecord,
        history: list[StoredEvent],
        executor: OrchestrationExecutor | None,
    ) -> InstanceState:
        """The state of the instance whose locked row and current execution's events these
        are, driven by ``executor``."""
        start = started_event(history)
        return cls(
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
            parent=start.parent if start is not None else None,
            started=start is not None,
            version=start.version if start is not None else None,
            traceparent=start.traceparent if start is not None else None,
        )


CachedState: TypeAlias = InstanceState | EntityState
"""What the cache holds: an orchestration instance's state or an entity's."""


def started_event(history: list[StoredEvent]) -> ExecutionStarted | None:
    return next((s.event for s in history if isinstance(s.event, ExecutionStarted)), None)


def rehydrate(
    functions: FunctionApp,
    row: InstanceRecord,
    history: list[StoredEvent],
    runs_version: Callable[[str | None], bool] = lambda _: True,
) -> InstanceState:
    """Rebuild an instance's state from its locked row and its current execution's events.

    An instance whose version this process does not run (``runs_version``) is not
    replayed: the code it would replay through is not the code it started with."""
    orchestrator = functions.orchestrators.get(row.name)
    start = started_event(history)
    executor = None
    if orchestrator is not None and (start is None or runs_version(start.version)):
        executor = OrchestrationExecutor(orchestrator, row.instance_id)
        executor.replay(stored.event for stored in history)
    return InstanceState.of(row, history, executor)


class InstanceCache:
    """Cached orchestration instances and entities (``EntityState``), by instance id."""

    def __init__(
        self,
        max_instances: int = 10_000,
        idle_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_instances = max_instances
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[CachedState, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, instance_id: str) -> CachedState | None:
        entry = self._entries.get(instance_id)
        if entry is None:
            metrics.CACHE_MISSES.inc()
            return None
        metrics.CACHE_HITS.inc()
        # A read is a use: refresh the time too, so the LRU order and the idle times agree
        # (evict_idle relies on the oldest entry being at the front).
        self._entries[instance_id] = (entry[0], self._clock())
        self._entries.move_to_end(instance_id)
        return entry[0]

    def peek(self, instance_id: str) -> CachedState | None:
        """The cached state of ``instance_id``, if any, without counting it as a use."""
        entry = self._entries.get(instance_id)
        return None if entry is None else entry[0]

    def put(self, state: CachedState) -> None:
        if self._max_instances <= 0:
            return
        self._entries[state.instance_id] = (state, self._clock())
        self._entries.move_to_end(state.instance_id)
        while len(self._entries) > self._max_instances:
            self._entries.popitem(last=False)
            metrics.CACHE_EVICTIONS.labels("capacity").inc()
        metrics.CACHE_INSTANCES.set(len(self._entries))

    def evict(self, instance_id: str) -> None:
        # Not counted as an eviction: the instance ended, or its batch failed.
        if self._entries.pop(instance_id, None) is not None:
            metrics.CACHE_INSTANCES.set(len(self._entries))

    def evict_idle(self) -> int:
        """Drop entries idle for longer than ``idle_seconds``; return how many went."""
        deadline = self._clock() - self._idle_seconds
        evicted = 0
        # Entries are in least-recently-used order, so the idle ones are at the front.
        while self._entries:
            instance_id, (_, last_used) = next(iter(self._entries.items()))
            if last_used > deadline:
                break
            del self._entries[instance_id]
            evicted += 1
        metrics.CACHE_EVICTIONS.labels("idle").inc(evicted)
        metrics.CACHE_INSTANCES.set(len(self._entries))
        return evicted

    def evict_where(self, belongs: Callable[[str], bool]) -> int:
        """Drop the entries whose instance id ``belongs`` (a partition this process no longer
        holds: the next owner rebuilds them from the store); return how many went."""
        gone = [instance_id for instance_id in self._entries if belongs(instance_id)]
        for instance_id in gone:
            del self._entries[instance_id]
        metrics.CACHE_EVICTIONS.labels("partition").inc(len(gone))
        metrics.CACHE_INSTANCES.set(len(self._entries))
        return len(gone)
