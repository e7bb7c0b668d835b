"""Loading uncached instances inside the handler's transaction: lock their rows (creating
those a start names), read their current executions' events and rebuild them.

A Failed instance asked to rewind is rewound here, in the same transaction; the messages of
an instance that has ended (or never existed) are dropped, and logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from contracts import ExecutionRewound, ExecutionStarted, OrchestrationStatus, OrchestratorMessage
from durable.app import FunctionApp
from durable.store.database import Connection
from durable.store.events import StoredEvent, load_histories_txn
from durable.store.instances import NewInstance, insert_instances_txn, lock_instances_txn
from services.orchestrator.cache import InstanceState, rehydrate
from services.orchestrator.episode import Batch, EpisodeRecorder
from services.orchestrator.rewind import rewind_instance

log = structlog.get_logger(__name__)


async def load_instances_txn(
    connection: Connection,
    functions: FunctionApp,
    recorder: EpisodeRecorder,
    groups: dict[str, list[OrchestratorMessage]],
    now: datetime,
    batch: Batch,
    runs_version: Callable[[str | None], bool],
    pause: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, InstanceState]:
    """Lock and load the orchestrations of ``groups`` (none of them cached, none an entity)
    and return the states their messages step, by instance id. Their expected seqs go to
    ``batch``, and so does what a rewind writes. ``pause`` is awaited between two instances'
    replays (``services.orchestrator.turns``)."""
    rows = await lock_instances_txn(connection, list(groups))
    missing = [
        _new_instance(start, now)
        for instance_id, group in groups.items()
        if instance_id not in rows
        for start in _first_start(group)
    ]
    if missing:
        await insert_instances_txn(connection, missing)
        rows |= await lock_instances_txn(connection, [i.instance_id for i in missing])
    for instance_id, row in rows.items():
        batch.expected_seqs[instance_id] = row.last_seq

    rewinds = {
        instance_id
        for instance_id, row in rows.items()
        if row.status is OrchestrationStatus.FAILED
        and any(isinstance(m.body, ExecutionRewound) for m in groups[instance_id])
    }
    to_load = {
        instance_id: row.execution_start_seq
        for instance_id, row in rows.items()
        if not row.status.is_terminal or instance_id in rewinds
    }
    # A new instance (a start, the common case here) has no events yet: nothing to read.
    stored = {i: seq for i, seq in to_load.items() if rows[i].last_seq >= seq}
    histories: dict[str, list[StoredEvent]] = {i: [] for i in to_load}
    histories |= await load_histories_txn(connection, stored)

    states: dict[str, InstanceState] = {}
    for instance_id, history in histories.items():
        if pause is not None:
            await pause()
        if instance_id in rewinds:
            rewind_instance(
                functions, recorder, rows[instance_id], history, groups[instance_id], now, batch
            )
        else:
            states[instance_id] = rehydrate(functions, rows[instance_id], history, runs_version)
    for instance_id, group in groups.items():
        if instance_id not in states and instance_id not in rewinds:
            record = rows.get(instance_id)
            log.info(
                "messages.dropped",
                instance_id=instance_id,
                count=len(group),
                reason=f"instance is {record.status.value}" if record else "unknown",
            )
    return states


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
        version=start.version,
    )
