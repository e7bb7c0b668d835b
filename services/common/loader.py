"""Loading what the configuration names: the deployed function apps, and the broker entry
points the client service consumes (``durable.entry_points``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from durable.app import FunctionApp
from durable.entry_points import EntryPoints
from durable.settings import CommonSettings

ENTRY_POINTS_ATTRIBUTE = "entry_points"


class FunctionModuleError(RuntimeError):
    """A configured function module cannot be imported or holds no FunctionApp."""


class EntryPointsError(RuntimeError):
    """A configured entry-point reference cannot be imported or is not a declaration."""


def load_function_apps(modules: list[str]) -> FunctionApp:
    """Import each module and merge every ``FunctionApp`` defined at its top level."""
    combined = FunctionApp()
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise FunctionModuleError(
                f"cannot import function module {module_name!r} (from DF_FUNCTION_MODULES): {error}"
            ) from error
        apps = [value for value in vars(module).values() if isinstance(value, FunctionApp)]
        if not apps:
            raise FunctionModuleError(f"module {module_name!r} defines no FunctionApp")
        for app in apps:
            combined.merge(app)
    return combined


def load_entry_points(settings: CommonSettings) -> EntryPoints:
    """The deployment's broker entry points, every declaration called now if it is a function.

    ``DF_ENTRY_POINTS`` lists references, ``module`` (its ``entry_points``) or
    ``module:name``; each must name a declaration. Unset, the function modules
    (``DF_FUNCTION_MODULES``) that define ``entry_points`` are taken; set empty, none.

    Raises:
        EntryPointsError: a reference cannot be imported or names no declaration.
        Exception: whatever a declaring function raises (e.g. its settings are invalid).
    """
    if settings.entry_points is None:
        references, required = settings.modules, False
    else:
        references = [name.strip() for name in settings.entry_points.split(",") if name.strip()]
        required = True
    declarations: list[EntryPoints] = []
    for reference in references:
        module_name, _, attribute = reference.partition(":")
        module = _import(module_name.strip(), reference, required)
        name = attribute.strip() or ENTRY_POINTS_ATTRIBUTE
        value = getattr(module, name, None)
        if value is None and not required:
            continue
        if value is None:
            raise EntryPointsError(f"{reference!r} (from DF_ENTRY_POINTS) defines no {name!r}")
        if callable(value):
            value = value()
        if not isinstance(value, EntryPoints):
            raise EntryPointsError(
                f"{reference!r} (from DF_ENTRY_POINTS) is not an EntryPoints declaration, "
                f"nor a function returning one: {type(value).__name__}"
            )
        declarations.append(value)
    return EntryPoints.combined(declarations)


def _import(module_name: str, reference: str, required: bool) -> ModuleType:
    setting = "DF_ENTRY_POINTS" if required else "DF_FUNCTION_MODULES"
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise EntryPointsError(
            f"cannot import entry points {reference!r} (from {setting}): {error}"
        ) from error
