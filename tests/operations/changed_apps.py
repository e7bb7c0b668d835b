"""``echo_then_wait`` after a careless change: it now calls a different activity first.

Loaded instead of ``tests.operations.apps`` to check that the replay check catches it.
"""

from __future__ import annotations

from typing import Any

from durable import FunctionApp, OrchestrationContext

app = FunctionApp()


@app.orchestrator
def echo_then_wait(ctx: OrchestrationContext) -> Any:
    greeted = yield ctx.call_activity("say_hello", ctx.get_input())
    ctx.set_custom_status({"echoed": greeted, "stage": "waiting"})
    go = yield ctx.wait_for_external_event("Go")
    return {"echoed": greeted, "go": go}
