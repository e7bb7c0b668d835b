"""The guide's page on determinism: each trap it describes, and each fix, shown happening
in the replay engine (see tests/helpers/guide.py)."""

from __future__ import annotations

import subprocess
import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import (
    ExecutionStarted,
    OrchestrationStatus,
)
from durable import (
    FunctionApp,
    OrchestrationContext,
)
from engine import OrchestrationExecutor, replay
from tests.helpers.guide import (
    GUIDE,
    Run,
    app_of,
    load,
)
from tests.helpers.history import HistoryBuilder

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
