"""Orchestrators only the integration tests drive (merged into the handler's function app)."""

from __future__ import annotations

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
