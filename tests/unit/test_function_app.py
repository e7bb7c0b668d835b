"""FunctionApp: registering orchestrators and activities, in our spelling and azure's."""

from __future__ import annotations

import pytest

from durable import ActivityContext, FunctionApp, RegistrationError

CONTEXT = ActivityContext(instance_id="i1", execution_id="e1", task_id=3, name="n")


def test_decorators_register_under_the_function_name():
    app = FunctionApp()

    @app.orchestrator
    def approve(ctx):
        yield ctx.call_activity("notify")

    @app.activity
    def notify(message):
        return message

    assert app.orchestrators == {"approve": approve}
    assert app.activities["notify"].function is notify


def test_decorators_register_under_an_explicit_name():
    app = FunctionApp()

    @app.orchestrator(name="Approval")
    def approve(ctx):
        yield ctx.call_activity("notify")

    @app.activity(name="Notify.v2")
    def notify(message):
        return message

    assert app.orchestrators == {"Approval": approve}
    assert list(app.activities) == ["Notify.v2"]


def test_registering_a_name_twice_raises():
    app = FunctionApp()
    app.activity(name="same")(lambda value: value)

    with pytest.raises(RegistrationError, match="'same' is registered twice"):
        app.activity(name="same")(lambda value: value)


@pytest.mark.parametrize("name", ["", "1starts_with_digit", "has space", "slash/name", "x" * 201])
def test_invalid_names_raise(name):
    app = FunctionApp()

    with pytest.raises(RegistrationError, match="invalid orchestrator name"):
        app.orchestrator(name=name)(lambda ctx: None)


def test_activity_with_an_activity_context_parameter_receives_the_context():
    app = FunctionApp()

    @app.activity
    def charge(order: dict, context: ActivityContext) -> str:
        return context.idempotency_key

    definition = app.activities["charge"]

    assert definition.input_parameter == "order"
    assert definition.context_parameter == "context"
    assert definition.arguments({"sku": 1}, CONTEXT) == {"order": {"sku": 1}, "context": CONTEXT}


def test_activity_context_may_come_first():
    app = FunctionApp()

    @app.activity
    async def charge(context: ActivityContext, order):
        return order

    definition = app.activities["charge"]

    assert definition.is_async
    assert definition.arguments("o", CONTEXT) == {"order": "o", "context": CONTEXT}


def test_activity_without_parameters_gets_no_arguments():
    app = FunctionApp()
    app.activity(name="tick")(lambda: None)

    assert app.activities["tick"].arguments("ignored", CONTEXT) == {}


def test_activity_with_an_extra_parameter_is_refused():
    app = FunctionApp()

    with pytest.raises(RegistrationError, match="unexpected parameters"):
        app.activity(name="two_inputs")(lambda first, second: None)


def test_azure_style_triggers_register_with_the_named_input():
    app = FunctionApp()

    @app.orchestration_trigger(context_name="context")
    def hello_orchestrator(context):
        yield context.call_activity("hello", "Tokyo")

    @app.activity_trigger(input_name="city")
    def hello(city: str) -> str:
        return f"Hello {city}!"

    assert app.orchestrators == {"hello_orchestrator": hello_orchestrator}
    assert app.activities["hello"].arguments("Tokyo", CONTEXT) == {"city": "Tokyo"}


def test_activity_trigger_naming_a_missing_parameter_is_refused():
    app = FunctionApp()

    with pytest.raises(RegistrationError, match="no parameter 'city'"):
        app.activity_trigger(input_name="city", activity="greet")(lambda town: town)


def test_function_name_above_a_trigger_renames_the_function():
    app = FunctionApp()

    @app.function_name(name="HelloOrchestrator")
    @app.orchestration_trigger(context_name="context")
    def hello_orchestrator(context):
        yield context.call_activity("SayHello", "Tokyo")

    @app.function_name(name="SayHello")
    @app.activity_trigger(input_name="city")
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    assert app.orchestrators == {"HelloOrchestrator": hello_orchestrator}
    assert list(app.activities) == ["SayHello"]
    assert app.activities["SayHello"].input_parameter == "city"
    assert say_hello.__durable_name__ == "SayHello"


def test_only_activities_registered_local_are_local_and_a_rename_keeps_it():
    app = FunctionApp()

    @app.activity
    def remote(value):
        return value

    @app.function_name(name="Quick")
    @app.activity(local=True)
    def quick(value):
        return value

    assert not app.activities["remote"].local
    assert app.activities["Quick"].local
    assert app.activities["Quick"].function is quick


def test_merge_adds_the_other_apps_functions():
    first, second = FunctionApp(), FunctionApp()
    first.orchestrator(name="one")(lambda ctx: None)
    second.orchestrator(name="two")(lambda ctx: None)
    second.activity(name="act")(lambda value: value)

    first.merge(second)
    first.merge(second)

    assert sorted(first.orchestrators) == ["one", "two"]
    assert list(first.activities) == ["act"]


@pytest.mark.parametrize("kind", ["orchestrator", "activity"])
def test_merge_of_two_different_functions_under_one_name_raises(kind):
    first, second = FunctionApp(), FunctionApp()
    getattr(first, kind)(name="clash")(lambda value: value)
    getattr(second, kind)(name="clash")(lambda value: value)

    with pytest.raises(RegistrationError, match=f"{kind} 'clash' is registered twice"):
        first.merge(second)


def test_an_orchestrator_names_its_protected_events_and_keeps_them_through_rename_and_merge():
    app = FunctionApp()

    @app.orchestrator(name="review", protected_events=["Verdict", "Veto", "Verdict"])
    def review(ctx):
        yield ctx.wait_for_external_event("Verdict")

    @app.orchestrator
    def open_to_all(ctx):
        yield ctx.wait_for_external_event("Anything")

    assert app.protected_events == {"review": ("Verdict", "Veto")}
    app.function_name("review_v2")(review)
    assert app.protected_events == {"review_v2": ("Verdict", "Veto")}
    combined = FunctionApp()
    combined.merge(app)
    assert combined.protected_events == {"review_v2": ("Verdict", "Veto")}


@pytest.mark.parametrize("events", ["ApprovalResponse", [""], [" "], [None]])
def test_protected_events_must_be_a_list_of_names(events):
    app = FunctionApp()

    with pytest.raises(RegistrationError, match="protected"):
        app.orchestrator(name="review", protected_events=events)
