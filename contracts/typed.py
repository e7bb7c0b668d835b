"""Typed boundaries: values checked against annotations that involve pydantic models.

Used where a value crosses into or out of user code: an activity's input and output, an
orchestrator's input and output, a result handed back to an orchestrator. Only annotations
that involve a pydantic model are enforced (``Order``, ``list[Order]``, ``Order | None``);
plain ``str`` or ``dict`` annotations are left as documentation, as they always were.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError


class BoundaryError(ValueError):
    """A value does not match the annotation of the function it is passed to or returned from.

    Attributes:
        function: the function's kind and name, e.g. ``activity 'charge'``.
        what: ``input`` or ``output``.
        fields: the offending fields, as dotted paths.
    """

    def __init__(self, function: str, what: str, error: ValidationError) -> None:
        problems = [
            (".".join(str(part) for part in item["loc"]) or "(the value)", item["msg"])
            for item in error.errors()
        ]
        details = "; ".join(f"{field}: {message}" for field, message in problems)
        super().__init__(f"the {what} of {function} does not match its type: {details}")
        self.function = function
        self.what = what
        self.fields = [field for field, _ in problems]


def involves_model(annotation: Any) -> bool:
    """Whether ``annotation`` is, or contains, a pydantic model."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return True
    return any(involves_model(argument) for argument in typing.get_args(annotation))


def adapter_for(annotation: Any) -> TypeAdapter[Any] | None:
    """A validator for ``annotation`` when it involves a pydantic model, else None."""
    if annotation is inspect.Parameter.empty or not involves_model(annotation):
        return None
    return TypeAdapter(annotation)


def checked(adapter: TypeAdapter[Any] | None, value: Any, function: str, what: str) -> Any:
    """``value`` validated (and converted, e.g. a dict into a model) by ``adapter``."""
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise BoundaryError(function, what, error) from None


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved annotations (string annotations included); {} when they
    cannot be resolved."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # an unresolvable annotation: treat the function as untyped
        return {}


def returned_type(function: Callable[..., Any]) -> Any:
    """What the function produces: the return annotation of an ``async def`` or plain
    function, the third argument of ``Generator[Y, S, R]`` for a generator function."""
    annotation = type_hints(function).get("return", inspect.Parameter.empty)
    if inspect.isgeneratorfunction(function):
        origin = typing.get_origin(annotation)
        if origin in (collections.abc.Generator, typing.Generator):
            arguments = typing.get_args(annotation)
            return arguments[2] if len(arguments) == 3 else inspect.Parameter.empty
        return inspect.Parameter.empty
    return annotation
