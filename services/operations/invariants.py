"""The well-formedness rules of a stored history, checked event by event. Pure: no I/O.

``walk`` reads an instance's stored events in seq order once, keeping only the state of the
execution it is in (the calls made and answered), and reports every broken rule. The rules are
what the orchestrator writes (``services/orchestrator/handler.py``, ``episode.py``,
``rewind.py``, the engine's refusals), including the shapes that look odd but are normal:

- every episode, so every execution, opens with an ``OrchestratorStarted``;
- an execution may record events raised, a suspension, a resumption, a termination or a
  failure before its ``ExecutionStarted`` (messages that reached a Pending instance, or the
  next execution after a continue-as-new, first; a start Postgres refused fails it unstarted);
- a continue-as-new that keeps unprocessed events writes them as the next execution's first
  events; by default the earlier executions' events are deleted, so a history may begin at
  the current execution;
- a rewind appends ``OrchestratorStarted`` and ``ExecutionRewound`` to the Failed execution,
  then copies its events, without its final failures, into the next one;
- a retried call is a new call, a cancelled timer's fire and late or repeated answers are
  not recorded, and nothing is recorded after the end but a rewind.

The ``instances`` row is compared with the events by ``invariant_row``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts import (
    ContinueAsNew,
    EventRaised,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerCreated,
    TimerFired,
)
from contracts.history import HISTORY_EVENT_ADAPTER
from contracts.limits import STORED
from durable.store.events import RawStreamEvent, StreamEvent
from services.operations.invariant_calls import CallKind, Calls, Finding

RULES: dict[str, str] = {
    "event-readable": "each payload reads as a history event of the type its row names",
    "seq-contiguous": "seqs go up by one, with no gap",
    "executions-chained": (
        "each execution's events are consecutive, and a new one begins only after the "
        "previous one's ContinueAsNew or ExecutionRewound that names it"
    ),
    "starts-with-start": (
        "an execution opens with OrchestratorStarted and starts (ExecutionStarted, once, "
        "naming it) before it calls anything; only raised events, suspend/resume, a "
        "termination or a failure may come before"
    ),
    "nothing-after-end": (
        "nothing follows an execution's end (ExecutionCompleted, ExecutionFailed, "
        "ExecutionTerminated, ContinueAsNew) but, after a failure, one rewind"
    ),
    "rewind-after-failure": (
        "an ExecutionRewound only ends a Failed execution, right after its failure's "
        "OrchestratorStarted"
    ),
    "action-id-unique": (
        "each action id (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated) is "
        "used once per execution"
    ),
    "task-scheduled": (
        "every TaskStarted/TaskCompleted/TaskFailed answers an earlier TaskScheduled of its "
        "execution"
    ),
    "task-once": (
        "each TaskScheduled is completed or failed at most once, started at most once and "
        "not after its answer"
    ),
    "timer-created": "every TimerFired answers an earlier TimerCreated of its execution",
    "timer-once": "each timer fires at most once",
    "child-created": (
        "every SubOrchestrationInstanceCompleted/Failed answers an earlier "
        "SubOrchestrationInstanceCreated of its execution"
    ),
    "child-once": "each sub-orchestration is answered at most once",
    "suspend-resume": "an execution is suspended only while running, resumed only while suspended",
    "row-matches-events": (
        "the instances row agrees with the events: execution_id, execution_start_seq, "
        "last_seq, status, output, failure, completed_at, name, input, parent"
    ),
}
"""Every rule's name, as the output prints it, and what it checks."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (instance, execution, seq when there is one) and why."""

    instance_id: str
    rule: str
    reason: str
    execution_id: str | None = None
    seq: int | None = None


_CALLS: dict[type[HistoryEvent], CallKind] = {
    TaskScheduled: CallKind.ACTIVITY,
    TimerCreated: CallKind.TIMER,
    SubOrchestrationInstanceCreated: CallKind.CHILD,
}
_ENDINGS = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated, ContinueAsNew)
_BEFORE_START = (
    OrchestratorStarted,
    EventRaised,
    ExecutionSuspended,
    ExecutionResumed,
    ExecutionTerminated,
    ExecutionFailed,
)
"""What an execution may record before its ``ExecutionStarted`` (its start is still on its
way when a raised event, a suspension or a termination reaches it; a failure ends it when its
start cannot be stored, or its orchestrator is not deployed)."""


@dataclass
class Execution:
    """What the walk keeps of one execution: enough to check its rest and the row."""

    execution_id: str
    first_seq: int
    last_seq: int
    started: ExecutionStarted | None = None
    started_seq: int | None = None
    ending: StreamEvent | None = None
    after_end: list[HistoryEvent] = field(default_factory=list)
    successor: str | None = None
    """The execution its ContinueAsNew or ExecutionRewound names."""
    suspended: bool = False
    calls: Calls = field(default_factory=Calls)


class _Walk:
    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.violations: list[Violation] = []
        self.executions: list[Execution] = []
        self._last_seq: int | None = None

    def flag(self, rule: str, reason: str, execution: Execution | None, seq: int | None) -> None:
        self.violations.append(
            Violation(
                self.instance_id,
                rule,
                reason,
                execution.execution_id if execution is not None else None,
                seq,
            )
        )

    def read(self, raw: RawStreamEvent) -> StreamEvent | None:
        try:
            event = HISTORY_EVENT_ADAPTER.validate_json(raw.payload, context=STORED)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "payload"
            self.flag(
                "event-readable",
                f"the {raw.event_type} payload does not read as a history event "
                f"({where}: {problem['msg']})",
                None,
                raw.seq,
            )
            return None
        stored = StreamEvent(raw.seq, raw.execution_id, event)
        if event.event_type != raw.event_type:
            self.flag(
                "event-readable",
                f"the row says {raw.event_type} but the payload is a {event.event_type}",
                None,
                raw.seq,
            )
        return stored

    def follows(self, seq: int) -> None:
        """Check that ``seq`` comes right after the previous event's."""
        if self._last_seq is not None and seq != self._last_seq + 1:
            missing = (
                f"seq {self._last_seq + 1}"
                if seq == self._last_seq + 2
                else f"seqs {self._last_seq + 1}..{seq - 1}"
            )
            self.flag("seq-contiguous", f"{missing} missing", None, seq)
        self._last_seq = seq

    def feed(self, stored: StreamEvent) -> None:
        current = self.executions[-1] if self.executions else None
        if current is None or stored.execution_id != current.execution_id:
            current = self._begin(current, stored)
        current.last_seq = stored.seq
        if current.ending is not None:
            self._after_end(current, stored)
            return
        self._event(current, stored)

    def _begin(self, previous: Execution | None, stored: StreamEvent) -> Execution:
        execution = Execution(stored.execution_id, stored.seq, stored.seq)
        if any(e.execution_id == stored.execution_id for e in self.executions):
            assert previous is not None
            self.flag(
                "executions-chained",
                f"the execution's events resume after execution {previous.execution_id} "
                "began: executions interleave",
                execution,
                stored.seq,
            )
        elif previous is not None and previous.successor != stored.execution_id:
            ended = (
                f"ended with {previous.ending.event.event_type} at seq {previous.ending.seq}"
                if previous.ending is not None
                else "has not ended"
            )
            self.flag(
                "executions-chained",
                f"the execution begins but the one before it ({previous.execution_id}) "
                f"{ended}, naming no next execution"
                + (f" but {previous.successor}" if previous.successor else ""),
                execution,
                stored.seq,
            )
        if not isinstance(stored.event, OrchestratorStarted):
            self.flag(
                "starts-with-start",
                f"the execution opens with {stored.event.event_type}, not OrchestratorStarted",
                execution,
                stored.seq,
            )
        self.executions.append(execution)
        return execution

    def _after_end(self, execution: Execution, stored: StreamEvent) -> None:
        ending = execution.ending
        assert ending is not None
        event = stored.event
        failed = isinstance(ending.event, ExecutionFailed)
        if isinstance(event, ExecutionRewound) and execution.successor is None:
            if failed and [type(e) for e in execution.after_end] == [OrchestratorStarted]:
                execution.after_end.append(event)
                execution.successor = event.new_execution_id
                return
            if not failed:
                self.flag(
                    "rewind-after-failure",
                    f"ExecutionRewound after the execution ended with "
                    f"{ending.event.event_type} (seq {ending.seq}), not a failure",
                    execution,
                    stored.seq,
                )
                return
        elif (
            failed
            and isinstance(event, OrchestratorStarted)
            and not execution.after_end
            and execution.successor is None
        ):
            execution.after_end.append(event)
            return
        self.flag(
            "nothing-after-end",
            f"{_describe(event)} after the execution ended with {ending.event.event_type} "
            f"at seq {ending.seq}",
            execution,
            stored.seq,
        )

    def _event(self, execution: Execution, stored: StreamEvent) -> None:
        event, seq, calls = stored.event, stored.seq, execution.calls
        if execution.started is None and not isinstance(event, (*_BEFORE_START, ExecutionStarted)):
            self.flag(
                "starts-with-start",
                f"{_describe(event)} before the execution's ExecutionStarted",
                execution,
                seq,
            )
        match event:
            case ExecutionStarted():
                self._started(execution, stored, event)
            case ExecutionRewound():
                self.flag(
                    "rewind-after-failure",
                    "ExecutionRewound in an execution that has not failed",
                    execution,
                    seq,
                )
            case TaskScheduled() | TimerCreated() | SubOrchestrationInstanceCreated():
                kind = _CALLS[type(event)]
                self._check(execution, seq, calls.call(kind, event.event_id, event.event_type, seq))
            case TaskStarted(task_scheduled_id=task_id):
                self._check(execution, seq, calls.start(task_id, seq))
            case TaskCompleted(task_scheduled_id=call_id) | TaskFailed(task_scheduled_id=call_id):
                finding = calls.answer(CallKind.ACTIVITY, call_id, event.event_type, seq)
                self._check(execution, seq, finding)
            case TimerFired(timer_id=call_id):
                finding = calls.answer(CallKind.TIMER, call_id, event.event_type, seq)
                self._check(execution, seq, finding)
            case SubOrchestrationInstanceCompleted(task_scheduled_id=call_id) | (
                SubOrchestrationInstanceFailed(task_scheduled_id=call_id)
            ):
                finding = calls.answer(CallKind.CHILD, call_id, event.event_type, seq)
                self._check(execution, seq, finding)
            case ExecutionSuspended() | ExecutionResumed():
                suspending = isinstance(event, ExecutionSuspended)
                if suspending == execution.suspended:
                    state = "suspended already" if suspending else "not suspended"
                    self.flag(
                        "suspend-resume",
                        f"{event.event_type} while the execution is {state}",
                        execution,
                        seq,
                    )
                execution.suspended = suspending
            case _ if isinstance(event, _ENDINGS):
                execution.ending = stored
                if isinstance(event, ContinueAsNew):
                    execution.successor = event.new_execution_id
            case _:
                pass

    def _started(self, execution: Execution, stored: StreamEvent, event: ExecutionStarted) -> None:
        if execution.started is not None:
            self.flag(
                "starts-with-start",
                f"a second ExecutionStarted (the first is at seq {execution.started_seq})",
                execution,
                stored.seq,
            )
            return
        execution.started, execution.started_seq = event, stored.seq
        if event.execution_id != stored.execution_id:
            self.flag(
                "starts-with-start",
                f"ExecutionStarted names execution {event.execution_id}, "
                f"but is stored in {stored.execution_id}",
                execution,
                stored.seq,
            )

    def _check(self, execution: Execution, seq: int, finding: Finding | None) -> None:
        if finding is not None:
            self.flag(*finding, execution, seq)


def _describe(event: HistoryEvent) -> str:
    if event.event_id >= 0:
        return f"{event.event_type} #{event.event_id}"
    return event.event_type


def walk(
    instance_id: str, stream: Sequence[RawStreamEvent]
) -> tuple[list[Violation], list[Execution]]:
    """Check ``stream`` (an instance's stored events, seq order); return the violations and
    the executions found, in order, for the row's check."""
    checker = _Walk(instance_id)
    for raw in stream:
        checker.follows(raw.seq)
        stored = checker.read(raw)
        if stored is not None:
            checker.feed(stored)
    return checker.violations, checker.executions
