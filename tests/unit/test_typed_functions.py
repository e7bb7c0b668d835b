"""Typed functions: pydantic models checked and converted where values enter and leave code."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from contracts import OrchestrationStatus
from contracts.typed import BoundaryError
from durable import ActivityContext, FunctionApp, OrchestrationContext
from engine import OrchestrationExecutor, replay
from tests.helpers.history import HistoryBuilder


class Order(BaseModel):
    order_id: str
    amount: float = Field(gt=0)


class Receipt(BaseModel):
    order_id: str
    charged: float


app = FunctionApp()


@app.activity
def charge(order: Order, context: ActivityContext) -> Receipt:
    return Receipt(order_id=order.order_id, charged=order.amount)


@app.activity
def sloppy(order: Order) -> Receipt:
    return {"order_id": order.order_id}  # type: ignore[return-value]


@app.orchestrator
def checkout(ctx: OrchestrationContext, order: Order) -> Generator[Any, Any, Receipt]:
    receipt = yield ctx.call_activity(charge, order)
    assert isinstance(receipt, Receipt)
    return receipt


CONTEXT = ActivityContext(instance_id="i", execution_id="e", task_id=0, name="charge")


def test_an_activity_input_is_converted_into_its_model():
    definition = app.activities["charge"]

    arguments = definition.arguments({"order_id": "o-1", "amount": 5}, CONTEXT)

    assert arguments["order"] == Order(order_id="o-1", amount=5)


def test_an_activity_input_that_does_not_match_names_the_function_and_the_field():
    definition = app.activities["charge"]

    with pytest.raises(BoundaryError, match=r"input of activity 'charge'.*amount") as caught:
        definition.arguments({"order_id": "o-1", "amount": -5}, CONTEXT)

    assert caught.value.fields == ["amount"]


def test_an_activity_output_must_match_its_return_model():
    definition = app.activities["sloppy"]
    result = definition.function(Order(order_id="o-1", amount=1))

    with pytest.raises(BoundaryError, match=r"output of activity 'sloppy'.*charged"):
        definition.checked_output(result)


def test_an_orchestrator_receives_its_input_as_a_model_and_returns_a_model_as_json():
    history = HistoryBuilder().start("checkout", input={"order_id": "o-7", "amount": 12.5})
    history.scheduled(0, "charge", {"order_id": "o-7", "amount": 12.5})
    history.episode().completed(0, {"order_id": "o-7", "charged": 12.5})
    past, new = history.split()

    decision = replay(checkout, "i-1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {"order_id": "o-7", "charged": 12.5}


def test_an_orchestrator_input_that_does_not_match_fails_it_naming_the_field():
    history = HistoryBuilder().start("checkout", input={"order_id": "o-7"})

    decision = OrchestrationExecutor(checkout, "i-1").execute(history.events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure is not None
    assert decision.failure.error_type == "BoundaryError"
    assert "input of orchestrator 'checkout'" in decision.failure.message
    assert "amount" in decision.failure.message


def test_a_result_that_does_not_match_the_called_function_model_raises_where_awaited():
    history = HistoryBuilder().start("checkout", input={"order_id": "o-7", "amount": 1})
    history.scheduled(0, "charge", {"order_id": "o-7", "amount": 1.0})
    history.episode().completed(0, {"order_id": "o-7"})
    past, new = history.split()

    decision = replay(checkout, "i-1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure is not None
    assert "result of activity 'charge'" in decision.failure.message


def test_get_input_converts_into_a_model_on_request():
    def reads(ctx: OrchestrationContext):
        order = ctx.get_input(Order)
        return order.amount * 2
        yield  # pragma: no cover - makes this a generator orchestrator

    history = HistoryBuilder().start("reads", input={"order_id": "o", "amount": 2})

    assert OrchestrationExecutor(reads, "i").execute(history.events).output == 4
