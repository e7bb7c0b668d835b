"""Functions used only by the tests, deployed next to ``workflows.samples``.

Loaded by the services through ``DF_FUNCTION_MODULES=workflows.samples,tests.apps.functions``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from durable import (
    ActivityContext,
    FunctionApp,
    OrchestrationContext,
    TaskFailedError,
    compare_versions,
)

app = FunctionApp()


@app.orchestrator
def failing_orchestrator(ctx: OrchestrationContext) -> Any:
    yield ctx.call_activity("echo", "before the failure")
    raise ValueError(f"orchestrator gave up on {ctx.get_input()!r}")


@app.orchestrator
def calls_failing_activity(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_activity("always_fails", ctx.get_input()))


@app.orchestrator
def catches_failing_activity(ctx: OrchestrationContext) -> Any:
    try:
        yield ctx.call_activity("always_fails", ctx.get_input())
    except TaskFailedError as error:
        return {"caught": error.details.error_type, "message": error.details.message}
    return "not reached"


@app.orchestrator
def slow_chain(ctx: OrchestrationContext) -> Any:
    """A chain of ``steps`` activities that each take ``delay`` seconds (for crash tests);
    ``activity`` is ``slow_echo`` or one of its local twins."""
    spec = ctx.get_input() or {}
    activity = spec.get("activity", "slow_echo")
    results = []
    for step in range(int(spec.get("steps", 5))):
        results.append(
            (yield ctx.call_activity(activity, {"step": step, "delay": spec.get("delay", 0.01)}))
        )
    return results


@app.orchestrator
def slow_fan_out(ctx: OrchestrationContext) -> Any:
    """``count`` ``slow_echo`` tasks of ``delay`` seconds at once (for crash tests of task
    batches); returns their steps."""
    spec = ctx.get_input() or {}
    calls = [
        ctx.call_activity("slow_echo", {"step": step, "delay": spec.get("delay", 1.0)})
        for step in range(int(spec.get("count", 100)))
    ]
    return [result["step"] for result in (yield ctx.task_all(calls))]


@app.activity
def echo(value: Any) -> Any:
    return value


@app.activity
def always_fails(value: Any) -> Any:
    raise RuntimeError(f"activity refused {value!r}")


@app.activity
async def slow_echo(spec: dict[str, Any], context: ActivityContext) -> dict[str, Any]:
    await asyncio.sleep(float(spec["delay"]))
    return {"step": spec["step"], "key": context.idempotency_key}


@app.activity(local=True)
async def slow_echo_local(spec: dict[str, Any], context: ActivityContext) -> dict[str, Any]:
    """``slow_echo``, run by the orchestrator itself."""
    await asyncio.sleep(float(spec["delay"]))
    return {"step": spec["step"], "key": context.idempotency_key}


@app.activity(local=True)
def slow_echo_plain_local(spec: dict[str, Any], context: ActivityContext) -> dict[str, Any]:
    """``slow_echo_local`` as a plain function: run inline, before the commit (ADR 14)."""
    time.sleep(float(spec["delay"]))
    return {"step": spec["step"], "key": context.idempotency_key}


@app.orchestrator
def sleeper(ctx: OrchestrationContext) -> Any:
    """Sleeps ``seconds`` on a durable timer; returns when it was due and when it resumed."""
    seconds = float(ctx.get_input() or 1)
    due = ctx.current_utc_datetime + timedelta(seconds=seconds)
    yield ctx.create_timer(due)
    return {"due": due.isoformat(), "resumed": ctx.current_utc_datetime.isoformat()}


@app.orchestrator
def waits_for_approval(ctx: OrchestrationContext) -> Any:
    """Waits for an "Approval" event, with a deadline of ``timeout`` seconds."""
    timeout = float(ctx.get_input() or 5)
    try:
        answer = yield ctx.wait_for_external_event("Approval", timeout=timeout)
    except TimeoutError:
        return {"timed_out": True}
    return {"answer": answer}


@app.orchestrator
def waits_on_child(ctx: OrchestrationContext) -> Any:
    """Starts a child that waits an hour for an event, and waits for the child."""
    return (yield ctx.call_sub_orchestrator("waits_for_approval", 3600, ctx.get_input()))


@app.orchestrator
def eternal_inbox(ctx: OrchestrationContext) -> Any:
    """Takes one "Item" event per execution and continues as new, keeping unconsumed events
    when its input says so; ends on an item "stop". Input: {"keep": bool, "seen": [...]}."""
    state = ctx.get_input()
    item = yield ctx.wait_for_external_event("Item")
    seen = [*state["seen"], item]
    if item == "stop":
        return seen
    ctx.continue_as_new({**state, "seen": seen}, preserve_unprocessed_events=state["keep"])
    return None


@app.orchestrator
def guarded_hang(ctx: OrchestrationContext) -> Any:
    """Calls an activity that never finishes, with a start-to-close time-out."""
    try:
        yield ctx.call_activity("hang", None, timeout=float(ctx.get_input() or 2))
    except TaskFailedError as error:
        return {"failed": error.details.error_type}
    return "finished?"


@app.activity
async def hang(_: Any) -> None:
    await asyncio.sleep(3600)


class Quote(BaseModel):
    item: str
    quantity: int = Field(gt=0)


class Price(BaseModel):
    item: str
    total: float


@app.activity
def price_quote(quote: Quote) -> Price:
    return Price(item=quote.item, total=quote.quantity * 2.5)


@app.orchestrator
def priced(ctx: OrchestrationContext, quote: Quote) -> Generator[Any, Any, Price]:
    """Typed end to end: the input arrives as a Quote, the activity's result as a Price."""
    price = yield ctx.call_activity(price_quote, quote)
    return Price(item=price.item, total=round(price.total * 1.2, 2))


@app.orchestrator
def prices_raw(ctx: OrchestrationContext) -> Any:
    """Calls the typed activity by name with whatever input it was given."""
    try:
        return (yield ctx.call_activity("price_quote", ctx.get_input()))
    except TaskFailedError as error:
        return {
            "error": error.details.error_type,
            "message": error.details.message,
            "retriable": not error.details.is_non_retriable,
        }


_calls: dict[str, int] = {}


@app.activity
def count_calls(key: str) -> int:
    """How many times it has run for ``key`` in this worker process (1 the first time)."""
    _calls[key] = _calls.get(key, 0) + 1
    return _calls[key]


@app.activity
def fail_first_time(key: str) -> str:
    """Fails the first time it runs for ``key`` in this worker process, then succeeds."""
    _calls[f"fail:{key}"] = _calls.get(f"fail:{key}", 0) + 1
    if _calls[f"fail:{key}"] == 1:
        raise RuntimeError(f"first run for {key} fails")
    return "ok"


@app.orchestrator
def rewindable(ctx: OrchestrationContext) -> Any:
    """Fails on its first run; after a rewind, completes without repeating the first call."""
    first = yield ctx.call_activity("count_calls", ctx.instance_id)
    flaky = yield ctx.call_activity("fail_first_time", ctx.instance_id)
    last = yield ctx.call_activity("count_calls", ctx.instance_id)
    return [first, flaky, last]


# --- the property-based tests' paths (tests/e2e/test_properties_*.py) ------------------------


@app.orchestrator
def round_trip(ctx: OrchestrationContext) -> Any:
    """Takes its input through every place a value goes: the custom status, an activity's
    input and result, and a "Value" event's data; returns what it saw at each."""
    value = ctx.get_input()
    ctx.set_custom_status(value)
    echoed = yield ctx.call_activity("echo", value)
    event = yield ctx.wait_for_external_event("Value")
    return {"input": value, "activity": echoed, "event": event}


@app.orchestrator
def decoded_round_trip(ctx: OrchestrationContext) -> Any:
    """A value that orchestrator or activity code makes, which may be anything Python's
    ``json`` reads (NaN, U+0000, lone surrogates, any nesting), passed on ``via`` one place:
    "custom status", "activity input", "activity result" or "output" (returned in each case).

    Input: ``{"text": <JSON text>, "via": <place>}``."""
    spec = ctx.get_input()
    if spec["via"] == "activity result":
        return (yield ctx.call_activity("decode_json", spec["text"]))
    value = json.loads(spec["text"])
    if spec["via"] == "custom status":
        ctx.set_custom_status(value)
    elif spec["via"] == "activity input":
        yield ctx.call_activity("echo", value)
    return value


@app.activity
def decode_json(text: str) -> Any:
    return json.loads(text)


@app.orchestrator
def named_round_trip(ctx: OrchestrationContext) -> Any:
    """Waits for the event named ``event``, then runs ``returns_input`` with its data as a
    child under the instance id ``child`` (None: the default, derived from this instance's);
    returns its own instance id, the event's data and the child's output.

    Input: ``{"event": <code points>, "child": <code points> | None}``: the strings as lists
    of code points, so that any string, even one no JSON value may hold, reaches the code."""
    spec = ctx.get_input()
    event_name = "".join(map(chr, spec["event"]))
    child_id = None if spec["child"] is None else "".join(map(chr, spec["child"]))
    data = yield ctx.wait_for_external_event(event_name)
    child = yield ctx.call_sub_orchestrator("returns_input", data, child_id)
    return {"instance_id": ctx.instance_id, "event": data, "child": child}


@app.orchestrator
def returns_input(ctx: OrchestrationContext) -> Any:
    return ctx.get_input()


@app.orchestrator
def calls_http(ctx: OrchestrationContext) -> Any:
    """``call_http`` of ``uri`` (``polling`` on unless false): the answer, or the failure."""
    spec = ctx.get_input()
    try:
        response = yield ctx.call_http(
            spec.get("method", "GET"),
            spec["uri"],
            content=spec.get("content"),
            asynchronous_pattern_enabled=spec.get("polling", True),
            timeout=spec.get("timeout"),
        )
    except TaskFailedError as error:
        return {"failed": error.details.error_type, "message": error.details.message}
    return {"status": response.status_code, "content": response.content}


@app.orchestrator
def versioned_approval(ctx: OrchestrationContext) -> Any:
    """The approval shape across a deploy: from version 2.0 a compliance check runs before
    the decision; instances started before keep the path they started on."""
    steps = []
    if compare_versions(ctx.version, "2.0") >= 0:
        steps.append((yield ctx.call_activity("echo", "compliance checked")))
    decision = yield ctx.wait_for_external_event("Approval")
    steps.append((yield ctx.call_activity("echo", f"decided: {decision}")))
    return {"version": ctx.version, "steps": steps}


@app.orchestrator
def versioned_parent(ctx: OrchestrationContext) -> Any:
    """A child under this instance's version, and one under the version the input names."""
    inherited = yield ctx.call_sub_orchestrator("reports_version")
    chosen = yield ctx.call_sub_orchestrator("reports_version", version=ctx.get_input())
    return [inherited, chosen]


@app.orchestrator
def reports_version(ctx: OrchestrationContext) -> Any:
    return ctx.version
