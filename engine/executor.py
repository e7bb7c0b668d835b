"""The replay engine: runs orchestrator code against its history and decides what comes next.

``OrchestrationExecutor`` keeps one instance's code alive between episodes. Feed it the stored
history once (``replay``), then each episode's new events (``apply_new``, after checking
``refusal``) and ask for the ``decide``-d outcome: the events to append after the new ones.
Because the code stays suspended at its last ``yield``, a cached instance costs the same per
step whether its history holds a hundred events or ten thousand.

It never raises for anything orchestrator code does: an exception escaping the code, and a
history the code no longer matches, both end the execution as Failed in the decision.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import JsonValue

from contracts import (
    ContinueAsNew,
    EntityLockGranted,
    EntityOperationCompleted,
    EntityOperationFailed,
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
from contracts.limits import ValueRefusedError, check_instance_id
from contracts.typed import BoundaryError, checked
from contracts.values import to_json_value
from durable.context import function_name
from durable.errors import (
    EventTimeoutError,
    NonDeterminismError,
)
from durable.tasks import (
    ActivityCallTask,
    EventWithTimeoutTask,
    SubOrchestrationTask,
    Task,
    TimerTask,
)
from engine.actions import (
    CreateSubOrchestration,
    CreateTimer,
    PendingActions,
    ScheduleTask,
)
from engine.child_ids import default_child_id
from engine.context import ReplayContext
from engine.decision import ContinueAsNewAsked, ContinueAsNewRequest, Decision
from engine.entity_actions import ENTITY_ACTION_EVENTS
from engine.entity_calls import EntityCalls
from engine.external_events import ExternalEvents
from engine.inbound import inbound_refusal
from engine.open_calls import Delivery, OpenCalls
from engine.refusal import Refusal
from engine.suspended import SuspendedCode
from engine.typing_boundaries import orchestrator_types

# Called with the context, and with the input too when it takes a second parameter.
OrchestratorFunction = Callable[..., Any]
_Code = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]

_ENDINGS = (ExecutionCompleted, ExecutionFailed, ExecutionTerminated, ContinueAsNew)
_RECORDED_ACTIONS = (
    TaskScheduled,
    TimerCreated,
    SubOrchestrationInstanceCreated,
    *ENTITY_ACTION_EVENTS,
)
_CONTINUE_AS_NEW_NAMESPACE = uuid.UUID("a8d4a5c9-6c0c-4a65-9a53-6b1f4c1d2e77")


class OrchestrationExecutor:
    """One instance's orchestrator code, driven by its history. Pure: no I/O, clock or random."""

    def __init__(self, orchestrator: OrchestratorFunction, instance_id: str) -> None:
        self._orchestrator = orchestrator
        self._description = f"orchestrator {function_name(orchestrator)!r}"
        self.context = ReplayContext(self, instance_id)
        self.execution_id = ""
        self._code: SuspendedCode | None = None
        self._actions = PendingActions()
        self._calls = OpenCalls()
        self.entities = EntityCalls(
            self._actions, self._calls, lambda: (self.context.instance_id, self.execution_id)
        )
        self._events = ExternalEvents()
        self._completion: HistoryEvent | None = None
        self._completion_recorded = False
        self._output: JsonValue = None
        self._failure: FailureDetails | None = None
        self._non_determinism: NonDeterminismError | None = None
        self._started = False
        self._suspended = False
        self._deferred: list[Delivery] = []
        self._continue_as_new: ContinueAsNewAsked | None = None

    # --- public entry points -----------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        """True once the execution has completed, failed, been terminated or continued as new."""
        return self._completion is not None

    @property
    def ended_unrecorded(self) -> bool:
        """The execution ended while replaying its stored history, but the history does not
        say so (its code no longer matches it, or now fails where it did not): the next
        decision records the end."""
        return self._completion is not None and not self._completion_recorded

    def replay(self, history: Iterable[HistoryEvent]) -> None:
        """Re-run the code over events already in the store. Produces nothing new."""
        self.context._is_replaying = True
        try:
            for event in history:
                self._apply(event)
        finally:
            self.context._is_replaying = False
            # Cancellations during replay were reported when they first happened.
            self._actions.take_cancelled_timers()

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
        decision.new_events += self._actions.take_events(timestamp)
        if self._completion is not None and not self._completion_recorded:
            decision.new_events.append(self._completion)
            self._completion_recorded = True
        decision.status = self.status
        decision.output = self._output
        decision.failure = self._failure
        decision.non_determinism = self._non_determinism
        decision.cancelled_timers = self._actions.take_cancelled_timers()
        if isinstance(self._completion, ContinueAsNew):
            asked = self._continue_as_new
            preserve = asked is not None and asked.preserve_unprocessed_events
            decision.continue_as_new = ContinueAsNewRequest(
                input=self._completion.input,
                new_execution_id=self._completion.new_execution_id,
                carried_events=self._events.unprocessed() if preserve else (),
            )
        return decision

    def accepts(self, event: HistoryEvent) -> bool:
        """Whether an inbound event still means something to this execution (``refusal``
        says why not)."""
        return self.refusal(event) is None

    def refusal(self, event: HistoryEvent) -> Refusal | None:
        """Why an inbound event is not recorded, or None when it is taken
        (``engine.refusal.inbound_refusal`` gives the rules)."""
        return inbound_refusal(
            event,
            completion=self._completion,
            started=self._started,
            suspended=self._suspended,
            actions=self._actions,
            calls=self._calls,
        )

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
            case ContinueAsNew():
                return OrchestrationStatus.CONTINUED_AS_NEW
            case _:
                return OrchestrationStatus.FAILED

    def open_call_ids(self) -> set[int]:
        """Ids of the activities, sub-orchestrations and (uncancelled) timers still awaited."""
        return self._calls.ids()

    def final_failures(self) -> set[int]:
        """Ids of tasks whose failure reached the code (no retry policy tried them again)."""
        return self._calls.final_failures()

    # --- called by the context ---------------------------------------------------------------

    def schedule_task(
        self, name: str, input_: JsonValue, *, attempt: int = 1, timeout: timedelta | None = None
    ) -> Task[Any]:
        task_id = self._actions.next_id()
        task: ActivityCallTask[Any] = ActivityCallTask(task_id, f"activity {name!r}", timeout)
        seconds = timeout.total_seconds() if timeout is not None else None
        self._actions.add(ScheduleTask(task_id, name, input_, attempt, seconds))
        self._calls.add(task)
        return task

    def create_timer(self, fire_at: datetime) -> TimerTask:
        timer_id = self._actions.next_id()
        timer = TimerTask(timer_id, f"timer at {fire_at.isoformat()}", self._timer_cancelled)
        self._actions.add(CreateTimer(timer_id, fire_at))
        self._calls.add(timer)
        return timer

    def create_sub_orchestration(
        self, name: str, input_: JsonValue, instance_id: str | None, version: str | None = None
    ) -> Task[Any]:
        task_id = self._actions.next_id()
        child_id = instance_id or default_child_id(
            self.context.instance_id, self.execution_id, task_id
        )
        # Refused in the code that asked for it, as any value it passes on (contracts.limits).
        check_instance_id(child_id, f"the instance id of sub-orchestration {name!r}")
        description = f"sub-orchestration {name!r} (instance {child_id!r})"
        task: SubOrchestrationTask[Any] = SubOrchestrationTask(task_id, description, child_id)
        self._actions.add(CreateSubOrchestration(task_id, name, child_id, input_, version))
        self._calls.add(task)
        return task

    def wait_for_event(self, name: str, timeout: timedelta | None = None) -> Task[Any]:
        task = self._events.wait(name)
        if timeout is None or task.is_completed:
            return task
        timer = self.create_timer(self.context.current_utc_datetime + timeout)

        def timed_out() -> BaseException:
            self._events.withdraw(task)
            return EventTimeoutError(name, timeout.total_seconds())

        return EventWithTimeoutTask(task, timer, timed_out)

    def continue_as_new(self, input_: JsonValue, preserve_unprocessed_events: bool) -> None:
        self._continue_as_new = ContinueAsNewAsked(input_, preserve_unprocessed_events)

    def _timer_cancelled(self, timer: TimerTask) -> None:
        self._actions.timer_cancelled(timer.id)

    # --- applying events ---------------------------------------------------------------------

    def _apply(self, event: HistoryEvent) -> None:
        if isinstance(event, _ENDINGS):
            self._on_ending_event(event)
            return
        if self.is_finished:
            if isinstance(event, EventRaised):
                self._events.keep(event.name, event.input)
            # Code that has finished may still have actions to match: those it scheduled in
            # its last step are recorded just before the completion, and a recorded action it
            # no longer reaches means the code now finishes earlier than it did.
            # After a termination, only an earlier version recorded actions (by mistake).
            terminated = isinstance(self._completion, ExecutionTerminated)
            if terminated or not isinstance(event, _RECORDED_ACTIONS):
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
            case _ if isinstance(event, _RECORDED_ACTIONS):
                self._actions.match(self.context.instance_id, event)
            case TaskStarted(task_scheduled_id=task_id, timestamp=started_at):
                self._start_activity_clock(task_id, started_at)
            case (
                TaskCompleted(task_scheduled_id=task_id, result=result)
                | (SubOrchestrationInstanceCompleted(task_scheduled_id=task_id, result=result))
                | EntityOperationCompleted(task_scheduled_id=task_id, result=result)
            ):
                self._deliver(self._calls.settle(task_id, result, None))
            case (
                TaskFailed(task_scheduled_id=task_id, failure=failure)
                | (SubOrchestrationInstanceFailed(task_scheduled_id=task_id, failure=failure))
                | EntityOperationFailed(task_scheduled_id=task_id, failure=failure)
            ):
                self._deliver(self._calls.settle(task_id, None, failure))
            case EntityLockGranted(task_scheduled_id=task_id):
                self._deliver(self._calls.settle(task_id, None, None))
            case TimerFired(timer_id=timer_id):
                self._deliver(self._calls.timer_fired(timer_id))
            case EventRaised(name=name, input=data):
                self._deliver(functools.partial(self._events.deliver, name, data))
            case ExecutionSuspended():
                self._suspended = True
            case ExecutionResumed():
                self._suspended = False
                deferred, self._deferred = self._deferred, []
                for delivery in deferred:
                    delivery()
                    self._resume()
            case _:
                pass

    def _start_activity_clock(self, task_id: int, started_at: datetime) -> None:
        task = self._calls.get(task_id)
        if not isinstance(task, ActivityCallTask) or task.timeout is None:
            return
        self._calls.limit(task, self.create_timer(started_at + task.timeout))

    def _deliver(self, delivery: Delivery | None) -> None:
        """Hand an outcome to the code now, or, while suspended, when the instance resumes."""
        if delivery is None:
            return
        if self._suspended:
            self._deferred.append(delivery)
        else:
            delivery()

    def _on_ending_event(self, event: HistoryEvent) -> None:
        if isinstance(event, ExecutionTerminated) and not self.is_finished:
            self._output = event.reason
            self._abandon(event)
        self._completion_recorded = True

    def _start(self, event: ExecutionStarted) -> None:
        self._started = True
        self.execution_id = event.execution_id
        self.context._started(event)
        types = orchestrator_types(self._orchestrator)
        try:
            if types.takes_input:
                value = checked(types.input, event.input, self._description, "input")
                result = self._orchestrator(self.context, value)
            else:
                result = self._orchestrator(self.context)
        except Exception as error:
            self._fail(error)
            return
        if inspect.isgenerator(result) or inspect.iscoroutine(result):
            self._code = SuspendedCode(result, self._succeed, self._fail)
            self._code.start()
        else:
            self._succeed(result)

    # --- the code's outcome -----------------------------------------------------------------

    def _resume(self) -> None:
        if self._code is not None:
            self._code.resume()

    def _succeed(self, value: Any) -> None:
        now = self.context.current_utc_datetime
        if self._continue_as_new is not None:
            new_execution_id = uuid.uuid5(
                _CONTINUE_AS_NEW_NAMESPACE, f"{self.context.instance_id}|{self.execution_id}"
            ).hex
            self._finish(
                ContinueAsNew(
                    timestamp=now,
                    input=self._continue_as_new.input,
                    new_execution_id=new_execution_id,
                )
            )
            return
        try:
            checked_value = checked(
                orchestrator_types(self._orchestrator).output, value, self._description, "output"
            )
            output = to_json_value(checked_value, "the orchestrator's output")
        except (TypeError, BoundaryError, ValueRefusedError) as error:
            self._fail(error)
            return
        self._output = output
        self._finish(ExecutionCompleted(timestamp=now, result=output))

    def _fail(self, error: BaseException) -> None:
        self._output = None
        self._failure = FailureDetails.from_exception(error)
        self._abandon(
            ExecutionFailed(timestamp=self.context.current_utc_datetime, failure=self._failure)
        )

    def _abandon(self, completion: HistoryEvent) -> None:
        """End with nothing more dispatched: what the code asked for in the step that failed
        or was terminated (or, after a history mismatch, what diverged code asked for)."""
        self._actions.drop()
        self._finish(completion)

    def _fail_non_deterministic(self, error: NonDeterminismError) -> None:
        self._non_determinism = error
        self._fail(error)

    def _finish(self, completion: HistoryEvent) -> None:
        self.entities.release_on_end()
        self._completion = completion
        if self._code is not None:
            code, self._code = self._code, None
            code.close()


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
