"""Prometheus metrics of the three services, on prometheus_client's default registry.

Every metric is a module-level object here, named by Prometheus' conventions (``durable_``,
base units, ``_total`` on counters) and labelled only with bounded values: orchestrator and
activity names (the registered functions), outcomes, queues, partition numbers; never an
instance id. ``docs/guide/observability.md`` lists them; ADR 31 says why they are counted
where they are.

Nothing that runs before a commit is counted directly: an orchestrator batch collects its
counts in a ``BatchTally`` and applies them once it has committed, so a batch that fails and is
retried, split or redelivered counts once, when it is written. Activity executions are the
exception on purpose: each run of the function is an execution, a redelivered task's too.

The orchestrator may run as several processes in prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``): so no custom collectors, and every gauge has a
``multiprocess_mode`` whose sum or maximum over the processes means something. Gauges of
what lives in the database (the outbox) are set periodically by the sweepers that read it.

Importing this module has the SDK tell these counters of its broker events
(``durable.broker_events``).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from contracts import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.broker_events import BrokerObserver, observe_broker

# Buckets, in seconds or in messages, sized to what was measured: an episode of a cached
# instance takes tens of microseconds, a batch commit a millisecond or two, a timer is
# released on time to within a few milliseconds unless the cascade or the sweeper is involved.
_ENGINE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
_ACTIVITY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0)
_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- orchestrations (the orchestrator, counted when the batch that records them commits) ---

ORCHESTRATIONS_STARTED = Counter(
    "durable_orchestrations_started",
    "Executions started: ExecutionStarted recorded (a continue-as-new starts one too).",
    ["orchestrator"],
)
ORCHESTRATIONS_ENDED = Counter(
    "durable_orchestrations_ended",
    "Orchestrations ended, by outcome: completed, failed or terminated.",
    ["orchestrator", "outcome"],
)
ORCHESTRATIONS_CONTINUED_AS_NEW = Counter(
    "durable_orchestrations_continued_as_new",
    "Executions that continued as new (the instance goes on in a new execution).",
    ["orchestrator"],
)
EVENTS_RAISED = Counter(
    "durable_events_raised",
    "External events recorded by the instances of an orchestrator.",
    ["orchestrator"],
)
EPISODE_SECONDS = Histogram(
    "durable_orchestrator_episode_duration_seconds",
    "Time the engine took to run one episode of an instance (replay excluded); _count: episodes.",
    ["orchestrator"],
    buckets=_ENGINE_BUCKETS,
)
BATCH_MESSAGES = Histogram(
    "durable_orchestrator_batch_messages",
    "Messages in a committed batch of a partition.",
    buckets=_BATCH_BUCKETS,
)
BATCH_COMMIT_SECONDS = Histogram(
    "durable_orchestrator_batch_commit_seconds",
    "Time from a committed batch's first write to its commit.",
    buckets=_COMMIT_BUCKETS,
)
BATCH_FAILURES = Counter(
    "durable_orchestrator_batch_failures",
    "Batches not committed, by reason: conflict, ambiguous_commit, lease_lost, error.",
    ["reason"],
)

# --- activities ---

ACTIVITIES_SCHEDULED = Counter(
    "durable_activities_scheduled",
    "Activity calls recorded (TaskScheduled), retries included.",
    ["activity"],
)
ACTIVITY_RETRIES = Counter(
    "durable_activity_retries",
    "Activity calls recorded as a retry under a retry policy (attempt 2 and later).",
    ["activity"],
)
ACTIVITY_SECONDS = Histogram(
    "durable_activity_duration_seconds",
    "Activity executions and their time, by outcome: completed, failed, timed_out; each run "
    "counts, a redelivered task's too. _count: executions.",
    ["activity", "outcome"],
    buckets=_ACTIVITY_BUCKETS,
)

# --- timers ---

TIMERS_SCHEDULED = Counter("durable_timers_scheduled", "Durable timers recorded (TimerCreated).")
TIMERS_FIRED = Counter("durable_timers_fired", "Timer fires recorded (TimerFired).")
TIMER_LATENESS_SECONDS = Histogram(
    "durable_timer_lateness_seconds",
    "How long after its due time a timer's fire was recorded.",
    buckets=_LATENESS_BUCKETS,
)
TIMERS_SWEPT = Counter(
    "durable_timers_swept", "Overdue timers the sweeper fired because the cascade lost them."
)

# --- the outbox, dead letters ---

OUTBOX_ROWS = Gauge(
    "durable_outbox_rows",
    "Outbox rows waiting to be published, of the partitions this process holds.",
    multiprocess_mode="livesum",
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "durable_outbox_oldest_age_seconds",
    "Age of the oldest outbox row of the partitions this process holds (0: none).",
    multiprocess_mode="livemax",
)
OUTBOX_SWEPT = Counter(
    "durable_outbox_swept", "Outbox rows the sweeper published (left behind by their writer)."
)
DEAD_LETTERED = Counter(
    "durable_dead_lettered_messages",
    "Messages this process moved to a dead-letter queue, by the queue they came from.",
    ["queue"],
)

# --- the instance cache, partitions, leases ---

CACHE_INSTANCES = Gauge(
    "durable_instance_cache_instances",
    "Instances in the orchestrator's cache.",
    multiprocess_mode="livesum",
)
CACHE_HITS = Counter("durable_instance_cache_hits", "Cache lookups that found the instance.")
CACHE_MISSES = Counter(
    "durable_instance_cache_misses", "Cache lookups that did not (the instance is replayed)."
)
CACHE_EVICTIONS = Counter(
    "durable_instance_cache_evictions",
    "Instances evicted from the cache, by reason: capacity, idle, partition (released).",
    ["reason"],
)
PARTITIONS_HELD = Gauge(
    "durable_orchestrator_partitions_held",
    "Partitions this process holds a lease on.",
    multiprocess_mode="livesum",
)
LEASES_LOST = Counter(
    "durable_lease_lost", "Partition leases lost (taken over, or not renewed).", ["partition"]
)
LEASE_ROUNDS_SLOW = Counter(
    "durable_lease_rounds_slow", "Lease rounds that took longer than the round's interval."
)
LEASE_ROUNDS_FAILED = Counter("durable_lease_rounds_failed", "Lease rounds that failed.")
PARTITION_STOPS_SLOW = Counter(
    "durable_partition_stops_slow",
    "Stops of a lost partition's consumer that took longer than a lease.",
    ["partition"],
)

# --- connections ---

STORE_UNREACHABLE = Counter(
    "durable_store_unreachable",
    "Times a batch found the database unreachable (once per batch and outage).",
)
BROKER_NODES_UNREACHABLE = Counter(
    "durable_broker_node_unreachable", "Connection attempts a broker node did not answer."
)
PUBLISHER_RECONNECTS = Counter(
    "durable_publisher_reconnects", "Publishes that found their connection gone and reconnected."
)

# --- the client service ---

CLIENT_STARTS = Counter(
    "durable_client_orchestrations_started",
    "Orchestrations the client service started, by how it was asked: http or broker.",
    ["orchestrator", "via"],
)
CLIENT_EVENTS_RAISED = Counter(
    "durable_client_events_raised",
    "Events the client service sent to instances, by how it was asked: http or broker.",
    ["via"],
)


@dataclass
class BatchTally:
    """What one orchestrator batch counts, applied by ``committed`` once it has committed.

    A batch that fails before its commit is dropped with its tally: when it is retried (a
    conflict), split, or its messages come back, the batch that commits them counts them.
    """

    _counts: Tally[tuple[Counter, tuple[str, ...]]] = field(default_factory=Tally)
    _episodes: list[tuple[str, float]] = field(default_factory=list)
    _lateness: list[float] = field(default_factory=list)
    _writing_since: float | None = None

    def episode(self, orchestrator: str, seconds: float) -> None:
        """An episode of an ``orchestrator`` instance ran in ``seconds``."""
        self._episodes.append((orchestrator, seconds))

    def recorded(
        self,
        orchestrator: str,
        inbound: Iterable[HistoryEvent],
        new_events: Iterable[HistoryEvent],
        status: OrchestrationStatus,
        *,
        continued_as_new: bool,
        now: datetime,
    ) -> None:
        """An episode of an ``orchestrator`` instance records the ``inbound`` events and the
        decision's ``new_events``, leaving it in ``status``; ``now`` is the episode's time."""
        for event in inbound:
            match event:
                case ExecutionStarted():
                    self._count(ORCHESTRATIONS_STARTED, orchestrator)
                case EventRaised():
                    self._count(EVENTS_RAISED, orchestrator)
                case TimerFired(fire_at=fire_at):
                    self._count(TIMERS_FIRED)
                    self._lateness.append(max((now - fire_at).total_seconds(), 0.0))
        for event in new_events:
            match event:
                case TaskScheduled(name=activity, attempt=attempt):
                    self._count(ACTIVITIES_SCHEDULED, activity)
                    if attempt > 1:
                        self._count(ACTIVITY_RETRIES, activity)
                case TimerCreated():
                    self._count(TIMERS_SCHEDULED)
        if status.is_terminal:
            self._count(ORCHESTRATIONS_ENDED, orchestrator, status.value.lower())
        elif continued_as_new:
            self._count(ORCHESTRATIONS_CONTINUED_AS_NEW, orchestrator)

    def writing(self) -> None:
        """The batch starts writing: its commit time runs from here."""
        if self._writing_since is None:
            self._writing_since = time.perf_counter()

    def committed(self, messages: int) -> None:
        """The batch of ``messages`` committed: count everything it recorded."""
        BATCH_MESSAGES.observe(messages)
        if self._writing_since is not None:
            BATCH_COMMIT_SECONDS.observe(time.perf_counter() - self._writing_since)
        for (counter, labels), amount in self._counts.items():
            (counter.labels(*labels) if labels else counter).inc(amount)
        for orchestrator, seconds in self._episodes:
            EPISODE_SECONDS.labels(orchestrator).observe(seconds)
        for lateness in self._lateness:
            TIMER_LATENESS_SECONDS.observe(lateness)

    def _count(self, counter: Counter, *labels: str) -> None:
        self._counts[counter, labels] += 1


def activity_executed(activity: str, seconds: float, outcome: object) -> None:
    """An execution of ``activity`` ended after ``seconds`` with ``outcome``: its output, or
    the exception it raised."""
    if not isinstance(outcome, Exception):
        label = "completed"
    elif isinstance(outcome, TimeoutError):
        # ``ActivityTimeoutError``; an activity's own TimeoutError is a time-out too.
        label = "timed_out"
    else:
        label = "failed"
    ACTIVITY_SECONDS.labels(activity, label).observe(seconds)


def outbox_backlog(rows: int, oldest_age_seconds: float) -> None:
    """The outbox rows this process's partitions have waiting, and the oldest one's age."""
    OUTBOX_ROWS.set(rows)
    OUTBOX_OLDEST_AGE_SECONDS.set(oldest_age_seconds)


class _BrokerCounters(BrokerObserver):
    def publisher_reconnecting(self) -> None:
        PUBLISHER_RECONNECTS.inc()

    def node_unreachable(self) -> None:
        BROKER_NODES_UNREACHABLE.inc()

    def dead_lettered(self, queue: str, count: int) -> None:
        DEAD_LETTERED.labels(queue).inc(count)


observe_broker(_BrokerCounters())
