"""Loading the deployed function apps named in the configuration."""

from __future__ import annotations

import importlib

from durable.app import FunctionApp


class FunctionModuleError(RuntimeError):
    """A configured function module cannot be imported or holds no FunctionApp."""


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
