"""Registering orchestrators and activities: ``FunctionApp``.

A function app is a module that creates a ``FunctionApp`` and decorates functions with it.
The services import the modules named in their configuration (``DF_FUNCTION_MODULES``) and
collect every ``FunctionApp`` they find, so a team deploys its own functions without touching
the services::

    app = FunctionApp()

    @app.orchestrator
    def hello_cities(ctx):
        return [(yield ctx.call_activity("say_hello", city)) for city in ("Tokyo", "London")]

    @app.activity
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

azure-functions-durable's decorators (``orchestration_trigger``, ``activity_trigger``,
``function_name``) are accepted too, so function apps written for it load unchanged.

An orchestrator may name *protected events*: events that decide something (a sign-off) and
that only a management key may raise over the HTTP API, never a start key
(``@app.orchestrator(protected_events=["SignOff"])``, ADR 20).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from contracts.typed import adapter_for, checked, returned_type, type_hints
from durable.activity import ActivityContext

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,199}$")


class RegistrationError(ValueError):
    """A function cannot be registered (bad name, duplicate name, unsupported signature)."""


@dataclass(frozen=True)
class ActivityDefinition:
    """How to call one activity function.

    Attributes:
        name: the registered name orchestrators call it by.
        function: the function itself.
        is_async: run on the event loop (``async def``) rather than in the thread pool.
        input_parameter: the parameter that receives the task's input, if any.
        context_parameter: the parameter that receives the ``ActivityContext``, if any.
        input_type: validates and converts the input when its annotation involves a pydantic
            model (see ``contracts.typed``).
        output_type: the same for the return value.
        local: run by the orchestrator itself, right after the step that calls it is
            committed, rather than by the activity service (a broker round trip less per
            call); the activity service runs it only if the orchestrator dies first. For
            short work; see the guide's activities page.
    """

    name: str
    function: Callable[..., Any]
    is_async: bool
    input_parameter: str | None
    context_parameter: str | None
    input_type: TypeAdapter[Any] | None = None
    output_type: TypeAdapter[Any] | None = None
    local: bool = False

    def arguments(self, input_: Any, context: ActivityContext) -> dict[str, Any]:
        """Keyword arguments for one call; raises ``BoundaryError`` for an input that does
        not match the input parameter's model."""
        arguments: dict[str, Any] = {}
        if self.input_parameter is not None:
            arguments[self.input_parameter] = checked(
                self.input_type, input_, f"activity {self.name!r}", "input"
            )
        if self.context_parameter is not None:
            arguments[self.context_parameter] = context
        return arguments

    def checked_output(self, output: Any) -> Any:
        """The return value, validated against the return annotation's model."""
        return checked(self.output_type, output, f"activity {self.name!r}", "output")


class FunctionApp:
    """A set of orchestrator and activity functions, registered by name."""

    def __init__(self) -> None:
        self.orchestrators: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, ActivityDefinition] = {}
        self.entities: dict[str, Callable[..., Any]] = {}
        """Entity name, lower-cased as entity ids spell it -> the entity function (ADR 38)."""
        self.protected_events: dict[str, tuple[str, ...]] = {}
        """Orchestrator name -> the events only a management key may raise on its instances
        over HTTP (names as declared; the HTTP API compares them case-insensitively)."""

    # --- our decorators ----------------------------------------------------------------------

    @overload
    def orchestrator(self, function: F) -> F: ...
    @overload
    def orchestrator(
        self, *, name: str | None = None, protected_events: Iterable[str] = ()
    ) -> Callable[[F], F]: ...

    def orchestrator(
        self,
        function: F | None = None,
        *,
        name: str | None = None,
        protected_events: Iterable[str] = (),
    ) -> F | Callable[[F], F]:
        """Register an orchestrator (a generator or ``async def`` function taking the context).

        ``protected_events``: events that only a management key may raise on its instances
        over the HTTP API; a start key may raise every other event. For events that decide
        something, such as the answer of the person who signs off.
        """
        protected = _protected_events(protected_events)

        def register(fn: F) -> F:
            registered = name or fn.__name__
            self._add_orchestrator(registered, fn)
            if protected:
                self.protected_events[registered] = protected
            return fn

        return register(function) if function is not None else register

    @overload
    def activity(self, function: F) -> F: ...
    @overload
    def activity(self, *, name: str | None = None, local: bool = False) -> Callable[[F], F]: ...

    def activity(
        self, function: F | None = None, *, name: str | None = None, local: bool = False
    ) -> F | Callable[[F], F]:
        """Register an activity: sync functions run in a thread pool, ``async def`` on the loop.

        The first parameter receives the input; a parameter annotated ``ActivityContext``
        receives the task's context (instance id, task id, idempotency key). ``local=True``
        has the orchestrator run it itself (``ActivityDefinition.local``).
        """

        def register(fn: F) -> F:
            self._add_activity(name or fn.__name__, fn, input_parameter=None, local=local)
            return fn

        return register(function) if function is not None else register

    @overload
    def entity(self, function: F) -> F: ...
    @overload
    def entity(self, *, name: str | None = None) -> Callable[[F], F]: ...

    def entity(self, function: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
        """Register an entity function: a plain function taking an ``EntityContext``, run for
        each operation on an entity of that name (``durable.entities``). Entity names are
        case-insensitive, as entity ids lower-case them."""

        def register(fn: F) -> F:
            self._add_entity(name or fn.__name__, fn)
            return fn

        return register(function) if function is not None else register

    # --- azure-functions-durable spellings ---------------------------------------------------

    def entity_trigger(self, context_name: str, entity_name: str | None = None) -> Callable[[F], F]:
        """azure-functions-durable's entity decorator; ``context_name`` is accepted as is."""
        del context_name  # the context is always the function's only argument

        def register(fn: F) -> F:
            self._add_entity(entity_name or fn.__name__, fn)
            return fn

        return register

    def orchestration_trigger(
        self, context_name: str, orchestration: str | None = None
    ) -> Callable[[F], F]:
        """azure-functions-durable's orchestrator decorator; ``context_name`` is accepted as is."""
        del context_name  # the context is always the function's only argument

        def register(fn: F) -> F:
            self._add_orchestrator(orchestration or fn.__name__, fn)
            return fn

        return register

    def activity_trigger(self, input_name: str, activity: str | None = None) -> Callable[[F], F]:
        """azure-functions-durable's activity decorator; the input goes to ``input_name``."""

        def register(fn: F) -> F:
            self._add_activity(activity or fn.__name__, fn, input_parameter=input_name)
            return fn

        return register

    def function_name(self, name: str) -> Callable[[F], F]:
        """azure-functions-durable's renaming decorator (placed above the trigger)."""

        def rename(fn: F) -> F:
            if not _NAME.match(name):
                self._check_new(name, {}, "function")  # raises, naming the rule
            for old, registered in list(self.orchestrators.items()):
                if registered is fn:
                    del self.orchestrators[old]
                    self._add_orchestrator(name, fn)
                    if old in self.protected_events:
                        self.protected_events[name] = self.protected_events.pop(old)
            for old, definition in list(self.activities.items()):
                if definition.function is fn:
                    del self.activities[old]
                    self._add_activity(
                        name,
                        fn,
                        input_parameter=definition.input_parameter,
                        local=definition.local,
                    )
            return fn

        return rename

    # --- merging -----------------------------------------------------------------------------

    def merge(self, other: FunctionApp) -> None:
        """Add every function of ``other``; a name registered twice is an error."""
        for name, function in other.orchestrators.items():
            if self.orchestrators.get(name) is not function:
                self._check_new(name, self.orchestrators, "orchestrator")
                self.orchestrators[name] = function
                if name in other.protected_events:
                    self.protected_events[name] = other.protected_events[name]
        for name, function in other.entities.items():
            if self.entities.get(name) is not function:
                self._check_new(name, self.entities, "entity")
                self.entities[name] = function
        for name, definition in other.activities.items():
            existing = self.activities.get(name)
            if existing is None or existing.function is not definition.function:
                self._check_new(name, self.activities, "activity")
                self.activities[name] = definition

    # --- internals ---------------------------------------------------------------------------

    def _add_orchestrator(self, name: str, fn: Callable[..., Any]) -> None:
        self._check_new(name, self.orchestrators, "orchestrator")
        fn.__durable_name__ = name  # type: ignore[attr-defined]
        self.orchestrators[name] = fn

    def _add_entity(self, name: str, fn: Callable[..., Any]) -> None:
        if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
            raise RegistrationError(
                f"entity {name!r} must be a plain function: an operation runs to its end at "
                "once, inside the orchestrator's batch (no awaiting, no yielding)"
            )
        self._check_new(name, self.entities, "entity")
        self._check_new(name.lower(), self.entities, "entity")
        fn.__durable_name__ = name.lower()  # type: ignore[attr-defined]
        self.entities[name.lower()] = fn

    def _add_activity(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        input_parameter: str | None,
        local: bool = False,
    ) -> None:
        self._check_new(name, self.activities, "activity")
        fn.__durable_name__ = name  # type: ignore[attr-defined]
        self.activities[name] = _describe_activity(name, fn, input_parameter, local)

    @staticmethod
    def _check_new(name: str, registry: dict[str, Any], kind: str) -> None:
        if not _NAME.match(name):
            raise RegistrationError(
                f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' "
                "(starting with a letter or '_'), at most 200 characters"
            )
        if name in registry:
            raise RegistrationError(f"{kind} {name!r} is registered twice")


def _protected_events(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):  # a lone name would otherwise protect each of its letters
        raise RegistrationError(f"protected_events takes a list of event names, not {names!r}")
    listed = list(names)
    for event in listed:
        if not isinstance(event, str) or not event.strip():
            raise RegistrationError(f"invalid protected event name {event!r}")
    return tuple(sorted(set(listed)))


def _describe_activity(
    name: str, fn: Callable[..., Any], input_parameter: str | None, local: bool
) -> ActivityDefinition:
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError):  # an annotation that cannot be resolved: compare by name
        signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    context_parameter = next(
        (p.name for p in parameters if p.annotation in (ActivityContext, "ActivityContext")), None
    )
    others = [p.name for p in parameters if p.name != context_parameter]
    if input_parameter is None:
        input_parameter = others[0] if others else None
    elif input_parameter not in others:
        raise RegistrationError(f"activity {name!r} has no parameter {input_parameter!r}")
    extra = [p for p in others if p != input_parameter]
    if extra:
        raise RegistrationError(
            f"activity {name!r} takes unexpected parameters {extra}: an activity takes its "
            "input, and optionally a parameter annotated ActivityContext"
        )
    hints = type_hints(fn)
    return ActivityDefinition(
        name=name,
        function=fn,
        is_async=inspect.iscoroutinefunction(fn),
        input_parameter=input_parameter,
        context_parameter=context_parameter,
        input_type=adapter_for(hints.get(input_parameter or "", inspect.Parameter.empty)),
        output_type=adapter_for(returned_type(fn)),
        local=local,
    )
