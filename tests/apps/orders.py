"""A tiny workflow other than the approval that takes its messages from the broker, for the
tests of the broker entry points (``durable.entry_points``, ADR 26).

An ``OrderPlaced`` on ``<ns>.tests.orders.placed`` starts ``order_received`` as
``order-<order_id>``, which waits for its payment; a ``PaymentReceived`` on
``<ns>.tests.orders.payments``, published by its payer's own broker user, is raised as the
instance's ``PaymentReceived`` event. The messages are plain models, without an envelope.
Loaded with the other test apps (``tests.conftest.TEST_FUNCTION_MODULES``); the client service
finds ``entry_points`` there because ``DF_ENTRY_POINTS`` is unset.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from durable import EventTimeoutError, FunctionApp, OrchestrationContext
from durable.entry_points import EntryPoint, EntryPoints, RaiseEvent, StartOrchestration
from durable.senders import SenderIdentities, Senders

PLACED_QUEUE = "tests.orders.placed"
PAYMENTS_QUEUE = "tests.orders.payments"
PAYMENT_EVENT = "PaymentReceived"
PAYMENT_WAIT = timedelta(seconds=60)

app = FunctionApp()


class OrderPlaced(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    items: list[str] = Field(min_length=1)


class PaymentReceived(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    payer: str = Field(min_length=1)
    amount: float = Field(gt=0)


def instance_of(order_id: str) -> str:
    return f"order-{order_id}"


@app.orchestrator
def order_received(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Input: an ``OrderPlaced``. Output: the order and its payment (None after a minute)."""
    order = ctx.get_input()
    try:
        payment = yield ctx.wait_for_external_event(PAYMENT_EVENT, timeout=PAYMENT_WAIT)
    except EventTimeoutError:
        payment = None
    return {"order": order, "payment": payment}


entry_points = EntryPoints(
    [
        EntryPoint(
            PLACED_QUEUE,
            OrderPlaced,
            StartOrchestration(
                "order_received",
                instance_id=lambda order: instance_of(order.order_id),
                input=lambda order: order.model_dump(mode="json"),
            ),
        ),
        EntryPoint(
            PAYMENTS_QUEUE,
            PaymentReceived,
            RaiseEvent(
                PAYMENT_EVENT,
                instance_id=lambda payment: instance_of(payment.order_id),
                data=lambda payment: payment.model_dump(mode="json"),
                orchestrator="order_received",
                instance_noun="order",
            ),
            senders=Senders(lambda payment: payment.payer, SenderIdentities(role="payer")),
        ),
    ]
)
