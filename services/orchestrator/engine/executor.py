"""The replay engine: runs orchestrator code against its history and decides what comes next.

``OrchestrationExecutor`` keeps one instance's code alive between episodes. Feed it the stored
history once (``replay``), then each batch of new events (``execute``); every call to
``execute`` returns a ``Decision``: the events to append after the new ones. Because the code
stays suspended at its last ``yield``, a cached instance costs the same per step whether its
history holds a hundred events or ten thousand.

It never raises for anything orchestrator code does: an exception escaping the code, and a
history the code no longer matches, both end the execution as Failed in the decision.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import JsonValue

from contracts import (
    EventRaised,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from contracts.values import to_json_value
from services.orchestrator.engine.actions import (
    Action,
    CreateTimer,
    ScheduleTask,
    describe_event,
    matches,
)
from services.orchestrator.engine.context import OrchestrationContext
from services.orchestrator.engine.errors import (
    EventTimeoutError,
    NonDeterminismError,
    OrchestratorYieldError,
    TaskFailedError,
)
from services.orchestrator.engine.tasks import (
    CompletableTask,
    EventWithTimeoutTask,
    ExternalEventTask,
    Task,
    TimerTask,
)

OrchestratorFunction = Callable[[OrchestrationContext], Any]
_Code = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]

_TERMINAL_EVENTS = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated)


@dataclass
class Decision:
    """What one episode decided.

    Attributes:
        new_events: events to append after the episode's inbound events: one per new action,
            then the completion event if the execution ended.
        status: ``Running``, or the terminal status the execution reached.
        custom_status: the value last passed to ``set_custom_status``.
        output: the orchestrator's return value, when it completed.
        failure: why it failed, when it failed.
        non_determinism: set when the failure is a history mismatch.
        cancelled_timers: ids of timers the code cancelled in this episode.
    """

    new_events: list[HistoryEvent] = field(default_factory=list)
    status: OrchestrationStatus = OrchestrationStatus.RUNNING
    custom_status: JsonValue = None
    output: JsonValue = None
    failure: FailureDetails | None = None
    non_determinism: NonDeterminismError | None = None
    cancelled_timers: list[int] = field(default_factory=list)


class OrchestrationExecutor:
    """One instance's orchestrator code, driven by its history. Pure: no I/O, clock or random."""

    def __init__(self, orchestrator: OrchestratorFunction, instance_id: str) -> None:
        self._orchestrator = orchestrator
        self.context = OrchestrationContext(self, instance_id)
        self._code: _Code | None = None
        self._awaiting: Task[Any] | None = None
        self._next_action_id = 0
        self._pending_actions: dict[int, Action] = {}
        self._open_tasks: dict[int, CompletableTask[Any]] = {}
        self._event_waiters: dict[str, deque[ExternalEventTask[Any]]] = {}
        self._event_buffer: dict[str, deque[JsonValue]] = {}
        self._completion: HistoryEvent | None = None
        self._completion_recorded = False
        self._output: JsonValue = None
        self._failure: FailureDetails | None = None
        self._non_determinism: NonDeterminismError | None = None
        self._started = False
        self._cancelled_timers: list[int] = []
        self._suspended = False
        self._deferred: list[Callable[[], None]] = []

    # --- public entry points -----------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        """True once the execution has completed, failed or been terminated."""
        return self._completion is not None

    def replay(self, history: Iterable[HistoryEvent]) -> None:
        """Re-run the code over events already in the store. Produces nothing new."""
        self.context._is_replaying = True
        try:
            for event in history:
                self._apply(event)
        finally:
            self.context._is_replaying = False
            # Cancellations during replay were reported when they first happened.
            self._cancelled_timers.clear()

    def execute(self, new_events: Sequence[HistoryEvent]) -> Decision:
        """Apply new events and return what to append after them."""
        for event in new_events:
            self.apply_new(event)
        return self.decide()

    def apply_new(self, event: HistoryEvent) -> None:
        """Apply one new event (check ``accepts`` first for inbound events)."""
        self.context._is_replaying = False
        self._apply(event)

    def decide(self) -> Decision:
        """What the events applied since the last decision lead to; resets the new actions."""
        timestamp = self.context.current_utc_datetime
        decision = Decision(custom_status=self.context.custom_status)
        for action in self._pending_actions.values():
            decision.new_events.append(action.to_event(timestamp))
        self._pending_actions.clear()
        if self._completion is not None and not self._completion_recorded:
            decision.new_events.append(self._completion)
            self._completion_recorded = True
        decision.status = self.status
        decision.output = self._output
        decision.failure = self._failure
        decision.non_determinism = self._non_determinism
        decision.cancelled_timers = self._cancelled_timers
        self._cancelled_timers = []
        return decision

    def accepts(self, event: HistoryEvent) -> bool:
        """Whether an inbound event still means something to this execution.

        Results for tasks that are no longer open (duplicates, fires of cancelled timers) and
        anything after the end are not recorded.
        """
        if self.is_finished:
            return False
        match event:
            case ExecutionStarted():
                return not self._started
            case TaskCompleted(task_scheduled_id=task_id) | TaskFailed(task_scheduled_id=task_id):
                task = self._open_tasks.get(task_id)
                return task is not None and not isinstance(task, TimerTask)
            case ExecutionSuspended():
                return not self._suspended
            case ExecutionResumed():
                return self._suspended
            case TimerFired(timer_id=timer_id):
                # A cancelled timer stays open (nothing tells the store to drop it), so its
                # fire must be refused here; ids of activities are not timers either.
                timer = self._open_tasks.get(timer_id)
                return isinstance(timer, TimerTask) and not timer.is_cancelled
            case _:
                return True

    @property
    def status(self) -> OrchestrationStatus:
        match self._completion:
            case None if self._suspended:
                return OrchestrationStatus.SUSPENDED
            case None:
                return OrchestrationStatus.RUNNING
            case ExecutionCompleted():
                return OrchestrationStatus.COMPLETED
            case ExecutionTerminated():
                return OrchestrationStatus.TERMINATED
            case _:
                return OrchestrationStatus.FAILED

    # --- called by the context ---------------------------------------------------------------

    def schedule_task(self, name: str, input_: JsonValue) -> Task[Any]:
        task_id = self._new_action_id()
        task: CompletableTask[Any] = CompletableTask(task_id, f"activity {name!r}")
        self._pending_actions[task_id] = ScheduleTask(task_id, name, input_)
        self._open_tasks[task_id] = task
        return task

    def create_timer(self, fire_at: datetime) -> TimerTask:
        timer_id = self._new_action_id()
        timer = TimerTask(timer_id, f"timer at {fire_at.isoformat()}", self._timer_cancelled)
        self._pending_actions[timer_id] = CreateTimer(timer_id, fire_at)
        self._open_tasks[timer_id] = timer
        return timer

    def wait_for_event(self, name: str, timeout: timedelta | None = None) -> Task[Any]:
        key = name.casefold()
        task: ExternalEventTask[Any] = ExternalEventTask(name)
        buffered = self._event_buffer.get(key)
        if buffered:
            task._complete(buffered.popleft())
        else:
            self._event_waiters.setdefault(key, deque()).append(task)
        if timeout is None or task.is_completed:
            return task
        timer = self.create_timer(self.context.current_utc_datetime + timeout)

        def timed_out() -> BaseException:
            waiters = self._event_waiters.get(key)
            if waiters and task in waiters:
                waiters.remove(task)
            return EventTimeoutError(name, timeout.total_seconds())

        return EventWithTimeoutTask(task, timer, timed_out)

    def _timer_cancelled(self, timer: TimerTask) -> None:
        self._cancelled_timers.append(timer.id)

    def _new_action_id(self) -> int:
        action_id = self._next_action_id
        self._next_action_id += 1
        return action_id

    # --- applying events ---------------------------------------------------------------------

    def _apply(self, event: HistoryEvent) -> None:
        if isinstance(event, _TERMINAL_EVENTS):
            self._on_terminal_event(event)
            return
        # Code that has finished may still have actions to match: those it scheduled in its
        # last step are recorded just before the completion, and a recorded action it no
        # longer reaches means the code now finishes earlier than it did.
        if self.is_finished and not isinstance(event, TaskScheduled | TimerCreated):
            return
        try:
            self._dispatch(event)
        except NonDeterminismError as error:
            if self._non_determinism is None:
                self._fail_non_deterministic(error)
            return
        self._resume()

    def _dispatch(self, event: HistoryEvent) -> None:
        match event:
            case OrchestratorStarted(timestamp=timestamp):
                self.context._current_utc_datetime = timestamp
            case ExecutionStarted():
                self._start(event)
            case TaskScheduled() | TimerCreated():
                self._match_recorded_action(event)
            case TaskCompleted(task_scheduled_id=task_id, result=result):
                task = self._open_tasks.pop(task_id, None)
                if task is not None:
                    self._deliver(functools.partial(task._complete, result))
            case TaskFailed(task_scheduled_id=task_id, failure=failure):
                task = self._open_tasks.pop(task_id, None)
                if task is not None:
                    self._deliver(functools.partial(task._fail, _task_failed_error(task, failure)))
            case TimerFired(timer_id=timer_id):
                timer = self._open_tasks.pop(timer_id, None)
                if isinstance(timer, TimerTask) and not timer.is_cancelled:
                    self._deliver(functools.partial(timer._complete, None))
            case EventRaised(name=name, input=data):
                self._deliver(functools.partial(self._deliver_event, name, data))
            case ExecutionSuspended():
                self._suspended = True
            case ExecutionResumed():
                self._suspended = False
                deferred, self._deferred = self._deferred, []
                for delivery in deferred:
                    delivery()
                    self._resume()
            case _:
                # Events of features this engine does not drive yet are recorded and skipped.
                pass

    def _deliver(self, delivery: Callable[[], None]) -> None:
        """Hand an outcome to the code now, or, while suspended, when the instance resumes."""
        if self._suspended:
            self._deferred.append(delivery)
        else:
            delivery()

    def _on_terminal_event(self, event: HistoryEvent) -> None:
        if isinstance(event, ExecutionTerminated) and not self.is_finished:
            self._output = event.reason
            self._finish(event)
        self._completion_recorded = True

    def _start(self, event: ExecutionStarted) -> None:
        self._started = True
        self.context._input = event.input
        if event.parent is not None:
            self.context._parent_instance_id = event.parent.instance_id
        try:
            result = self._orchestrator(self.context)
        except Exception as error:
            self._fail(error)
            return
        if inspect.isgenerator(result) or inspect.iscoroutine(result):
            self._code = result
            self._step_code(None, None)
        else:
            self._succeed(result)

    def _match_recorded_action(self, event: TaskScheduled | TimerCreated) -> None:
        action = self._pending_actions.pop(event.event_id, None)
        if action is None:
            raise NonDeterminismError(
                self.context.instance_id,
                event.event_id,
                describe_event(event),
                "nothing at that point (the code did not schedule it)",
            )
        if not matches(action, event):
            raise NonDeterminismError(
                self.context.instance_id, event.event_id, describe_event(event), action.describe()
            )

    def _deliver_event(self, name: str, data: JsonValue) -> None:
        key = name.casefold()
        waiters = self._event_waiters.get(key)
        if waiters:
            waiters.popleft()._complete(data)
        else:
            self._event_buffer.setdefault(key, deque()).append(data)

    # --- driving the code --------------------------------------------------------------------

    def _resume(self) -> None:
        while self._code is not None and self._awaiting is not None and self._awaiting.is_completed:
            task, self._awaiting = self._awaiting, None
            if task.is_faulted:
                assert task.exception is not None
                self._step_code(None, task.exception)
            else:
                self._step_code(task.result, None)

    def _step_code(self, value: Any, error: BaseException | None) -> None:
        assert self._code is not None
        while True:
            try:
                yielded = self._code.send(value) if error is None else self._code.throw(error)
            except StopIteration as stop:
                self._succeed(stop.value)
                return
            except Exception as exc:
                self._fail(exc)
                return
            if not isinstance(yielded, Task):
                value, error = (
                    None,
                    OrchestratorYieldError(
                        f"orchestrator yielded {type(yielded).__name__!s} ({yielded!r:.60}); "
                        "orchestrators may only yield or await tasks from the context "
                        "(call_activity, create_timer, task_all, ...), never asyncio objects"
                    ),
                )
                continue
            if not yielded.is_completed:
                self._awaiting = yielded
                return
            if yielded.is_faulted:
                value, error = None, yielded.exception
            else:
                value, error = yielded.result, None

    def _succeed(self, value: Any) -> None:
        try:
            output = to_json_value(value, "the orchestrator's output")
        except TypeError as error:
            self._fail(error)
            return
        self._output = output
        self._finish(ExecutionCompleted(timestamp=self.context.current_utc_datetime, result=output))

    def _fail(self, error: BaseException) -> None:
        # A failed execution has no further effects: what the code scheduled in the step that
        # failed (or, after a history mismatch, what diverged code asked for) is not dispatched.
        self._pending_actions.clear()
        self._output = None
        self._failure = FailureDetails.from_exception(error)
        self._finish(
            ExecutionFailed(timestamp=self.context.current_utc_datetime, failure=self._failure)
        )

    def _fail_non_deterministic(self, error: NonDeterminismError) -> None:
        self._non_determinism = error
        self._fail(error)

    def _finish(self, completion: HistoryEvent) -> None:
        self._completion = completion
        if self._code is not None:
            code, self._code = self._code, None
            # Code that swallows GeneratorExit makes close() raise; the execution has ended
            # either way, so there is nothing more to report.
            with contextlib.suppress(Exception):
                code.close()
        self._awaiting = None


def _task_failed_error(task: CompletableTask[Any], failure: FailureDetails) -> TaskFailedError:
    return TaskFailedError(
        f"{task.description} failed: {failure.error_type}: {failure.message}", failure
    )


def replay(
    orchestrator: OrchestratorFunction,
    instance_id: str,
    history: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent] = (),
) -> Decision:
    """Replay ``history`` through ``orchestrator``, apply ``new_events``, return the decision."""
    executor = OrchestrationExecutor(orchestrator, instance_id)
    executor.replay(history)
    return executor.execute(new_events)
