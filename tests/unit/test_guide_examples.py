"""The user guide's examples (docs/guide), run through the replay engine: every block
compiles; getting started, migrating from azure-functions-durable and the five patterns run.
The pages on orchestrators, activities and determinism are tested beside this file
(``test_guide_orchestrators.py``, ``test_guide_determinism.py``).

Every Python block of the guide must compile. A block preceded by ``<!-- example: NAME -->``
is executed as a module and its orchestrators are driven through ``OrchestrationExecutor``:
activities run in-process (or as fakes standing in for I/O), timers fire in order, children
run to completion, and every finished run must replay to the same outcome. An example that no
longer matches the engine fails here, so the guide cannot drift from the code unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from contracts import (
    OrchestrationStatus,
    TimerCreated,
)
from tests.helpers.guide import (
    EXAMPLES,
    PYTHON_BLOCK,
    Run,
    app_of,
    failing,
    guide_pages,
    load,
    sequence,
)
from tests.helpers.history import T0

# --- every block compiles ----------------------------------------------------------------------


def _all_blocks() -> Iterator[tuple[str, int, str]]:
    for page in guide_pages():
        for number, source in enumerate(PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))):
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


def test_the_entry_points_example_declares_what_the_guide_says_it_does() -> None:
    module = load("entry-points")
    placed, payments = module["entry_points"].entry_points
    order = placed.message.model_validate({"order_id": "o-7", "items": ["tea"]})
    payment = payments.message.model_validate({"order_id": "o-7", "payer": "ann"})

    assert (placed.queue, payments.queue) == ("orders.placed", "orders.payments")
    assert placed.action.instance_id(order) == payments.action.instance_id(payment) == "order-o-7"
    assert placed.action.input(order) == {"order_id": "o-7", "items": ["tea"]}
    assert payments.action.event == "PaymentReceived"
    assert payments.senders is not None
    assert placed.senders is None
    assert "order_received" in app_of(module).orchestrators
