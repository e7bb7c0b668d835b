"""Which inbound events an execution takes, and why it refuses the others.

Kept apart from the executor, which applies what is taken: the rules read only what the
execution has ended with, whether it has started or is suspended, and its calls.
"""

from __future__ import annotations

from contracts import (
    ContinueAsNew,
    EntityLockGranted,
    EntityOperationCompleted,
    EntityOperationFailed,
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TimerFired,
)
from engine.actions import PendingActions
from engine.entity_actions import ENTITY_ACTION_EVENTS
from engine.open_calls import CallKind, OpenCalls
from engine.refusal import Refusal


def inbound_refusal(
    event: HistoryEvent,
    *,
    completion: HistoryEvent | None,
    started: bool,
    suspended: bool,
    actions: PendingActions,
    calls: OpenCalls,
) -> Refusal | None:
    """Why an inbound event is not recorded, or None when it is taken.

    Results for calls that are no longer open (duplicates, fires of cancelled timers,
    results of tasks that timed out) and anything after the end (``completion``) are refused
    as normal, except events raised to an execution that continues as new (they may be
    carried over). An answer for a call this execution never made is refused as
    ``never_scheduled``.
    """
    if completion is not None:
        if isinstance(event, EventRaised) and isinstance(completion, ContinueAsNew):
            return None
        return Refusal("the execution has ended")

    def answer(call_id: int, kind: CallKind, *, starting: bool = False) -> Refusal | None:
        if actions.holds(call_id):
            # Asked for in this very episode: nothing was sent yet that could answer it.
            return Refusal(f"{kind.description} #{call_id} is not scheduled yet", True)
        return calls.answer_refusal(call_id, kind, starting=starting)

    match event:
        case ExecutionStarted():
            return Refusal("the execution has started already") if started else None
        case TaskCompleted(task_scheduled_id=task_id) | TaskFailed(task_scheduled_id=task_id):
            return answer(task_id, CallKind.ACTIVITY)
        case TaskStarted(task_scheduled_id=task_id):
            return answer(task_id, CallKind.ACTIVITY, starting=True)
        case SubOrchestrationInstanceCompleted(task_scheduled_id=task_id) | (
            SubOrchestrationInstanceFailed(task_scheduled_id=task_id)
        ):
            return answer(task_id, CallKind.SUB_ORCHESTRATION)
        case ExecutionSuspended():
            return Refusal("the execution is suspended already") if suspended else None
        case ExecutionResumed():
            return None if suspended else Refusal("the execution is not suspended")
        case TimerFired(timer_id=timer_id):
            # A cancelled timer stays open until its fire is refused here.
            return answer(timer_id, CallKind.TIMER)
        case EntityOperationCompleted(task_scheduled_id=task_id) | (
            EntityOperationFailed(task_scheduled_id=task_id)
        ):
            return answer(task_id, CallKind.ENTITY_CALL)
        case EntityLockGranted(task_scheduled_id=task_id):
            return answer(task_id, CallKind.LOCK)
        case _ if isinstance(event, ENTITY_ACTION_EVENTS):
            return Refusal("an entity request sent to an orchestration", True)
        case _:
            return None
