"""Sample function app: Durable Functions' "Hello cities" chain and a fan-out/fan-in.

Loaded by the services through ``DF_FUNCTION_MODULES=workflows.samples`` like any other
deployed function app.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable import FunctionApp, OrchestrationContext

app = FunctionApp()

CITIES = ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]


@app.orchestrator
def hello_cities(ctx: OrchestrationContext) -> Generator[Any, Any, list[str]]:
    """Function chaining: each activity runs after the previous one, results collected."""
    cities = ctx.get_input() or CITIES
    greetings: list[str] = []
    for city in cities:
        ctx.set_custom_status({"greeting": city, "done": len(greetings), "of": len(cities)})
        greetings.append((yield ctx.call_activity("say_hello", city)))
    return greetings


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
async def fan_out_fan_in(ctx: OrchestrationContext) -> int:
    """Fan-out/fan-in: ``n`` activities in parallel, their results summed.

    Written as ``async def`` to show that style; ``yield`` works the same way.
    """
    count = int(ctx.get_input() or 10)
    squares = await ctx.task_all([ctx.call_activity("square", number) for number in range(count)])
    return sum(squares)


@app.activity
async def square(number: int) -> int:
    return number * number
