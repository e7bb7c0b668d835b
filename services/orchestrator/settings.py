"""Orchestrator service settings (``DF_*`` environment variables)."""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from contracts.topology import MAX_DELAY_SECONDS
from durable.settings import CommonSettings
from durable.versioning import MAX_VERSION_LENGTH
from engine.versions import VersionFailure, VersionMatch, VersionPolicy
from services.common.observability_port import port_or_off


class OrchestratorSettings(CommonSettings):
    """Attributes:
    batch_size: most messages handled in one transaction.
    prefetch: unacknowledged deliveries per partition (bounds the buffered batch).
    cache_instances: most instances kept live in memory.
    cache_idle_seconds: an instance untouched this long is evicted (dehydrated).
    pool_size: Postgres connections.
    outbox_grace_seconds: age after which the sweeper publishes an outbox row left behind.
    shutdown_seconds: how long SIGTERM waits for batches in flight.
    timer_grace_seconds: how overdue a timer must be before the sweeper fires it (the most a
        timer whose delayed message the broker lost can be late).
    local_activity_threads: threads for the plain (not ``async def``) local activities this
        process runs itself (``@app.activity(local=True)``).
    local_inline_seconds: how long a batch may go on running the plain-function local
        activities it schedules before its commit, stepping their instances with the results
        (ADR 14); what is left then runs after the commit. 0: every local activity runs
        after the commit of the step that schedules it.
    orchestrator_processes: processes sharing this service's partitions out among them,
        each on a core of its own (``services.orchestrator.processes``, ADR 15); at most one
        per partition; 0: one per CPU core it may run on, at most 4. ``pool_size`` is the
        service's: each process gets its share.
    activity_batch: most activity tasks carried by one message: the tasks a batch schedules
        for one activity travel together (ADR 17); 1: each in a message of its own (for
        activity workers that do not read batches).
    lease_seconds: how long a partition lease lasts unless renewed (ADR 27): the longest a
        crashed process's partitions wait for another member, and a third of it is how often
        members heartbeat, renew and even out their shares.
    member_id: this process's id among the deployment's members (default: host, pid and a
        random suffix); unique per process.
    keep_continued_history: keep the events of executions that continued as new (by
        default they are dropped, as Durable Functions does, so eternal orchestrations stay
        bounded).
    orchestrator_observability_port: the port serving ``/livez``, ``/readyz`` and
        ``/metrics`` (ADR 30); with several processes, their supervisor serves it for all.
        0: any free port (the one bound is logged, ``observability.listening``); ``off``:
        none.
    observability_host: the interface that port listens on.
    app_version: the app version new instances started here record (``context.version``);
        unset: none (docs/guide/versioning.md).
    version_match: which instances this process runs, by the version they started with:
        ``none`` (all), ``strict`` (its own only), ``current-or-older``.
    version_failure: what happens to an instance it may not run: ``reject`` leaves it
        waiting (its messages come back every ``version_retry_seconds``, for a process that
        may run it), ``fail`` fails it.
    version_retry_seconds: how long a message of an instance left waiting stays away before
        it is tried again.
    """

    batch_size: int = Field(default=256, ge=1)
    prefetch: int = Field(default=512, ge=1)
    cache_instances: int = Field(default=10_000, ge=0)
    cache_idle_seconds: float = Field(default=300.0, gt=0)
    pool_size: int = Field(default=20, ge=2)
    outbox_grace_seconds: float = Field(default=5.0, gt=0)
    shutdown_seconds: float = Field(default=20.0, gt=0)
    timer_grace_seconds: float = Field(default=5.0, gt=0)
    local_activity_threads: int = Field(default=4, ge=1)
    local_inline_seconds: float = Field(default=0.05, ge=0)
    orchestrator_processes: int = Field(default=0, ge=0)
    activity_batch: int = Field(default=64, ge=1)
    keep_continued_history: bool = False
    lease_seconds: float = Field(default=5.0, ge=0.5, le=300)
    member_id: str = Field(default="", max_length=200)
    orchestrator_observability_port: int | None = Field(default=7072, ge=0, le=65535)
    observability_host: str = "127.0.0.1"
    app_version: str | None = Field(default=None, min_length=1, max_length=MAX_VERSION_LENGTH)
    version_match: VersionMatch = VersionMatch.NONE
    version_failure: VersionFailure = VersionFailure.REJECT
    version_retry_seconds: int = Field(default=60, ge=1, le=MAX_DELAY_SECONDS)

    _port_or_off = field_validator("orchestrator_observability_port", mode="before")(port_or_off)

    @property
    def version_policy(self) -> VersionPolicy:
        return VersionPolicy(self.app_version, self.version_match, self.version_failure)

    @property
    def processes(self) -> int:
        """How many processes run the service (``orchestrator_processes``; 0: per core)."""
        return process_count(self.orchestrator_processes, self.partitions)

    @property
    def pool_size_per_process(self) -> int:
        return max(2, self.pool_size // self.processes)


_MOST_PROCESSES_BY_CORES = 4


def process_count(orchestrator_processes: int, partitions: int) -> int:
    """How many processes run the service: ``orchestrator_processes``, or one per usable core
    (at most 4) when it is 0; never more than one per partition."""
    if orchestrator_processes > 0:
        return min(orchestrator_processes, partitions)
    return max(1, min(_usable_cores(), _MOST_PROCESSES_BY_CORES, partitions))


def _usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's, where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
