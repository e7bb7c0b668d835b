"""The ``instances`` read model as the event stream defines it. Pure: no I/O.

How each column follows from the events (the rules the orchestrator applies when it writes the
row, ``services/orchestrator/episode.py`` and ``followups.py``):

- ``execution_id`` / ``execution_start_seq``: the current execution is the last event's,
  unless that event is a ``ContinueAsNew`` (or ``ExecutionRewound``) naming the next one; it
  starts at its first event (or right after the event that named it).
- ``name``, ``input``, ``parent_instance_id``, ``version``: the current execution's
  ``ExecutionStarted``.
- ``status``: the current execution's ending (``ExecutionCompleted`` → Completed, and so on),
  else Suspended or Running by its last suspend/resume.
- ``output``: the result of a Completed execution, the reason of a Terminated one, else null;
  ``failure``: the failure of a Failed one.
- ``updated_at``: the time of the last episode (its ``OrchestratorStarted``); ``completed_at``:
  the time of the episode that ended it. A rewind copies the failed execution's events, old
  ``OrchestratorStarted`` times included; those are not episodes and are passed over.
- ``created_at``: the first ``ExecutionStarted``'s time (a client or parent start) or the
  first episode's (an instance whose start arrived without a row), while the first execution
  is still stored.
- ``last_seq``: the last event's seq.
- ``custom_status``: only the code knows it: the current execution is replayed through the
  orchestrator (no activity runs; replay has no side effects).

What cannot be rebuilt keeps the live value: ``correlation_id`` (not in any event);
``created_at`` once continue-as-new has dropped the first execution's events; ``custom_status``
when the orchestrator is not deployed or no longer matches the history. An instance whose
current execution has not started (Pending, or between continue-as-new and the next
``ExecutionStarted``) is not rebuilt at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts import (
    ContinueAsNew,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
)
from durable.store.events import StreamEvent
from durable.store.rows import JSON_COLUMNS
from engine import Decision, OrchestrationExecutor, OrchestratorFunction


@dataclass(frozen=True)
class Execution:
    """The current execution of an instance: its id, first seq and events."""

    execution_id: str
    start_seq: int
    events: list[StreamEvent]

    @property
    def started(self) -> ExecutionStarted | None:
        return next((e.event for e in self.events if isinstance(e.event, ExecutionStarted)), None)


def current_execution(stream: Sequence[StreamEvent]) -> Execution:
    """The execution the instance is in now (``stream`` is non-empty, in seq order)."""
    last = stream[-1]
    successor = _successor(last.event)
    if successor is not None:
        return Execution(successor, last.seq + 1, [])
    events = [e for e in stream if e.execution_id == last.execution_id]
    return Execution(last.execution_id, events[0].seq, events)


def _successor(event: HistoryEvent) -> str | None:
    match event:
        case ContinueAsNew(new_execution_id=new) | ExecutionRewound(new_execution_id=str(new)):
            return new
        case _:
            return None


@dataclass
class Projection:
    """The read model rebuilt for one instance.

    Attributes:
        values: the rebuilt value of every field that could be rebuilt.
        kept: fields left at their live value, with the reason.
        skipped: set when nothing was rebuilt, with the reason.
        replay: the decision of replaying the current execution through the code, if it ran.
    """

    values: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    replay: Decision | None = None


def project(
    instance_id: str,
    stream: Sequence[StreamEvent],
    orchestrators: Mapping[str, OrchestratorFunction],
    live: Mapping[str, Any],
) -> Projection:
    """Rebuild the row of ``instance_id`` from its ``stream`` (all stored events, seq order)
    and the deployed ``orchestrators``; ``live`` is the row as it is."""
    if not stream:
        return Projection(skipped="no events (the start has not been processed yet)")
    execution = current_execution(stream)
    started = execution.started
    if started is None:
        return Projection(skipped="its current execution has not started yet")
    values: dict[str, Any] = {
        "name": started.name,
        "execution_id": execution.execution_id,
        "input": started.input,
        "parent_instance_id": started.parent.instance_id if started.parent else None,
        "version": started.version,
        "last_seq": stream[-1].seq,
        "execution_start_seq": execution.start_seq,
    }
    values.update(_outcome(execution.events))
    episodes = _episode_times(stream)
    values["updated_at"] = episodes[stream[-1].seq]
    ending = _ending(execution.events)
    values["completed_at"] = (
        episodes[ending.seq] if ending is not None and values["status"].is_terminal else None
    )
    projection = Projection(values=values)
    created_at = _created_at(stream, live.get("created_at"))
    if created_at is None:
        projection.kept["created_at"] = "the first execution's events were dropped"
    else:
        values["created_at"] = created_at
    projection.kept["correlation_id"] = "not recorded in any event"
    _replay(instance_id, execution, orchestrators.get(started.name), projection)
    return projection


def replay_execution(
    instance_id: str, execution: Execution, orchestrator: OrchestratorFunction
) -> Decision:
    """Run the current code over the execution's events: no activity runs, nothing is sent."""
    executor = OrchestrationExecutor(orchestrator, instance_id)
    executor.replay(e.event for e in execution.events)
    return executor.decide()


def _replay(
    instance_id: str,
    execution: Execution,
    orchestrator: OrchestratorFunction | None,
    projection: Projection,
) -> None:
    if orchestrator is None:
        projection.kept["custom_status"] = "its orchestrator is not in DF_FUNCTION_MODULES"
        return
    try:
        decision = replay_execution(instance_id, execution, orchestrator)
    except Exception as error:  # user code misbehaving outside the engine's protection
        projection.kept["custom_status"] = f"replaying the code raised {error!r}"
        return
    projection.replay = decision
    if decision.non_determinism is not None:
        projection.kept["custom_status"] = "the code no longer matches the history"
    else:
        projection.values["custom_status"] = decision.custom_status


def _ending(events: Sequence[StreamEvent]) -> StreamEvent | None:
    endings = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated, ContinueAsNew)
    return next((e for e in events if isinstance(e.event, endings)), None)


def history_status(events: Sequence[StreamEvent]) -> OrchestrationStatus:
    """The status an execution's events record."""
    return _outcome(events)["status"]  # type: ignore[no-any-return]


def _outcome(events: Sequence[StreamEvent]) -> dict[str, Any]:
    ending = _ending(events)
    match ending.event if ending is not None else None:
        case ExecutionCompleted(result=result):
            return {"status": OrchestrationStatus.COMPLETED, "output": result, "failure": None}
        case ExecutionFailed(failure=failure):
            return {"status": OrchestrationStatus.FAILED, "output": None, "failure": failure}
        case ExecutionTerminated(reason=reason):
            return {"status": OrchestrationStatus.TERMINATED, "output": reason, "failure": None}
        case ContinueAsNew():
            status = OrchestrationStatus.CONTINUED_AS_NEW
            return {"status": status, "output": None, "failure": None}
    toggles = [
        e.event for e in events if isinstance(e.event, ExecutionSuspended | ExecutionResumed)
    ]
    suspended = bool(toggles) and isinstance(toggles[-1], ExecutionSuspended)
    status = OrchestrationStatus.SUSPENDED if suspended else OrchestrationStatus.RUNNING
    return {"status": status, "output": None, "failure": None}


def _episode_times(stream: Sequence[StreamEvent]) -> dict[int, datetime]:
    """For each seq, the time of the episode that wrote it (its ``OrchestratorStarted``)."""
    times: dict[int, datetime] = {}
    current: datetime | None = None
    rewound_at: datetime | None = None
    for stored in stream:
        match stored.event:
            case OrchestratorStarted(timestamp=timestamp):
                # Copied by a rewind: older than the rewind itself, not an episode.
                if rewound_at is None or timestamp >= rewound_at:
                    current = timestamp
            case ExecutionRewound(timestamp=timestamp):
                rewound_at = timestamp
        times[stored.seq] = current if current is not None else stored.event.timestamp
    return times


def _created_at(stream: Sequence[StreamEvent], live: datetime | None) -> datetime | None:
    if stream[0].seq != 1:
        return None
    first_start = next(e.event for e in stream if isinstance(e.event, ExecutionStarted))
    candidates = [first_start.timestamp]
    if isinstance(stream[0].event, OrchestratorStarted):
        candidates.append(stream[0].event.timestamp)
    return live if live in candidates else first_start.timestamp


def differences(projection: Projection, live: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose rebuilt value differs from the live one: ``{field: (live, rebuilt)}``."""
    found: dict[str, tuple[Any, Any]] = {}
    for name, rebuilt in projection.values.items():
        current = live.get(name)
        if name in JSON_COLUMNS:
            if _canonical(current) != _canonical(rebuilt):
                found[name] = (current, rebuilt)
        elif current != rebuilt:
            found[name] = (current, rebuilt)
    return found


def _canonical(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
