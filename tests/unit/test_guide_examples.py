"""The user guide's examples (docs/guide), run through the replay engine.

Every Python block of the guide must compile. A block preceded by ``<!-- example: NAME -->``
is executed as a module and its orchestrators are driven through ``OrchestrationExecutor``:
activities run in-process (or as fakes standing in for I/O), timers fire in order, children
run to completion, and every finished run must replay to the same outcome. An example that no
longer matches the engine fails here, so the guide cannot drift from the code unnoticed.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

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
    OrchestrationContext,
    RegistrationError,
    TaskFailedError,
)
from services.activities.worker import ActivityTimeoutError as WorkerTimeoutError
from services.orchestrator.engine import Decision, OrchestrationExecutor, replay
from tests.helpers.history import T0, HistoryBuilder

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
_TAGGED = re.compile(r"<!-- example: ([\w-]+) -->\n```python\n(.*?)```", re.DOTALL)
_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _guide_pages() -> list[Path]:
    return sorted(GUIDE.glob("*.md"))


def _tagged_examples() -> dict[str, tuple[str, str]]:
    examples: dict[str, tuple[str, str]] = {}
    for page in _guide_pages():
        for name, source in _TAGGED.findall(page.read_text(encoding="utf-8")):
            assert name not in examples, f"example {name!r} is tagged twice"
            examples[name] = (page.name, source)
    return examples


EXAMPLES = _tagged_examples()


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


# --- every block compiles ----------------------------------------------------------------------


def _all_blocks() -> Iterator[tuple[str, int, str]]:
    for page in _guide_pages():
        for number, source in enumerate(_PYTHON.findall(page.read_text(encoding="utf-8"))):
            yield page.name, number, source


@pytest.mark.parametrize(("page", "number", "source"), list(_all_blocks()))
def test_every_python_block_of_the_guide_compiles(page: str, number: int, source: str) -> None:
    compile(source, f"docs/guide/{page}[{number}]", "exec")


def test_the_guide_has_tagged_examples_on_its_main_pages() -> None:
    pages = {page for page, _ in EXAMPLES.values()}
    expected = {"getting-started.md", "orchestrators.md", "activities.md"}
    assert expected | {"determinism.md", "patterns.md"} <= pages


# --- getting started ---------------------------------------------------------------------------


def test_first_app_greets_everyone_in_order() -> None:
    run = Run(app_of(load("first-app")), "greet", ["Ada", "Grace"]).run()

    assert run.status is OrchestrationStatus.COMPLETED
    assert run.output == ["Hello Ada!", "Hello Grace!"]
    assert run.replays_identically()


def test_first_app_without_input_greets_the_world() -> None:
    assert Run(app_of(load("first-app")), "greet").run().output == ["Hello World!"]


# --- writing orchestrators ---------------------------------------------------------------------


def test_generator_and_async_styles_do_the_same() -> None:
    app = app_of(load("styles"))
    fakes = {"reserve_stock": lambda order: {"reserved": order}, "ship": lambda r: {"shipped": r}}

    outputs = [Run(app, name, {"sku": "A-1"}, activities=fakes).run() for name in app.orchestrators]

    assert [run.output for run in outputs] == [{"shipped": {"reserved": {"sku": "A-1"}}}] * 2
    assert all(run.replays_identically() for run in outputs)


def test_task_all_returns_results_in_the_order_of_the_calls() -> None:
    app = app_of(load("task-all"))
    run = Run(
        app,
        "count_words",
        ["a b", "c", "d e f"],
        activities={"count_words_in": lambda d: len(d.split())},
    )

    run.run()

    assert run.output == {"a b": 2, "c": 1, "d e f": 3}
    scheduled = [e for e in run.history.events if isinstance(e, TaskScheduled)]
    assert [e.event_id for e in scheduled] == [0, 1, 2]  # all dispatched in one step


def test_task_any_takes_the_quote_when_it_comes_first() -> None:
    run = Run(
        app_of(load("task-any")),
        "quote_with_deadline",
        {"item": "bolts"},
        activities={"ask_supplier_for_quote": lambda _: 42},
    ).run()

    assert run.output == {"quote": 42}
    assert run.timers == {}  # the deadline was cancelled
    assert run.replays_identically()


def test_task_any_takes_the_deadline_when_the_supplier_is_silent() -> None:
    run = Run(
        app_of(load("task-any")),
        "quote_with_deadline",
        {"item": "bolts"},
        hold=frozenset({"ask_supplier_for_quote"}),
    ).run()

    assert run.output == {"quote": None, "reason": "the supplier did not answer in 5 minutes"}
    assert run.history.now == T0 + timedelta(minutes=5)


def test_custom_status_shows_progress_and_the_final_value() -> None:
    app = app_of(load("custom-status"))
    run = Run(app, "import_files", ["a.csv", "b.csv"], activities={"import_file": lambda _: None})
    statuses = [run.decision.custom_status]
    while run.step():
        statuses.append(run.decision.custom_status)

    assert statuses == [
        {"importing": "a.csv", "done": 0, "of": 2},
        {"importing": "b.csv", "done": 1, "of": 2},
        {"importing": None, "done": 2, "of": 2},
    ]
    assert run.output == 2


def test_timers_fire_relative_then_absolute() -> None:
    account = {"id": 7, "trial_ends_at": "2026-02-01T00:00:00Z"}
    fakes = {
        name: (lambda _: "done")
        for name in ("send_welcome", "send_trial_ends_tomorrow", "end_trial")
    }

    run = Run(app_of(load("timers")), "trial_period", account, activities=fakes).run()

    fire_times = [e.fire_at for e in run.history.events if isinstance(e, TimerCreated)]
    assert fire_times == [T0 + timedelta(days=13, seconds=1), datetime(2026, 2, 1, tzinfo=UTC)]
    assert run.output == "done"
    assert [name for name, _ in run.calls][-1] == "end_trial"


def test_event_that_arrives_in_time_confirms() -> None:
    fakes = {"send_confirmation_link": lambda _: None}
    run = Run(app_of(load("events")), "confirm_email", {"user": "ada"}, activities=fakes)
    run.run_activities()

    assert run.status is OrchestrationStatus.RUNNING
    run.raise_event("emailconfirmed", {"confirmed_at": "09:30"})  # names are case-insensitive

    assert run.output == "confirmed at 09:30"
    assert run.replays_identically()


def test_event_that_does_not_arrive_in_time_expires_the_account() -> None:
    fakes = {"send_confirmation_link": lambda _: None, "delete_unconfirmed_account": lambda _: None}
    run = Run(app_of(load("events")), "confirm_email", {"user": "ada"}, activities=fakes).run()

    assert run.output == "expired"
    assert ("delete_unconfirmed_account", {"user": "ada"}) in run.calls


def test_event_raced_with_a_timer_leaves_its_wait_open_and_takes_the_next_event() -> None:
    fakes = {"ask_for_approval": lambda _: None, "send_reminder": lambda _: None}
    run = Run(app_of(load("event-race-trap")), "approval_with_reminder", {}, activities=fakes)

    run.run().raise_event("Approval", {"approved": True}).run()

    assert ("send_reminder", {}) in run.calls
    assert run.status is OrchestrationStatus.RUNNING  # the trap: the new wait never completes


def test_yielding_the_first_event_task_again_avoids_the_trap() -> None:
    fixed = load(
        "event-race-trap",
        {'approval = ctx.wait_for_external_event("Approval")\n    return': "return"},
    )
    fakes = {"ask_for_approval": lambda _: None, "send_reminder": lambda _: None}
    run = Run(app_of(fixed), "approval_with_reminder", {}, activities=fakes)

    run.run().raise_event("Approval", {"approved": True})

    assert run.output == {"approved": True}


TRANSFER = {"from": "A", "to": "B", "amount": 10}


def test_a_failed_credit_is_compensated_with_a_refund() -> None:
    fakes = {
        "debit_account": lambda _: None,
        "credit_account": raising_for("B", ValueError("account closed")),
    }
    run = Run(app_of(load("errors")), "transfer_funds", TRANSFER, activities=fakes).run()

    assert run.output == {"status": "refunded", "reason": "ValueError: account closed"}
    assert run.calls[-1] == ("credit_account", {"account": "A", "amount": 10})
    assert run.replays_identically()


def test_task_failed_error_reads_as_the_guide_says() -> None:
    caught: list[TaskFailedError] = []

    def keep(ctx: OrchestrationContext) -> Any:
        try:
            yield ctx.call_activity("credit_account", {})
        except TaskFailedError as error:
            caught.append(error)

    app = FunctionApp()
    app.orchestrator(keep)
    Run(app, "keep", activities={"credit_account": failing(ValueError("account closed"))}).run()

    (error,) = caught
    assert str(error) == "activity 'credit_account' failed: ValueError: account closed"
    assert error.details.error_type == "ValueError"


def test_an_uncaught_activity_failure_fails_the_instance_with_the_inner_failure() -> None:
    fakes = {"debit_account": failing(RuntimeError("ledger offline"))}
    run = Run(app_of(load("errors")), "transfer_funds", TRANSFER, activities=fakes).run()

    assert run.status is OrchestrationStatus.FAILED
    failure = run.decision.failure
    assert failure.error_type == "TaskFailedError"
    assert failure.message == "activity 'debit_account' failed: RuntimeError: ledger offline"
    assert failure.inner_failure is not None
    assert failure.inner_failure.error_type == "RuntimeError"


def test_retry_waits_5_10_20_seconds_between_attempts() -> None:
    run = Run(
        app_of(load("retry")),
        "charge_card",
        {"card": "4242"},
        activities={"charge": failing(ConnectionError("gateway down"), times=3)},
    ).run()

    assert run.output == "ok"
    attempts = [e for e in run.history.events if isinstance(e, TaskScheduled)]
    assert [e.attempt for e in attempts] == [1, 2, 3, 4]
    waits = [e.fire_at - e.timestamp for e in run.history.events if isinstance(e, TimerCreated)]
    assert waits == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert run.replays_identically()


def test_retry_gives_up_at_once_on_a_declined_card() -> None:
    class CardDeclined(Exception):
        pass

    run = Run(
        app_of(load("retry")),
        "charge_card",
        {"card": "4242"},
        activities={"charge": failing(CardDeclined("insufficient funds"))},
    ).run()

    assert run.status is OrchestrationStatus.FAILED
    assert len(run.calls) == 1


def test_an_activity_that_does_not_finish_in_time_falls_back_to_low_quality() -> None:
    run = Run(
        app_of(load("activity-timeout")),
        "render_video",
        {"id": 3},
        activities={"render_in_low_quality": lambda job: {"low": job["id"]}},
        hold=frozenset({"render"}),
    ).run()

    assert run.output == {"low": 3}
    assert run.replays_identically()


def test_a_time_out_reported_by_the_worker_is_recognised_by_its_error_type() -> None:
    run = Run(
        app_of(load("activity-timeout")),
        "render_video",
        {"id": 3},
        activities={
            "render": failing(WorkerTimeoutError("activity 'render'", 600)),
            "render_in_low_quality": lambda _: "low",
        },
    ).run()

    assert run.output == "low"


def test_sub_orchestrations_complete_with_the_children_outputs() -> None:
    fakes = {
        "create_account": lambda p: f"{p}@example.com",
        "order_laptop": lambda p: f"laptop for {p}",
    }

    run = Run(
        app_of(load("sub-orchestrations")), "onboard_team", ["ada", "bo"], activities=fakes
    ).run()

    assert run.output == [
        {
            "person": "ada",
            "account": "ada@example.com",
            "laptop": "laptop for ada",
            "by": "guide-1",
        },
        {"person": "bo", "account": "bo@example.com", "laptop": "laptop for bo", "by": "guide-1"},
    ]
    created = [e for e in run.history.events if isinstance(e, SubOrchestrationInstanceCreated)]
    assert [e.instance_id for e in created] == ["onboard-ada", "onboard-bo"]


def test_a_failed_child_fails_the_parent_with_the_child_failure_as_details() -> None:
    fakes = {"create_account": failing(PermissionError("directory locked"))}

    run = Run(app_of(load("sub-orchestrations")), "onboard_team", ["ada"], activities=fakes).run()

    assert run.status is OrchestrationStatus.FAILED
    inner = run.decision.failure.inner_failure
    assert inner is not None
    assert inner.error_type == "TaskFailedError"
    assert inner.inner_failure is not None
    assert inner.inner_failure.error_type == "PermissionError"


def test_continue_as_new_starts_over_with_the_next_input() -> None:
    app = app_of(load("continue-as-new"))
    run = Run(app, "hourly_cleanup", activities={"delete_expired_sessions": lambda _: 3})

    for _ in range(3):
        run.step()  # the activity
        run.step()  # the timer, then continue_as_new

    assert run.executions == 4
    assert run.executor.context.get_input() == 3
    assert all(len(history) <= 10 for history in run.histories)


def test_typed_values_are_converted_at_the_boundaries() -> None:
    module = load("typed")
    app = app_of(module)
    context = ActivityContext(instance_id="i", execution_id="e", task_id=0, name="charge")
    run = Run(app, "checkout", {"order_id": "o-7", "amount": 12.5}).run()
    seen: list[str] = []

    def by_reference(ctx: OrchestrationContext) -> Any:
        receipt = yield ctx.call_activity(module["charge"], {"order_id": "o-8", "amount": 1})
        seen.append(type(receipt).__name__)

    app.orchestrators["by_reference"] = by_reference
    Run(app, "by_reference").run()

    assert run.output == {"order_id": "o-7", "charged": 12.5}
    arguments = app.activities["charge"].arguments({"order_id": "o-7", "amount": 1}, context)
    assert type(arguments["order"]).__name__ == "Order"
    assert seen == ["Receipt"]


def test_an_input_that_does_not_match_its_model_fails_naming_the_field() -> None:
    module = load("typed")
    run = Run(app_of(module), "checkout", {"order_id": "o-7", "amount": -5}).run()

    assert run.status is OrchestrationStatus.FAILED
    assert run.decision.failure is not None
    assert run.decision.failure.error_type == "BoundaryError"
    assert "the input of orchestrator 'checkout' does not match its type: amount" in (
        run.decision.failure.message
    )
    with pytest.raises(BoundaryError) as caught:
        app_of(module).activities["charge"].arguments({"order_id": "o", "amount": -5}, None)  # type: ignore[arg-type]
    page = (GUIDE / "orchestrators.md").read_text(encoding="utf-8").replace("\n  ", " ")
    assert str(caught.value) in page


# --- writing activities ------------------------------------------------------------------------


def test_activity_shapes_register_and_run() -> None:
    app = app_of(load("activity-shapes"))
    context = ActivityContext(instance_id="i", execution_id="e", task_id=4, name="fetch-price")

    assert set(app.activities) == {"resize_image", "fetch-price", "heartbeat"}
    assert app.activities["fetch-price"].context_parameter == "context"
    assert app.activities["heartbeat"].input_parameter is None
    price = asyncio.run(app.activities["fetch-price"].function("A-1", context))
    assert price == {"sku": "A-1", "price": 9.5, "task": "i:e:4"}


def test_an_activity_with_an_unexpected_parameter_is_refused() -> None:
    app = FunctionApp()
    with pytest.raises(RegistrationError, match="unexpected parameters"):

        @app.activity
        def two_inputs(a: int, b: int) -> int:
            return a + b


def test_idempotent_insert_records_a_task_once_however_often_it_runs(tmp_path: Path) -> None:
    module = load("idempotent-insert")
    module["DATABASE"] = str(tmp_path / "payments.db")
    record = module["record_payment"]
    first = ActivityContext(instance_id="i", execution_id="e", task_id=1, name="record_payment")
    other = ActivityContext(instance_id="i", execution_id="e", task_id=2, name="record_payment")

    for context in (first, first, first, other):  # the first task delivered three times
        record({"account": "A", "amount": 5.0}, context)

    with sqlite3.connect(module["DATABASE"]) as db:
        assert db.execute("SELECT count(*) FROM payments").fetchone() == (2,)


# --- determinism -------------------------------------------------------------------------------


def _clock(at: datetime) -> type:
    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return at

    return Clock


REPORTS = {"send_morning_report": lambda _: None, "send_afternoon_report": lambda _: None}


def test_reading_the_clock_in_the_orchestrator_breaks_replay() -> None:
    module = load("clock-bad")
    module["datetime"] = _clock(datetime(2026, 1, 5, 11, tzinfo=UTC))
    run = Run(app_of(module), "daily_report", activities=REPORTS)
    assert run.history.events[-1].name == "send_morning_report"

    module["datetime"] = _clock(datetime(2026, 1, 5, 13, tzinfo=UTC))  # replayed after 12:00
    decision = replay(module["daily_report"], "guide-1", run.history.events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.non_determinism is not None
    assert "send_afternoon_report" in decision.non_determinism.actual


def test_current_utc_datetime_replays_the_same_branch() -> None:
    run = Run(app_of(load("clock-good")), "daily_report", activities=REPORTS).run()

    assert run.calls == [("send_morning_report", None)]  # T0 is 09:00
    assert run.replays_identically()


def test_a_random_branch_breaks_replay() -> None:
    module = load("random-bad")
    module["random"] = types.SimpleNamespace(random=lambda: 0.01)
    run = Run(app_of(module), "ship_order", {"id": 1}, activities={"audit_order": lambda _: None})

    module["random"] = types.SimpleNamespace(random=lambda: 0.99)
    decision = replay(module["ship_order"], "guide-1", run.history.events)

    assert decision.non_determinism is not None
    assert "'audit_order'" in decision.non_determinism.expected


def _place_order(edits: dict[str, str] | None = None) -> Run:
    fakes = {"create_order": lambda _: None, "ship_order": lambda _: None}
    run = Run(app_of(load("uuid-bad", edits)), "place_order", {"sku": "A-1"}, activities=fakes)
    run.run()  # created, now waiting for the payment
    run.rebuild()  # hours later: evicted from memory, replayed from the store
    run.raise_event("PaymentReceived").run()
    return run


def test_uuid4_silently_ships_another_order_than_it_created() -> None:
    run = _place_order()

    (created, shipped) = [data["id"] for _, data in run.calls]
    assert created != shipped
    assert run.status is OrchestrationStatus.COMPLETED  # no error: the bug goes unnoticed


def test_new_uuid_keeps_the_order_id_across_replays() -> None:
    run = _place_order({"str(uuid.uuid4())": "ctx.new_uuid()"})

    (created, shipped) = [data["id"] for _, data in run.calls]
    assert created == shipped


COURIERS = {"book_express_courier": lambda _: None, "book_standard_courier": lambda _: None}


def test_reading_the_environment_in_the_orchestrator_breaks_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPRESS_DELIVERY", "1")
    module = load("config-bad")
    run = Run(app_of(module), "deliver", {"parcel": 1}, activities=COURIERS)

    monkeypatch.setenv("EXPRESS_DELIVERY", "0")  # a deploy flips the variable
    decision = replay(module["deliver"], "guide-1", run.history.events)

    assert decision.non_determinism is not None


def test_configuration_read_in_an_activity_survives_a_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPRESS_DELIVERY", "1")
    run = Run(app_of(load("config-good")), "deliver", {"parcel": 1}, activities=COURIERS)
    run.step()  # delivery_settings ran and is recorded

    monkeypatch.setenv("EXPRESS_DELIVERY", "0")
    run.rebuild().run()

    assert run.status is OrchestrationStatus.COMPLETED
    assert run.calls[-1][0] == "book_express_courier"
    assert run.replays_identically()


def test_set_order_of_strings_changes_between_processes() -> None:
    program = "print(list({'oslo', 'lima', 'pune'}))"
    orders = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={"PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(8)
    }

    assert len(orders) > 1


def test_another_iteration_order_on_replay_silently_swaps_results() -> None:
    module = load("set-order-bad")
    warehouses = ["oslo", "lima", "pune"]
    here = list(set(warehouses))
    elsewhere = list(reversed(here))  # what another process may have iterated
    history = HistoryBuilder().start("reserve_everywhere", {"warehouses": warehouses})
    for task_id, warehouse in enumerate(elsewhere):
        history.scheduled(task_id, "reserve_in", warehouse)
        history.episode().completed(task_id, f"{warehouse}-reserved")

    decision = replay(module["reserve_everywhere"], "guide-1", history.events)

    assert decision.status is OrchestrationStatus.COMPLETED  # no error
    assert decision.output == {w: f"{e}-reserved" for w, e in zip(here, elsewhere, strict=True)}
    assert decision.output[here[0]] != f"{here[0]}-reserved"


def _as_jsonb_orders_it(value: dict[str, Any]) -> dict[str, Any]:
    """Postgres jsonb keeps object keys shortest first, then bytewise."""
    return dict(sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode())))


def test_a_dict_from_the_input_replays_in_the_stored_key_order() -> None:
    visits = {"visit_pune": lambda n: n, "visit_oslo": lambda n: n}
    module = load("dict-order-bad")
    run = Run(app_of(module), "visit_all", {"pune": 1, "oslo": 2}, activities=visits).run()
    assert [name for name, _ in run.calls] == ["visit_pune", "visit_oslo"]

    stored = [
        e.model_copy(update={"input": _as_jsonb_orders_it(e.input)})
        if isinstance(e, ExecutionStarted)
        else e
        for e in run.history.events
    ]
    decision = replay(module["visit_all"], "guide-1", stored)

    assert decision.non_determinism is not None
    assert "'visit_pune'" in decision.non_determinism.expected


def test_after_a_mismatch_found_while_rebuilding_nothing_more_is_accepted() -> None:
    """A rebuilt executor that hit a mismatch accepts nothing more; it reports the end it has
    not recorded (``ended_unrecorded``), which the handler then records as the instance's
    failure (tests/integration/test_handler_non_determinism.py)."""
    app = FunctionApp()
    app.orchestrators["process_order"] = _process_order_v1
    run = Run(app, "process_order", {"id": 1042}, activities={"reserve_stock": lambda _: "r"})
    run.step()
    executor = OrchestrationExecutor(_process_order_v2, "guide-1")

    executor.replay(run.history.events)

    later = HistoryBuilder(run.history.now).episode()
    later.raised("go").terminated("stuck")
    assert executor.is_finished
    assert executor.ended_unrecorded
    assert not any(executor.accepts(event) for event in later.events[1:])


def _process_order_v1(ctx: OrchestrationContext) -> Any:
    order = ctx.get_input()
    yield ctx.call_activity("reserve_stock", order)
    yield ctx.call_activity("charge_card", order)


def _process_order_v2(ctx: OrchestrationContext) -> Any:
    order = ctx.get_input()
    yield ctx.call_activity("charge_card", order)
    yield ctx.call_activity("reserve_stock", order)


def test_reordered_calls_fail_with_the_message_the_guide_shows() -> None:
    app = FunctionApp()
    app.orchestrators["process_order"] = _process_order_v1
    run = Run(
        app,
        "process_order",
        {"id": 1042},
        instance_id="order-1042",
        activities={"reserve_stock": lambda _: "r"},
    )
    run.step()  # reserve_stock done; charge_card scheduled

    decision = replay(_process_order_v2, "order-1042", run.history.events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure is not None
    page = (GUIDE / "determinism.md").read_text(encoding="utf-8")
    assert f"failure   NonDeterminismError: {decision.failure.message}" in page


def test_a_recorded_step_the_code_no_longer_reaches_is_described_as_the_guide_says() -> None:
    def now_waits_for_an_event(ctx: OrchestrationContext) -> Any:
        yield ctx.wait_for_external_event("go")

    history = HistoryBuilder().start("changed").scheduled(0, "reserve_stock")

    decision = replay(now_waits_for_an_event, "i1", history.events)

    assert decision.non_determinism is not None
    page = (GUIDE / "determinism.md").read_text(encoding="utf-8")
    assert decision.non_determinism.actual == "nothing at that point (the code did not schedule it)"
    assert decision.non_determinism.actual in page.replace("\n", " ")


# --- migrating from azure-functions-durable ----------------------------------------------------


def test_the_migrated_azure_app_runs_with_its_azure_decorators_and_retry() -> None:
    app = app_of(load("migrated"))
    flaky = failing(ConnectionError("busy"), times=1)

    def hello(city: str) -> str:
        return f"{flaky(city)}: Hello {city}"

    run = Run(app, "hello_orchestrator", activities={"hello": hello}).run()

    assert run.output == ["ok: Hello Tokyo", "ok: Hello Oslo", "ok: Hello Lima"]
    assert app.activities["hello"].input_parameter == "city"
    assert run.replays_identically()


# --- the five patterns -------------------------------------------------------------------------


def test_chaining_example_is_the_deployed_sample() -> None:
    from workflows import samples

    example = Run(app_of(load("chaining")), "hello_cities", ["Oslo", "Lima"]).run()
    sample = Run(samples.app, "hello_cities", ["Oslo", "Lima"]).run()

    assert example.output == sample.output == ["Hello Oslo!", "Hello Lima!"]
    assert example.decision.custom_status == sample.decision.custom_status


def test_fan_out_fan_in_of_1000_gives_the_sum_the_guide_shows() -> None:
    run = Run(app_of(load("fan-out-fan-in")), "fan_out_fan_in", 1000).run()

    assert run.output == 332833500
    assert len(run.calls) == 1000


def _watch(expires_at: str, interval: int = 5) -> dict[str, Any]:
    return {"url": "http://svc/healthz", "interval_seconds": interval, "expires_at": expires_at}


def test_monitor_checks_until_healthy() -> None:
    statuses = sequence(503, 0, 200)
    run = Run(
        app_of(load("monitor")),
        "wait_until_healthy",
        _watch("2030-01-01T00:00:00Z"),
        activities={"http_status": statuses},
    ).run()

    assert run.output == {"healthy": True, "checks": 3}
    assert run.decision.custom_status == {"checks": 3, "last_status": 200}
    waits = [e.fire_at - e.timestamp for e in run.history.events if isinstance(e, TimerCreated)]
    assert waits == [timedelta(seconds=5)] * 2
    assert run.replays_identically()


def test_monitor_gives_up_at_its_expiry() -> None:
    expires = (T0 + timedelta(seconds=12)).isoformat().replace("+00:00", "Z")
    run = Run(
        app_of(load("monitor")),
        "wait_until_healthy",
        _watch(expires),
        activities={"http_status": lambda _: 0},
    ).run()

    assert run.output == {"healthy": False, "checks": 2}


def test_monitor_activity_reports_an_unreachable_url_as_0() -> None:
    assert load("monitor")["http_status"]("http://127.0.0.1:9/") == 0


def test_monitor_with_continue_as_new_keeps_each_history_small() -> None:
    run = Run(
        app_of(load("monitor-continue-as-new")),
        "watch_forever",
        {"url": "http://svc/healthz", "interval_seconds": 60, "checks": 0},
        activities={"http_status": sequence(*([503] * 49), 200)},
    ).run()

    assert run.output == {"healthy": True, "checks": 50}
    assert run.executions == 50
    assert max(len(history) for history in run.histories) <= 10


EXPENSE = {"amount": 120, "approver": "mia", "manager": "hugo", "hours": 24}


def test_human_interaction_approved_by_the_first_approver() -> None:
    run = Run(app_of(load("human-interaction")), "expense_approval", EXPENSE).run_activities()
    assert run.decision.custom_status == {"waiting_for": "mia"}

    run.raise_event("Approval", {"approved": True})

    assert run.output == {"approved": True, "by": "mia"}
    assert run.replays_identically()


def test_human_interaction_escalates_to_the_manager_after_the_deadline() -> None:
    run = Run(app_of(load("human-interaction")), "expense_approval", EXPENSE).run_activities()
    run.step()  # 24 hours pass without an answer
    run.run_activities()

    assert run.decision.custom_status == {"waiting_for": "hugo"}
    run.raise_event("Approval", {"approved": False})

    assert run.output == {"approved": False, "by": "hugo"}
    assert [data["approver"] for name, data in run.calls] == ["mia", "hugo"]


def test_human_interaction_without_any_answer() -> None:
    run = Run(app_of(load("human-interaction")), "expense_approval", EXPENSE).run()

    assert run.output == {"approved": False, "by": None, "reason": "nobody answered"}
    assert run.history.now >= T0 + timedelta(hours=48)
