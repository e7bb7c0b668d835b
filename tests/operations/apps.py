"""Functions deployed only for the operator-tool tests (``DF_FUNCTION_MODULES``)."""

from __future__ import annotations

from typing import Any

from durable import FunctionApp, OrchestrationContext

app = FunctionApp()


@app.orchestrator
def echo_then_wait(ctx: OrchestrationContext) -> Any:
    """Calls ``echo``, reports progress, then waits for a "Go" event: stays Running."""
    echoed = yield ctx.call_activity("echo", ctx.get_input())
    ctx.set_custom_status({"echoed": echoed, "stage": "waiting"})
    go = yield ctx.wait_for_external_event("Go")
    return {"echoed": echoed, "go": go}
