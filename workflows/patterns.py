"""The patterns of Durable Functions that ``workflows.samples`` does not already show.

- Monitor (``monitor_job``): a recurring check on a durable timer that starts over with
  ``continue_as_new`` each round, so its history stays small however long it runs; it stops
  when the condition is met or when it expires.
- Retries and sub-orchestrations (``process_order``): a step retried on failure with a policy,
  and a child orchestration whose failure the parent handles.

Chaining and fan-out/fan-in are in ``workflows.samples``, human interaction in
``workflows.approval``; the async HTTP API pattern is any of them started over HTTP.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from durable import (
    ActivityContext,
    FunctionApp,
    OrchestrationContext,
    RetryOptions,
    TaskFailedError,
)

app = FunctionApp()


@app.orchestrator
def monitor_job(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, Any] | None]:
    """Input: ``{"job_id", "interval_seconds", "expires_at" (ISO 8601), "checks": 0}``.

    Output: ``{"job_id", "outcome": "done" | "expired", "checks"}``.
    """
    watch = dict(ctx.get_input())
    status = yield ctx.call_activity(
        "check_job", {"job_id": watch["job_id"], "check": watch.get("checks", 0) + 1}
    )
    checks = watch.get("checks", 0) + 1
    ctx.set_custom_status({"checks": checks, "last_status": status})
    if status == "done":
        return {"job_id": watch["job_id"], "outcome": "done", "checks": checks}
    next_check = ctx.current_utc_datetime + timedelta(seconds=float(watch["interval_seconds"]))
    if next_check >= datetime.fromisoformat(watch["expires_at"]):
        return {"job_id": watch["job_id"], "outcome": "expired", "checks": checks}
    yield ctx.create_timer(next_check)
    ctx.continue_as_new({**watch, "checks": checks})
    return None


@app.activity
def check_job(request: dict[str, Any]) -> str:
    """Stands in for a call to the system being watched: a job id ``"<name>:<n>"`` reports
    "done" from its n-th check on (and never, without ``:<n>``)."""
    _, _, done_after = str(request["job_id"]).rpartition(":")
    return "done" if done_after.isdigit() and request["check"] >= int(done_after) else "running"


@app.orchestrator
def process_order(ctx: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Input: ``{"order_id", "fail_payment_attempts": n, "ship": bool}``.

    Charges the payment with a retry policy (the first ``n`` attempts fail), then ships the
    order in a sub-orchestration; a shipping failure is reported, not raised.
    """
    order = ctx.get_input()
    policy = RetryOptions(
        first_retry_interval_in_milliseconds=200,
        max_number_of_attempts=4,
        backoff_coefficient=2.0,
        non_retryable_error_types=["PaymentDeclined"],
    )
    receipt = yield ctx.call_activity_with_retry("charge_payment", policy, order)
    try:
        shipment = yield ctx.call_sub_orchestrator("ship_order", order)
    except TaskFailedError as error:
        return {"receipt": receipt, "shipped": False, "problem": error.details.message}
    return {"receipt": receipt, "shipped": True, "shipment": shipment}


@app.activity
def charge_payment(order: dict[str, Any], context: ActivityContext) -> str:
    if context.attempt <= int(order.get("fail_payment_attempts", 0)):
        raise ConnectionError(f"payment service unavailable (attempt {context.attempt})")
    return f"receipt-{order['order_id']}-{context.attempt}"


@app.orchestrator
def ship_order(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
    order = ctx.get_input()
    label = yield ctx.call_activity("print_label", order["order_id"])
    if not order.get("ship", True):
        raise RuntimeError(f"no carrier accepts order {order['order_id']}")
    return f"shipped with {label}"


@app.activity
def print_label(order_id: str) -> str:
    return f"label-{order_id}"
