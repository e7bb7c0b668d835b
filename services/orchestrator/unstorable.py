"""Values Postgres refuses to store: the instance fails instead of retrying forever (ADR 21).

``events.payload`` is ``json``, which keeps any well-formed JSON text; the read model's
columns are ``jsonb``, which refuses a string holding U+0000 (SQLSTATE 22P05) or a lone
surrogate (22P02), and both refuse JSON nested deeper than their parser's stack allows
(54001). A value that entered the history before the boundaries checked it, or by a path they
do not cover, makes every write of its instance's next step fail the same way: retried, the
message would be dead-lettered at the delivery limit with the instance Running for good, and a
re-drive would fail again. So the handler ends that instance as Failed, through the same
decision path as any failure (its timers go, its parent is answered, its cache entry is
evicted), with an ``UnstorableValueError`` that names the value and Postgres's reason, and
writes nothing of the value itself.

Data exceptions (class 22) and program limits (class 54) are what a value can cause; a
connection failure, a conflict and an ambiguous commit are not, and keep their handling.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from contracts import (
    ExecutionFailed,
    ExecutionStarted,
    FailureDetails,
    OrchestrationStatus,
    OrchestratorMessage,
    OrchestratorStarted,
)
from durable.store.columns import json_text, refuses_json
from durable.store.database import Connection, in_transaction
from durable.store.errors import UNSTORABLE_ERRORS
from durable.store.events import load_histories_txn
from durable.store.instances import lock_instances_txn
from durable.store.outbox import OutboxRecord
from engine import Decision
from services.orchestrator.cache import InstanceState
from services.orchestrator.episode import Batch, EpisodeRecorder, RefusedMessage

log = structlog.get_logger(__name__)

UNSTORABLE_VALUE_ERROR = "UnstorableValueError"


def unstorable_problem(what: str, cause: asyncpg.PostgresError) -> str:
    """``what`` (in words: "its output") cannot be stored, and Postgres's reason."""
    detail = f" ({cause.detail})" if cause.detail else ""
    return (
        f"{what} cannot be stored: Postgres refused it with {cause.sqlstate} "
        f"{cause.message}{detail}"
    )


def unstorable_failure(problem: str) -> FailureDetails:
    """The failure an instance ends with when Postgres refuses one of its values."""
    return FailureDetails(
        error_type=UNSTORABLE_VALUE_ERROR,
        message=(
            f"{problem}. The instance was failed rather than retried: every write of its "
            "next step would fail the same way."
        ),
        is_non_retriable=True,
    )


async def refused_value(
    connection: Connection, batch: Batch, messages: Sequence[OrchestratorMessage]
) -> str:
    """Which of the values ``batch`` (and the instance rows ``messages`` create) writes
    Postgres refuses, in words; found by having Postgres read each in turn (a rare path)."""
    candidates: list[tuple[str, str | None, str]] = []
    for update in batch.updates:
        candidates += [
            ("its output", json_text(update.output), "jsonb"),
            ("its custom status", json_text(update.custom_status), "jsonb"),
            ("its failure details", _json(update.failure), "jsonb"),
        ]
    candidates += [
        (
            f"the input of its sub-orchestration {child.name!r} (instance {child.instance_id!r})",
            json_text(child.input),
            "jsonb",
        )
        for child in batch.children
    ]
    candidates += [
        ("the input of its next execution", json_text(c.input), "jsonb")
        for c in batch.continuations
    ]
    candidates += [
        ("the input of its start", json_text(m.body.input), "jsonb")
        for m in messages
        if isinstance(m.body, ExecutionStarted)
    ]
    candidates += [
        (f"its history event {e.event.event_type} (seq {e.seq})", e.event.model_dump_json(), "json")
        for e in batch.events
    ]
    for what, text, column_type in candidates:
        if text is not None and await refuses_json(connection, text, column_type):
            return what
    return "a value it writes"


def _json(failure: FailureDetails | None) -> str | None:
    return None if failure is None else failure.model_dump_json()


WriteTxn = Callable[[Connection, Batch, datetime], Awaitable[list[OutboxRecord]]]
"""Writes a batch and its outbox rows in the caller's transaction (the handler's)."""


async def fail_unstorable(
    pool: asyncpg.Pool,
    recorder: EpisodeRecorder,
    messages: Sequence[OrchestratorMessage],
    refused: Batch,
    cause: asyncpg.PostgresError,
    now: datetime,
    write_txn: WriteTxn,
) -> tuple[list[OutboxRecord], list[RefusedMessage]]:
    """End the instance of ``messages`` as Failed, since writing ``refused`` (its batch)
    failed with ``cause``; return the outbox rows to publish, or, when the instance has no
    row to fail or has ended, the messages to dead-letter instead. ``messages`` are not
    recorded: they are what could not be written."""
    instance_id = messages[0].envelope.instance_id
    async with pool.acquire() as connection:
        what = await refused_value(connection, refused, messages)
    problem = unstorable_problem(what, cause)
    failure = unstorable_failure(problem)
    log.warning("orchestration.unstorable_value", instance_id=instance_id, problem=problem)
    batch = Batch(lease=refused.lease)

    async def fail(connection: Connection) -> list[OutboxRecord] | None:
        if not await _fail_txn(connection, recorder, instance_id, messages, failure, now, batch):
            return None
        return await write_txn(connection, batch, now)

    try:
        records = await in_transaction(pool, fail)
    except UNSTORABLE_ERRORS as again:
        # Not even the failure can be written (the instance id itself, say): the messages
        # go to the dead letters rather than round the queue.
        problem += f"; failing the instance was refused too: {again.sqlstate} {again.message}"
        records = None
    if records is None:
        reason = f"instance {instance_id!r} cannot be written: {problem}"
        return [], [RefusedMessage(message, reason) for message in messages]
    batch.tally.committed(len(messages))
    return records, []


async def _fail_txn(
    connection: Connection,
    recorder: EpisodeRecorder,
    instance_id: str,
    messages: Sequence[OrchestratorMessage],
    failure: FailureDetails,
    now: datetime,
    batch: Batch,
) -> bool:
    """Lock the instance and end it as Failed with ``failure`` in ``batch``; False when it
    has no row, or has ended, so there is nothing to fail."""
    row = (await lock_instances_txn(connection, [instance_id])).get(instance_id)
    if row is None or row.status.is_terminal:
        return False
    history = await load_histories_txn(connection, {instance_id: row.execution_start_seq})
    state = InstanceState.of(row, history[instance_id], executor=None)
    # A new instance's start is among the messages, not yet in its history.
    state.parent = state.parent or next(
        (m.body.parent for m in messages if isinstance(m.body, ExecutionStarted)), None
    )
    recorder.append_events(state, [(OrchestratorStarted(timestamp=now), None)], batch)
    decision = Decision(
        new_events=[ExecutionFailed(timestamp=now, failure=failure)],
        status=OrchestrationStatus.FAILED,
        failure=failure,
    )
    recorder.record(state, [], decision, now, batch)
    return True
