"""Replaying stored histories through the current orchestrator code, to gate a deploy.

Each instance's current execution is read from ``execution_start_seq`` on, exactly as the
orchestrator rehydrates it, and run through the code loaded from ``DF_FUNCTION_MODULES`` by the
pure engine: no activity runs, no timer is set, nothing is published or written. The code
matches when the engine finds no ``NonDeterminismError``, ends (or not) where the history ends,
returns what a Completed history returned, and asks for nothing the history lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from contracts import (
    ContinueAsNew,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationStatus,
)
from durable.store.events import StreamEvent, load_stream_txn
from durable.store.rows import replay_targets_txn
from durable.store.selection import InstanceSelection, selected_ids
from engine import Decision, OrchestratorFunction
from engine.actions import describe_event
from services.operations.projections import (
    current_execution,
    history_status,
    replay_execution,
)
from services.operations.session import Progress


@dataclass(frozen=True)
class Mismatch:
    """Where code and history part ways.

    Attributes:
        event_id: the history event (action id) concerned, when there is one.
        seq: its position in the stream.
        history: what the history holds there.
        code: what the code now asks for, or does, instead.
    """

    event_id: int | None
    seq: int | None
    history: str
    code: str

    def describe(self) -> str:
        where = f"event #{self.event_id}" if self.event_id is not None else "history"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"at {where} the history holds {self.history}; the code now asks for {self.code}"


@dataclass(frozen=True)
class ReplayResult:
    instance_id: str
    name: str
    events: int
    mismatch: Mismatch | None = None
    skipped: str | None = None
    version: str | None = None
    """The app version the execution started under (``context.version``)."""

    @property
    def matches(self) -> bool:
        return self.mismatch is None and self.skipped is None


def check_instance(
    instance_id: str,
    name: str,
    stream: list[StreamEvent],
    orchestrators: Mapping[str, OrchestratorFunction],
) -> ReplayResult:
    """Replay the current execution in ``stream`` (its events from ``execution_start_seq``)."""
    if not stream:
        return ReplayResult(instance_id, name, 0, skipped="no events yet")
    execution = current_execution(stream)
    started = execution.started
    if started is None:
        return ReplayResult(instance_id, name, 0, skipped="its current execution has not started")
    count = len(execution.events)
    version = started.version
    orchestrator = orchestrators.get(started.name)
    if orchestrator is None:
        known = ", ".join(sorted(orchestrators)) or "none"
        missing = Mismatch(
            None,
            execution.start_seq,
            f"an execution of orchestrator {started.name!r}",
            f"nothing: no orchestrator of that name is loaded (loaded: {known})",
        )
        return ReplayResult(instance_id, started.name, count, missing, version=version)
    try:
        decision = replay_execution(instance_id, execution, orchestrator)
    except Exception as error:  # code misbehaving outside the engine's protection
        raised = Mismatch(None, None, "a replayable execution", f"code that raised {error!r}")
        return ReplayResult(instance_id, started.name, count, raised, version=version)
    mismatch = _compare(execution.events, decision)
    return ReplayResult(instance_id, started.name, count, mismatch, version=version)


def _compare(events: list[StreamEvent], decision: Decision) -> Mismatch | None:
    error = decision.non_determinism
    if error is not None:
        seq = next(
            (e.seq for e in events if e.event.event_id == error.event_id and _is_action(e)), None
        )
        return Mismatch(error.event_id, seq, error.expected, error.actual)
    recorded = history_status(events)
    last = events[-1].seq
    if decision.status is not recorded:
        return Mismatch(
            None,
            last,
            f"an execution that is {recorded.value} when the history ends",
            _ending_description(decision),
        )
    if recorded is OrchestrationStatus.COMPLETED:
        result = next(e.event.result for e in events if isinstance(e.event, ExecutionCompleted))
        if _canonical(result) != _canonical(decision.output):
            return Mismatch(
                None,
                last,
                f"the result {_short(result)}",
                f"a different result, {_short(decision.output)}",
            )
    extra = next((e for e in decision.new_events if e.event_id >= 0), None)
    if extra is not None:
        return Mismatch(
            extra.event_id,
            None,
            f"nothing at event #{extra.event_id} (the history ends at seq {last})",
            describe_event(extra),
        )
    return None


def _ending_description(decision: Decision) -> str:
    ending: HistoryEvent | None = next(
        (
            e
            for e in decision.new_events
            if isinstance(
                e, ExecutionCompleted | ExecutionFailed | ExecutionTerminated | ContinueAsNew
            )
        ),
        None,
    )
    match ending:
        case ExecutionFailed(failure=failure):
            return f"the execution to fail here: {failure.error_type}: {failure.message}"
        case ExecutionCompleted(result=result):
            return f"the execution to complete here, returning {_short(result)}"
        case ContinueAsNew():
            return "the execution to continue as new here"
        case _:
            return f"an execution that is {decision.status.value} at this point"


def _is_action(stored: StreamEvent) -> bool:
    return stored.event.event_type in {
        "TaskScheduled",
        "TimerCreated",
        "SubOrchestrationInstanceCreated",
    }


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _short(value: object, width: int = 80) -> str:
    text = _canonical(value)
    return text if len(text) <= width else text[: width - 1] + "…"


NO_VERSION = "(none)"
"""How the summary names instances that started without a version."""


@dataclass
class ReplaySummary:
    """Counts of the instances replayed, in all and per app version they started under
    (a deploy that keeps old instances on old code paths is checked version by version)."""

    checked: int = 0
    matched: int = 0
    mismatched: int = 0
    skipped: int = 0
    by_version: dict[str, ReplaySummary] = field(default_factory=dict)

    def add(self, result: ReplayResult) -> None:
        self._count(result)
        if result.skipped is None:
            version = result.version or NO_VERSION
            self.by_version.setdefault(version, ReplaySummary())._count(result)

    def _count(self, result: ReplayResult) -> None:
        self.checked += 1
        if result.skipped is not None:
            self.skipped += 1
        elif result.mismatch is not None:
            self.mismatched += 1
        else:
            self.matched += 1

    def to_json(self) -> dict[str, object]:
        counts: dict[str, object] = {
            "checked": self.checked,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "skipped": self.skipped,
        }
        if self.by_version:
            counts["versions"] = {
                version: summary.to_json() for version, summary in sorted(self.by_version.items())
            }
        return counts

    def describe(self) -> str:
        total = (
            f"{self.checked:,} instances replayed: {self.matched:,} match, "
            f"{self.mismatched:,} do not, {self.skipped:,} skipped"
        )
        if len(self.by_version) <= 1 and NO_VERSION in self.by_version:
            return total
        versions = "; ".join(
            f"version {version}: {summary.matched:,} match, {summary.mismatched:,} do not"
            for version, summary in sorted(self.by_version.items())
        )
        return f"{total} ({versions})"


async def check_selection(
    pool: asyncpg.Pool,
    selection: InstanceSelection,
    orchestrators: Mapping[str, OrchestratorFunction],
    on_result: Callable[[ReplayResult], None],
    progress: Progress,
    page_size: int = 100,
) -> ReplaySummary:
    """Replay every selected instance, a page at a time, each page in one read-only snapshot."""
    summary = ReplaySummary()
    async for ids in selected_ids(pool, selection, page_size):
        async with (
            pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            for target in await replay_targets_txn(connection, ids):
                stream = await load_stream_txn(
                    connection, target.instance_id, target.execution_start_seq
                )
                result = check_instance(target.instance_id, target.name, stream, orchestrators)
                summary.add(result)
                on_result(result)
        progress.update(summary.describe)
    return summary
