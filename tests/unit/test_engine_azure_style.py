"""Orchestrators written for azure-functions-durable run unchanged."""

from __future__ import annotations

from contracts import OrchestrationStatus, TaskScheduled
from durable import DurableOrchestrationContext, FunctionApp
from engine import replay
from tests.helpers.history import HistoryBuilder

app = FunctionApp()


@app.orchestration_trigger(context_name="context")
def greet_everyone(context: DurableOrchestrationContext):
    cities = context.get_input()
    first = yield context.call_activity("Hello", input_=cities[0])
    tasks = [context.call_activity("Hello", input_=city) for city in cities[1:]]
    rest = yield context.task_all(tasks)
    fastest = context.call_activity("Hello", "fast")
    slowest = context.call_activity("Hello", "slow")
    winner = yield context.task_any([slowest, fastest])
    return {"first": first, "rest": rest, "fastest_won": winner == fastest}


@app.activity_trigger(input_name="city")
def Hello(city: str) -> str:  # azure's samples capitalise activity names
    return f"Hello {city}!"


def test_azure_style_orchestrator_schedules_with_keyword_input():
    history = HistoryBuilder().start("greet_everyone", input=["Tokyo", "Seattle", "London"])

    decision = replay(app.orchestrators["greet_everyone"], "i1", [], history.events)

    assert decision.new_events == [
        TaskScheduled(event_id=0, timestamp=history.now, name="Hello", input="Tokyo")
    ]


def test_azure_style_orchestrator_runs_to_completion():
    history = HistoryBuilder().start("greet_everyone", input=["Tokyo", "Seattle", "London"])
    history.scheduled(0, "Hello", "Tokyo")
    history.episode().completed(0, "Hello Tokyo!")
    history.scheduled(1, "Hello", "Seattle").scheduled(2, "Hello", "London")
    history.episode().completed(2, "Hello London!").completed(1, "Hello Seattle!")
    history.scheduled(3, "Hello", "fast").scheduled(4, "Hello", "slow")
    history.episode().completed(4, "Hello slow!").completed(3, "Hello fast!")
    past, new = history.split()

    decision = replay(greet_everyone, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {
        "first": "Hello Tokyo!",
        "rest": ["Hello Seattle!", "Hello London!"],
        "fastest_won": False,
    }


def test_call_activity_accepts_the_activity_function_and_uses_its_registered_name():
    renamed = FunctionApp()

    @renamed.activity(name="SayHello")
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    def orchestrator(ctx):
        yield ctx.call_activity(say_hello, "Cairo")
        yield ctx.call_activity(Hello, "Oslo")

    history = HistoryBuilder().start("hello").scheduled(0, "SayHello", "Cairo")
    history.episode().completed(0)
    decision = replay(orchestrator, "i1", history.events)

    assert decision.non_determinism is None
    assert decision.new_events == [
        TaskScheduled(event_id=1, timestamp=history.now, name="Hello", input="Oslo")
    ]


def test_call_activity_with_an_unregistered_function_uses_its_name():
    def plain_function(value):
        return value

    def orchestrator(ctx):
        yield ctx.call_activity(plain_function, 1)

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("plain").events)

    assert decision.new_events[0].name == "plain_function"
