"""Rewinding a Failed instance, inside the handler's transaction.

The failed execution gets an ``ExecutionRewound`` event; a new execution starts from its
history without the failures that ended it (``engine.rewind``); the calls that history leaves
open (the failed ones) are dispatched again; completed ones keep their results.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog

from contracts import (
    ExecutionRewound,
    HistoryEvent,
    OrchestratorMessage,
    OrchestratorStarted,
    deterministic_message_id,
)
from durable.app import FunctionApp
from durable.store.events import StoredEvent
from durable.store.instances import InstanceRecord
from durable.store.timers import TimerRow
from engine import OrchestrationExecutor
from engine.rewind import open_work, rewound_history
from services.orchestrator.cache import InstanceState
from services.orchestrator.dispatch import messages_for
from services.orchestrator.episode import Batch, EpisodeRecorder, child_start
from services.orchestrator.followups import Continuation

log = structlog.get_logger(__name__)


def rewind_instance(
    functions: FunctionApp,
    recorder: EpisodeRecorder,
    row: InstanceRecord,
    history: list[StoredEvent],
    messages: Sequence[OrchestratorMessage],
    now: datetime,
    batch: Batch,
) -> None:
    bound = log.bind(instance_id=row.instance_id, correlation_id=row.correlation_id)
    orchestrator = functions.orchestrators.get(row.name)
    if orchestrator is None:
        bound.warning("rewind.refused", reason=f"orchestrator {row.name!r} is not registered")
        return
    request = next(m for m in messages if isinstance(m.body, ExecutionRewound))
    assert isinstance(request.body, ExecutionRewound)
    new_execution_id = deterministic_message_id(
        row.instance_id, row.execution_id, "rewind", row.last_seq
    ).hex
    events = [stored.event for stored in history]
    rewound = rewound_history(orchestrator, row.instance_id, events, new_execution_id)
    state = InstanceState.of(row, history, executor=None)
    marker = ExecutionRewound(
        timestamp=now, reason=request.body.reason, new_execution_id=new_execution_id
    )
    opening: list[tuple[HistoryEvent, uuid.UUID | None]] = [
        (OrchestratorStarted(timestamp=now), None),
        (marker, request.envelope.message_id),
    ]
    recorder.append_events(state, opening, batch)
    first_seq = state.last_seq + 1
    state.execution_id = new_execution_id
    recorder.append_events(state, [(event, None) for event in rewound], batch)

    executor = OrchestrationExecutor(orchestrator, row.instance_id)
    executor.replay(rewound)
    state.executor = executor
    work = open_work(executor, rewound)
    outgoing, held = messages_for(recorder.topology, state, [*work.activities, *work.timers], now)
    batch.messages += outgoing
    batch.held_fires += held
    batch.timers_created += [
        TimerRow(row.instance_id, new_execution_id, t.event_id, t.fire_at, row.correlation_id)
        for t in work.timers
    ]
    batch.children += [child_start(state, child) for child in work.children]
    recorder.record(state, [], executor.decide(), now, batch)
    batch.continuations.append(
        Continuation(
            row.instance_id, new_execution_id, None, first_seq, keep_input=True, drop_earlier=False
        )
    )
    bound.info(
        "orchestration.rewound",
        name=row.name,
        activities=len(work.activities),
        timers=len(work.timers),
        children=len(work.children),
    )
