"""Where orchestrators meet typed values: their own input and output, and the results of
functions they call by reference (``ctx.call_activity(charge, order)``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from contracts.typed import adapter_for, checked, returned_type, type_hints


@dataclass(frozen=True)
class OrchestratorTypes:
    """How to call an orchestrator: whether it takes its input as a second parameter (and of
    what model), and what model its output must match."""

    takes_input: bool
    input: TypeAdapter[Any] | None
    output: TypeAdapter[Any] | None


@functools.cache
def orchestrator_types(orchestrator: Callable[..., Any]) -> OrchestratorTypes:
    parameters = list(inspect.signature(orchestrator).parameters.values())
    hints = type_hints(orchestrator)
    takes_input = len(parameters) >= 2
    annotation = hints.get(parameters[1].name, inspect.Parameter.empty) if takes_input else None
    return OrchestratorTypes(
        takes_input=takes_input,
        input=adapter_for(annotation) if takes_input else None,
        output=adapter_for(returned_type(orchestrator)),
    )


def result_converter(function: Any, description: str) -> Callable[[Any], Any] | None:
    """For a function called by reference: turns its JSON result back into its return
    annotation's model (None when it has none, or was called by name)."""
    if not callable(function):
        return None
    adapter = adapter_for(returned_type(function))
    if adapter is None:
        return None
    return functools.partial(checked, adapter, function=description, what="result")
