"""The guide's pages on writing orchestrators and activities: their examples, run through
the replay engine (see tests/helpers/guide.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import (
    OrchestrationStatus,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from contracts.typed import BoundaryError
from durable import (
    ActivityContext,
    FunctionApp,
    OrchestrationContext,
    RegistrationError,
    TaskFailedError,
)
from services.common.activity_runner import ActivityTimeoutError as WorkerTimeoutError
from tests.helpers.guide import (
    GUIDE,
    Run,
    app_of,
    failing,
    load,
    raising_for,
)
from tests.helpers.history import T0

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


def test_the_local_activity_example_registers_a_local_activity() -> None:
    app = app_of(load("local-activity"))

    assert app.activities["normalise_email"].local
    assert app.activities["normalise_email"].function("  Mia@Example.COM ") == "mia@example.com"


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
