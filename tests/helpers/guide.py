"""Running the user guide's examples (docs/guide) through the replay engine, for the tests
``tests/unit/test_guide_*.py``: finding the tagged blocks, loading one as a module, and
``Run``, a small in-process runtime over ``OrchestrationExecutor`` (activities in-process or
faked, timers fired in order, children run to completion, every finished run replayed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts import (
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerCreated,
    TimerFired,
)
from contracts.typed import BoundaryError
from contracts.values import to_json_value
from durable import (
    ActivityContext,
    FunctionApp,
)
from engine import Decision, OrchestrationExecutor, replay
from tests.helpers.history import T0, HistoryBuilder

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
TAGGED_EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```python\n(.*?)```", re.DOTALL)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def guide_pages() -> list[Path]:
    return sorted(GUIDE.glob("*.md"))


def tagged_examples() -> dict[str, tuple[str, str]]:
    examples: dict[str, tuple[str, str]] = {}
    for page in guide_pages():
        for name, source in TAGGED_EXAMPLE.findall(page.read_text(encoding="utf-8")):
            assert name not in examples, f"example {name!r} is tagged twice"
            examples[name] = (page.name, source)
    return examples


EXAMPLES = tagged_examples()


def load(name: str, edits: dict[str, str] | None = None) -> dict[str, Any]:
    """Execute the example ``name`` as a module; ``edits`` replace text in it first."""
    page, source = EXAMPLES[name]
    for old, new in (edits or {}).items():
        assert old in source, f"{old!r} is not in example {name!r}"
        source = source.replace(old, new)
    module: dict[str, Any] = {"__name__": f"guide_{name.replace('-', '_')}"}
    exec(compile(source, f"docs/guide/{page}#{name}", "exec"), module)
    return module


def app_of(module: dict[str, Any]) -> FunctionApp:
    (app,) = [value for value in module.values() if isinstance(value, FunctionApp)]
    return app


# --- a small in-process runtime over the engine ------------------------------------------------

Activity = Callable[[Any], Any]


class Run:
    """One instance driven through the engine, the way the orchestrator service drives it.

    Activities complete one second after they are scheduled (all open ones in one episode);
    when none is open, the earliest timer fires at its time. Activities named in ``hold`` are
    started (``TaskStarted``) but never finish. Sub-orchestrations run to completion inline;
    ``continue_as_new`` starts the next execution at once.
    """

    def __init__(
        self,
        app: FunctionApp,
        name: str,
        input: Any = None,
        *,
        activities: dict[str, Activity] | None = None,
        hold: frozenset[str] = frozenset(),
        instance_id: str = "guide-1",
        start: datetime = T0,
        parent: ParentInstance | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.instance_id = instance_id
        self.fakes = activities or {}
        self.hold = hold
        self.parent = parent
        self.calls: list[tuple[str, Any]] = []
        self.executions = 0
        self.histories: list[list[HistoryEvent]] = []
        self._begin(input, start)

    def _begin(
        self, input: Any, start: datetime, carried: tuple[tuple[str, Any], ...] = ()
    ) -> None:
        self.executions += 1
        self.history = HistoryBuilder(start)
        self.history.add(OrchestratorStarted(timestamp=start))
        self.history.add(
            ExecutionStarted(
                timestamp=start,
                name=self.name,
                execution_id=f"e{self.executions}0000000",
                input=input,
                parent=self.parent,
            )
        )
        for event_name, data in carried:
            self.history.raised(event_name, data)
        self.open_tasks: dict[int, TaskScheduled] = {}
        self.timers: dict[int, datetime] = {}
        self.executor = OrchestrationExecutor(self.app.orchestrators[self.name], self.instance_id)
        self._execute(list(self.history.events))

    # --- driving ----------------------------------------------------------------------------

    @property
    def status(self) -> OrchestrationStatus:
        return self.decision.status

    @property
    def output(self) -> Any:
        return self.decision.output

    def run(self, max_steps: int = 10_000) -> Run:
        """Step until the instance has ended or waits only for external events."""
        for _ in range(max_steps):
            if not self.step():
                return self
        raise AssertionError(f"{self.name} did not settle in {max_steps} steps")

    def run_activities(self) -> Run:
        """Step while activities are open: stop where only timers or events are awaited."""
        while self.step(timers=False):
            pass
        return self

    def step(self, *, timers: bool = True) -> bool:
        if self.decision.status.is_terminal:
            return False
        runnable = {i: t for i, t in self.open_tasks.items() if t.name not in self.hold}
        if runnable:
            self._episode(1, lambda h: [self._complete(h, i, t) for i, t in runnable.items()])
            return True
        if timers and self.timers:
            timer_id, fire_at = min(self.timers.items(), key=lambda item: item[1])
            self._episode(
                max((fire_at - self.history.now).total_seconds(), 0),
                lambda h: h.timer_fired(timer_id, fire_at),
            )
            return True
        return False

    def raise_event(self, name: str, data: Any = None, after_seconds: float = 1) -> Run:
        self._episode(after_seconds, lambda h: h.raised(name, data))
        return self

    def rebuild(self) -> Run:
        """Forget the live executor and replay the stored history, as after a restart."""
        self.executor = OrchestrationExecutor(self.app.orchestrators[self.name], self.instance_id)
        self.executor.replay(self.history.events)
        return self

    def replays_identically(self) -> bool:
        again = replay(self.app.orchestrators[self.name], self.instance_id, self.history.events)
        return again.non_determinism is None and again.status is self.decision.status

    # --- internals --------------------------------------------------------------------------

    def _episode(self, seconds: float, add: Callable[[HistoryBuilder], Any]) -> Decision:
        first = len(self.history.events)
        self.history.episode(seconds)
        add(self.history)
        return self._execute(self.history.events[first:])

    def _execute(self, new_events: list[HistoryEvent]) -> Decision:
        decision = self.executor.execute(new_events)
        self.history.events.extend(decision.new_events)
        self.decision = decision
        for event in decision.new_events:
            if isinstance(event, TaskScheduled):
                self.open_tasks[event.event_id] = event
                if event.name in self.hold and event.timeout_seconds is not None:
                    self._started_later(event.event_id)
            elif isinstance(event, TimerCreated):
                self.timers[event.event_id] = event.fire_at
            elif isinstance(event, SubOrchestrationInstanceCreated):
                self._run_child(event)
        for timer_id in decision.cancelled_timers:
            self.timers.pop(timer_id, None)
        for event in new_events:
            if isinstance(event, TimerFired):
                self.timers.pop(event.timer_id, None)
        if decision.continue_as_new is not None:
            self.histories.append(list(self.history.events))
            request = decision.continue_as_new
            self._begin(request.input, self.history.now, request.carried_events)
        return decision

    def _started_later(self, task_id: int) -> None:
        # The worker picks the task up one second later and reports it started.
        self.history.episode(1)
        started = TaskStarted(timestamp=self.history.now, task_scheduled_id=task_id)
        self.history.add(started)
        self._execute(self.history.events[-2:])

    def _complete(self, history: HistoryBuilder, task_id: int, task: TaskScheduled) -> None:
        del self.open_tasks[task_id]
        self.calls.append((task.name, task.input))
        try:
            result = self._call(task)
        except Exception as error:
            failure = FailureDetails.from_exception(error)
            if isinstance(error, BoundaryError):  # as the worker reports it
                failure = failure.model_copy(update={"is_non_retriable": True})
            history.add(
                TaskFailed(timestamp=history.now, task_scheduled_id=task_id, failure=failure)
            )
        else:
            history.completed(task_id, to_json_value(result, f"the output of {task.name!r}"))

    def _call(self, task: TaskScheduled) -> Any:
        if task.name in self.fakes:
            return self.fakes[task.name](task.input)
        definition = self.app.activities[task.name]
        context = ActivityContext(
            instance_id=self.instance_id,
            execution_id=f"e{self.executions}",
            task_id=task.event_id,
            name=task.name,
            attempt=task.attempt,
        )
        arguments = definition.arguments(task.input, context)
        if definition.is_async:
            return definition.checked_output(asyncio.run(definition.function(**arguments)))
        return definition.checked_output(definition.function(**arguments))

    def _run_child(self, created: SubOrchestrationInstanceCreated) -> None:
        parent = ParentInstance(
            instance_id=self.instance_id,
            execution_id=f"e{self.executions}",
            task_scheduled_id=created.event_id,
            name=self.name,
        )
        child = Run(
            self.app,
            created.name,
            created.input,
            activities=self.fakes,
            instance_id=created.instance_id,
            start=self.history.now,
            parent=parent,
        ).run()
        first = len(self.history.events)
        self.history.episode(1)
        if child.status is OrchestrationStatus.COMPLETED:
            self.history.add(
                SubOrchestrationInstanceCompleted(
                    timestamp=self.history.now,
                    task_scheduled_id=created.event_id,
                    result=child.output,
                )
            )
        else:
            assert child.decision.failure is not None
            self.history.add(
                SubOrchestrationInstanceFailed(
                    timestamp=self.history.now,
                    task_scheduled_id=created.event_id,
                    failure=child.decision.failure,
                )
            )
        self.calls += child.calls
        self._execute(self.history.events[first:])


def failing(error: Exception, times: int = 1_000_000) -> Activity:
    """A fake activity that raises ``error`` ``times`` times, then returns "ok"."""
    remaining = [times]

    def activity(_input: Any) -> str:
        if remaining[0] > 0:
            remaining[0] -= 1
            raise error
        return "ok"

    return activity


def raising_for(account: str, error: Exception) -> Activity:
    """A fake ``credit_account`` that refuses one account."""

    def activity(credit: dict[str, Any]) -> None:
        if credit["account"] == account:
            raise error

    return activity


def sequence(*results: Any) -> Activity:
    values = iter(results)
    return lambda _input: next(values)
