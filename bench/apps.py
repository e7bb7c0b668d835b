"""The benchmark's function app: orchestrators and activities the workloads need.

Loaded by the services through ``DF_FUNCTION_MODULES=workflows.samples,bench.apps``, like any
deployed function app; W2 uses ``workflows.samples.hello_cities`` itself.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from durable import EntityContext, FunctionApp, OrchestrationContext
from workflows.samples import CITIES

app = FunctionApp()


@app.activity
def bench_noop(value: Any) -> Any:
    """A no-op activity: what is measured is the runtime around it."""
    return value


@app.activity(local=True)
def bench_noop_local(value: Any) -> Any:
    """The same no-op as a local activity: run by the orchestrator itself."""
    return value


@app.orchestrator
def bench_sequence(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """W1: ``steps`` no-op activities one after the other; returns how many ran. The input
    is the number of steps, or ``{"steps": n, "activity": name}``."""
    spec = ctx.get_input()
    if not isinstance(spec, dict):
        spec = {"steps": spec}
    activity = str(spec.get("activity", "bench_noop"))
    done = 0
    for step in range(int(spec["steps"])):
        done += (yield ctx.call_activity(activity, step)) == step
    return done


@app.activity(local=True)
def say_hello_local(city: str) -> str:
    """``workflows.samples.say_hello`` as a local activity."""
    return f"Hello {city}!"


@app.orchestrator
def hello_cities_local(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    """W2: ``workflows.samples.hello_cities`` step for step, calling ``say_hello_local``."""
    cities = ctx.get_input() or CITIES
    greetings: list[str] = []
    for city in cities:
        ctx.set_custom_status({"greeting": city, "done": len(greetings), "of": len(cities)})
        greetings.append((yield ctx.call_activity("say_hello_local", city)))
    return greetings


@app.orchestrator
def bench_fan_out(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """W3: ``count`` no-op activities in parallel; returns the sum of their results."""
    count = int(ctx.get_input())
    results = yield ctx.task_all([ctx.call_activity("bench_noop", i) for i in range(count)])
    return int(sum(results))


@app.orchestrator
def bench_padded_chain(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """W6: grows the history with a fan-out of ``pad`` activities (about two events each),
    says it is "padded" and waits for a "Go" event, then runs ``steps`` sequential
    activities, the steps whose cost is measured. The harness sends "Go" to a short and a
    long chain together, so that both lengths are measured at the same moments."""
    spec = ctx.get_input()
    pad = int(spec["pad"])
    if pad:
        yield ctx.task_all([ctx.call_activity("bench_noop", i) for i in range(pad)])
    ctx.set_custom_status("padded")
    yield ctx.wait_for_external_event("Go")
    for step in range(int(spec["steps"])):
        yield ctx.call_activity("bench_noop", step)
    return pad + int(spec["steps"])


@app.orchestrator
def bench_event_waiter(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """W4: waits for ``count`` "Ping" events, one after the other; returns their sum."""
    total = 0
    for _ in range(int(ctx.get_input())):
        total += int((yield ctx.wait_for_external_event("Ping")))
    return total


@app.orchestrator
def bench_timers(ctx: OrchestrationContext) -> Generator[Any, Any, int]:
    """W5: one durable timer per delay (seconds ahead), all waited for together; returns how
    many fired. Each fire is its own ``TimerFired`` event, recorded when it arrives."""
    delays = [float(delay) for delay in ctx.get_input()]
    now: datetime = ctx.current_utc_datetime
    yield ctx.task_all([ctx.create_timer(now + timedelta(seconds=d)) for d in delays])
    return len(delays)


@app.orchestrator
def bench_approval(ctx: OrchestrationContext) -> Generator[Any, Any, Any]:
    """W7: waits (without a deadline) for an "Approval" event and returns its data."""
    return (yield ctx.wait_for_external_event("Approval"))


@app.entity
def bench_counter(ctx: EntityContext) -> None:
    """W9's entity: adds each signal's input to its state."""
    ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())
