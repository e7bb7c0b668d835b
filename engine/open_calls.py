"""The calls orchestrator code awaits from outside, and how their outcomes reach it.

``OpenCalls`` holds the code's open activities, sub-orchestrations and timers by id, the
time-out timer of each activity that has one, the calls whose failure reached the code, and
the kind of every call ever made, so that an answer for a call that has closed (normal under
at-least-once delivery) can be told from one for a call never made.
An outcome the history brings (a result, a failure, a fire) becomes a delivery: a callable
that completes or fails the awaited task. The executor runs it at once, or keeps it until a
suspended instance resumes.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any

from pydantic import JsonValue

from contracts import FailureDetails
from contracts.typed import BoundaryError
from durable.errors import ActivityTimeoutError, EntityOperationFailedError, TaskFailedError
from durable.tasks import (
    ActivityCallTask,
    CompletableTask,
    EntityCallTask,
    LockTask,
    SubOrchestrationTask,
    TimerTask,
)
from engine.refusal import Refusal

Delivery = Callable[[], None]


class CallKind(enum.IntEnum):
    """What a call id was made for (its action event: TaskScheduled, TimerCreated,
    SubOrchestrationInstanceCreated)."""

    ACTIVITY = 1
    TIMER = 2
    SUB_ORCHESTRATION = 3
    ENTITY_CALL = 4
    LOCK = 5

    @property
    def description(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def of(cls, task: CompletableTask[Any]) -> CallKind:
        if isinstance(task, TimerTask):
            return cls.TIMER
        if isinstance(task, SubOrchestrationTask):
            return cls.SUB_ORCHESTRATION
        if isinstance(task, EntityCallTask):
            return cls.ENTITY_CALL
        if isinstance(task, LockTask):
            return cls.LOCK
        return cls.ACTIVITY


class OpenCalls:
    """One execution's open calls by id, and the deliveries their outcomes become."""

    def __init__(self) -> None:
        self._tasks: dict[int, CompletableTask[Any]] = {}
        self._timeouts: dict[int, ActivityCallTask[Any]] = {}  # timer id -> activity it limits
        self._failed: dict[int, CompletableTask[Any]] = {}
        # The kind of each call ever made, by id: ids are numbered from 0 without gaps, so
        # a byte each (an instance of ten thousand steps keeps ten kilobytes).
        self._kinds = bytearray()

    def add(self, task: CompletableTask[Any]) -> None:
        self._tasks[task.id] = task
        if task.id >= len(self._kinds):
            self._kinds.extend(bytes(task.id + 1 - len(self._kinds)))
        self._kinds[task.id] = CallKind.of(task)

    def get(self, call_id: int) -> CompletableTask[Any] | None:
        return self._tasks.get(call_id)

    def answer_refusal(
        self, call_id: int, kind: CallKind, *, starting: bool = False
    ) -> Refusal | None:
        """Why an answer (a result, a failure, a fire; with ``starting``, an activity's
        ``TaskStarted``) for call ``call_id`` of ``kind`` is not taken, if it is not: no such
        call was made, or it is no longer awaited (or, starting, has no clock to start)."""
        made = self._kinds[call_id] if 0 <= call_id < len(self._kinds) else 0
        if made != kind:
            return Refusal(f"no {kind.description} #{call_id} was scheduled", never_scheduled=True)
        task = self._tasks.get(call_id)
        if task is None or (isinstance(task, TimerTask) and task.is_cancelled):
            return Refusal(f"{kind.description} #{call_id} is no longer awaited")
        if starting and not _clock_to_start(task):
            return Refusal(f"activity #{call_id} has no start-to-close clock left to start")
        return None

    def ids(self) -> set[int]:
        """Ids of the activities, sub-orchestrations and (uncancelled) timers still awaited."""
        return {
            call_id
            for call_id, task in self._tasks.items()
            if not (isinstance(task, TimerTask) and task.is_cancelled)
        }

    def final_failures(self) -> set[int]:
        """Ids of calls whose failure reached the code (no retry policy tried them again)."""
        return {call_id for call_id, task in self._failed.items() if not task.retried}

    def limit(self, activity: ActivityCallTask[Any], timer: TimerTask) -> None:
        """``timer`` is ``activity``'s time-out: its fire fails the activity."""
        activity.timeout_timer = timer
        self._timeouts[timer.id] = activity

    def settle(
        self, call_id: int, result: JsonValue, failure: FailureDetails | None
    ) -> Delivery | None:
        """An activity's or sub-orchestration's outcome (nothing for a call no longer open)."""
        task = self._tasks.pop(call_id, None)
        if task is None:
            return None
        if isinstance(task, ActivityCallTask) and task.timeout_timer is not None:
            task.timeout_timer.cancel()
        if failure is not None:
            self._failed[call_id] = task
            return functools.partial(task._fail, _task_failed_error(task, failure))
        if task.converter is not None:
            try:
                result = task.converter(result)
            except BoundaryError as error:
                return functools.partial(task._fail, error)
        return functools.partial(task._complete, result)

    def timer_fired(self, timer_id: int) -> Delivery | None:
        """A timer's fire: the timer completes, or the activity it limits times out (nothing
        for a cancelled timer, or one whose activity has already finished)."""
        timer = self._tasks.pop(timer_id, None)
        if not isinstance(timer, TimerTask) or timer.is_cancelled:
            return None
        limited = self._timeouts.pop(timer_id, None)
        if limited is None:
            return functools.partial(timer._complete, None)
        if self._tasks.pop(limited.id, None) is None:
            return None
        assert limited.timeout is not None
        error = ActivityTimeoutError(limited.description, limited.timeout.total_seconds())
        return functools.partial(limited._fail, error)


def _clock_to_start(task: CompletableTask[Any]) -> bool:
    """Whether ``task`` is an activity with a time-out whose clock has not started yet."""
    return (
        isinstance(task, ActivityCallTask)
        and task.timeout is not None
        and task.timeout_timer is None
    )


def _task_failed_error(task: CompletableTask[Any], failure: FailureDetails) -> TaskFailedError:
    message = f"{task.description} failed: {failure.error_type}: {failure.message}"
    if isinstance(task, EntityCallTask):
        return EntityOperationFailedError(message, failure)
    if failure.error_type == "ActivityTimeoutError":
        # Reported by the worker rather than by the orchestrator's own timer: the same error.
        return ActivityTimeoutError.reported(message, failure)
    return TaskFailedError(message, failure)
