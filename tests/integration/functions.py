"""Orchestrators only the integration tests drive (merged into the handler's function app)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from durable import FunctionApp, OrchestrationContext, TaskFailedError

app = FunctionApp()


@app.orchestrator
def carries_on_after_a_failure(ctx: OrchestrationContext) -> Any:
    """Stays running after its first task fails, so a duplicate failure meets a live instance."""
    caught: str | None = None
    try:
        yield ctx.call_activity("always_fails", ctx.get_input())
    except TaskFailedError as error:
        caught = error.details.error_type
    after = yield ctx.call_activity("echo", "after the failure")
    return {"caught": caught, "after": after}


@app.activity(local=True)
def shout(word: str) -> str:
    """A local activity: the orchestrator runs it itself."""
    return f"{word.upper()}!"


@app.orchestrator
def shouts(ctx: OrchestrationContext) -> Any:
    """Shouts each word in turn, through the local activity."""
    shouted = []
    for word in ctx.get_input():
        shouted.append((yield ctx.call_activity("shout", word)))
    return shouted


@app.activity(local=True)
def dawdle(word: str) -> str:
    """A plain local activity that takes a while (50 ms)."""
    time.sleep(0.05)
    return word


@app.orchestrator
def dawdles(ctx: OrchestrationContext) -> Any:
    """Passes each word through ``dawdle`` in turn."""
    passed = []
    for word in ctx.get_input():
        passed.append((yield ctx.call_activity("dawdle", word)))
    return passed


# The test that drives ``held_local`` opens its gate and counts its runs, by key.
LOCAL_GATES: dict[str, asyncio.Event] = {}
LOCAL_STARTED: dict[str, asyncio.Event] = {}
LOCAL_RUNS: dict[str, int] = {}


@app.activity(local=True)
async def held_local(key: str) -> str:
    """A local activity that finishes only once its test opens its gate."""
    LOCAL_RUNS[key] = LOCAL_RUNS.get(key, 0) + 1
    LOCAL_STARTED[key].set()
    await LOCAL_GATES[key].wait()
    return f"done {key}"


@app.orchestrator
def calls_held_local(ctx: OrchestrationContext) -> Any:
    return (yield ctx.call_activity("held_local", ctx.get_input()))
