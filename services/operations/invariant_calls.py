"""One execution's calls and their answers, for ``invariants``: the rules ``action-id-unique``,
``task-scheduled``/``task-once``, ``timer-created``/``timer-once`` and
``child-created``/``child-once``. Pure.

A call is an action event (``TaskScheduled``, ``TimerCreated``,
``SubOrchestrationInstanceCreated``) with the id the engine numbered it with; an answer names
that id. The engine records an answer only for a call of its kind that is still open (a
repeated or late answer, a cancelled timer's fire, an answer to a call never made are dropped
or dead-lettered, ADR 2 and 21), so each call is answered at most once, after it was made. A
retried call is a new call with a new id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

Finding = tuple[str, str]
"""A broken rule: its name and the reason, in words."""


class CallKind(Enum):
    ACTIVITY = "activity"
    TIMER = "timer"
    CHILD = "sub-orchestration"


_NEVER_MADE = {
    CallKind.ACTIVITY: "task-scheduled",
    CallKind.TIMER: "timer-created",
    CallKind.CHILD: "child-created",
}
_TWICE = {
    CallKind.ACTIVITY: "task-once",
    CallKind.TIMER: "timer-once",
    CallKind.CHILD: "child-once",
}


@dataclass
class Calls:
    """The calls an execution has made (kind and seq, by id) and the seqs of their answers."""

    made: dict[int, tuple[CallKind, int]] = field(default_factory=dict)
    answered: dict[int, int] = field(default_factory=dict)
    started: dict[int, int] = field(default_factory=dict)
    """Activities whose worker reported the start of their time-out clock (TaskStarted)."""

    def call(self, kind: CallKind, call_id: int, event_type: str, seq: int) -> Finding | None:
        before = self.made.get(call_id)
        if call_id >= 0 and before is None:
            self.made[call_id] = (kind, seq)
            return None
        already = f" (already used at seq {before[1]})" if before is not None else ""
        if before is None:
            self.made[call_id] = (kind, seq)
        return "action-id-unique", f"{event_type} with action id {call_id}{already}"

    def answer(self, kind: CallKind, call_id: int, event_type: str, seq: int) -> Finding | None:
        never = self._never_made(kind, call_id, event_type)
        if never is not None:
            return never
        earlier = self.answered.get(call_id)
        if earlier is not None:
            return _TWICE[kind], (
                f"{event_type} for {kind.value} #{call_id}, answered already at seq {earlier}"
            )
        self.answered[call_id] = seq
        return None

    def start(self, task_id: int, seq: int) -> Finding | None:
        never = self._never_made(CallKind.ACTIVITY, task_id, "TaskStarted")
        if never is not None:
            return never
        before, answered = self.started.get(task_id), self.answered.get(task_id)
        if before is not None:
            return (
                "task-once",
                f"TaskStarted for activity #{task_id}, started already at seq {before}",
            )
        if answered is not None:
            return "task-once", f"TaskStarted for activity #{task_id}, answered at seq {answered}"
        self.started[task_id] = seq
        return None

    def _never_made(self, kind: CallKind, call_id: int, event_type: str) -> Finding | None:
        made = self.made.get(call_id)
        if made is not None and made[0] is kind:
            return None
        instead = f" (#{call_id} is a call of another kind: {made[0].value})" if made else ""
        return _NEVER_MADE[kind], (
            f"{event_type} for {kind.value} #{call_id}, which the execution did not call "
            f"before{instead}"
        )
