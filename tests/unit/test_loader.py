"""Loading the function apps named in DF_FUNCTION_MODULES."""

from __future__ import annotations

import pytest

from services.common.loader import FunctionModuleError, load_function_apps


def test_loads_and_merges_the_sample_and_test_apps():
    functions = load_function_apps(["workflows.samples", "tests.apps.functions"])

    assert {"hello_cities", "fan_out_fan_in", "catches_failing_activity"} <= set(
        functions.orchestrators
    )
    assert {"say_hello", "square", "echo", "always_fails", "slow_echo"} <= set(functions.activities)
    assert functions.activities["slow_echo"].context_parameter == "context"


def test_missing_module_is_a_clear_error_naming_it():
    with pytest.raises(
        FunctionModuleError, match=r"cannot import function module 'workflows\.nope'"
    ):
        load_function_apps(["workflows.samples", "workflows.nope"])


def test_module_without_a_function_app_is_a_clear_error():
    with pytest.raises(FunctionModuleError, match=r"'contracts\.status' defines no FunctionApp"):
        load_function_apps(["contracts.status"])
