"""Trace context propagation (ADR 32): the helpers that turn spans into ``traceparent``
strings and back, the messages that carry them (and carry nothing while tracing is off),
the episode's span, the activity's span, and the set-up from ``OTEL_*``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from contracts import (
    ActivityTask,
    ActivityTaskMessage,
    Envelope,
    ExecutionStarted,
    OrchestrationStatus,
    OrchestratorMessage,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
    Topology,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage, carrier
from engine import Decision
from services.common import tracing
from services.common.activity_runner import ActivityRunner
from services.orchestrator.cache import InstanceState
from services.orchestrator.dispatch import messages_for
from services.orchestrator.episode import Batch, child_start
from services.orchestrator.followups import start_message
from services.orchestrator.traces import end_episode_spans, trace_episode

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TOPOLOGY = Topology(namespace="t", partitions=2)


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, its spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


def _state(traceparent: str | None = None) -> InstanceState:
    return InstanceState("i-1", "chain", "e-1", "c-1", 0, None, traceparent=traceparent)


def _task(traceparent: str | None, name: str = "greet") -> ActivityTaskMessage:
    return ActivityTaskMessage(
        envelope=Envelope(
            message_id=uuid.uuid4(),
            instance_id="i-1",
            execution_id="e-1",
            correlation_id="c-1",
            type="ActivityTask",
            sent_at=NOW,
            traceparent=traceparent,
        ),
        body=ActivityTask(name=name, input="Oslo", task_scheduled_id=3),
    )


def _started(traceparent: str | None) -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=NOW, name="chain", execution_id="e-1", traceparent=traceparent
    )


# --- the context as a string --------------------------------------------------------------


def test_a_traceparent_names_the_span_it_was_taken_from(exported: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent:
        traceparent = tracing.traceparent_of(parent)
    assert traceparent is not None
    child = tracer.start_span("child", context=tracing.context_of(traceparent))
    child.end()
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context.trace_id == parent.get_span_context().trace_id


def test_no_or_a_broken_traceparent_gives_no_context() -> None:
    assert tracing.traceparent_of(None) is None
    assert tracing.context_of(None) is None
    assert tracing.context_of("00-not-a-trace-01") is None
    assert tracing.context_from_headers({"traceparent": 7}) is None
    assert tracing.context_from_headers(None) is None


def test_an_amqp_header_read_as_bytes_is_a_context() -> None:
    context = tracing.context_from_headers({"traceparent": TRACEPARENT.encode()})
    assert context is not None


# --- what travels in messages -------------------------------------------------------------


def test_without_tracing_messages_and_events_carry_nothing_more() -> None:
    task = _task(None)
    outgoing = OutgoingMessage.of(task, "x", "greet")
    assert b"traceparent" not in outgoing.body
    assert outgoing.headers == {}
    assert "traceparent" not in _started(None).model_dump_json()

    state = _state()
    decision_events = [
        TaskScheduled(timestamp=NOW, event_id=0, name="greet"),
        TimerCreated(timestamp=NOW, event_id=1, fire_at=NOW + timedelta(hours=1)),
    ]
    messages, _ = messages_for(TOPOLOGY, state, decision_events, NOW)
    child = child_start(
        state,
        SubOrchestrationInstanceCreated(timestamp=NOW, event_id=2, name="c", instance_id="k"),
    )
    start = start_message(TOPOLOGY, "k", "c", "e-2", None, "c-1", None, NOW)
    for message in [*messages, start]:
        assert b"traceparent" not in message.body
        assert message.headers == {}
    assert child.traceparent is None


def test_a_traced_message_carries_its_context_in_the_body_and_in_the_amqp_header() -> None:
    outgoing = OutgoingMessage.of(_task(TRACEPARENT), "x", "greet")
    assert json.loads(outgoing.body)["envelope"]["traceparent"] == TRACEPARENT
    assert outgoing.headers == {"traceparent": TRACEPARENT}


def test_each_message_in_a_carrier_keeps_its_own_context() -> None:
    other = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
    singles = [OutgoingMessage.of(_task(tp), "x", "greet") for tp in (TRACEPARENT, other, None)]
    carried = carrier(singles, "ActivityTaskBatch")
    contexts = [m["envelope"].get("traceparent") for m in json.loads(carried.body)]
    assert contexts == [TRACEPARENT, other, None]


def test_a_traceparent_that_is_not_w3c_is_refused() -> None:
    with pytest.raises(ValidationError, match="traceparent"):
        _started("00-short-01")


def test_an_episodes_tasks_children_and_next_execution_carry_their_contexts() -> None:
    state = _state(TRACEPARENT)
    state.episode_traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
    [task], _ = messages_for(
        TOPOLOGY, state, [TaskScheduled(timestamp=NOW, event_id=0, name="greet")], NOW
    )
    assert json.loads(task.body)["envelope"]["traceparent"] == state.episode_traceparent
    created = SubOrchestrationInstanceCreated(timestamp=NOW, event_id=1, name="c", instance_id="k")
    assert child_start(state, created).traceparent == state.episode_traceparent
    start = start_message(TOPOLOGY, "k", "c", "e-2", None, "c", None, NOW, traceparent=TRACEPARENT)
    assert json.loads(start.body)["body"]["traceparent"] == TRACEPARENT


# --- the episode's span -------------------------------------------------------------------


def test_an_episode_is_a_span_in_its_instances_trace_and_its_tasks_are_its_children(
    exported: InMemorySpanExporter,
) -> None:
    state, batch = _state(TRACEPARENT), Batch()
    decision = Decision(
        new_events=[
            TaskScheduled(timestamp=NOW, event_id=0, name="greet"),
            TimerCreated(timestamp=NOW, event_id=1, fire_at=NOW + timedelta(hours=1)),
        ]
    )
    trace_episode(state, [(OrchestratorStarted(timestamp=NOW), None)], decision, batch)
    assert exported.get_finished_spans() == ()  # ended with its batch
    end_episode_spans(batch)

    [span] = exported.get_finished_spans()
    assert span.name == "episode chain"
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert f"{span.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert span.attributes is not None
    assert span.attributes["durable.episode.tasks_scheduled"] == 1
    assert [event.name for event in span.events] == ["timer.created"]
    assert state.episode_traceparent == tracing.traceparent_of(span)  # type: ignore[arg-type]


def test_an_untraced_start_makes_its_first_episode_the_root_and_records_it(
    exported: InMemorySpanExporter,
) -> None:
    state, batch = _state(), Batch()
    episode: list[Any] = [
        (OrchestratorStarted(timestamp=NOW), None),
        (_started(None), uuid.uuid4()),
    ]
    trace_episode(state, episode, Decision(), batch)
    end_episode_spans(batch)

    [span] = exported.get_finished_spans()
    assert span.parent is None
    assert episode[1][0].traceparent == state.traceparent == state.episode_traceparent
    assert state.traceparent == tracing.traceparent_of(span)  # type: ignore[arg-type]


def test_the_span_of_an_episode_whose_batch_failed_says_so(
    exported: InMemorySpanExporter,
) -> None:
    batch = Batch()
    trace_episode(
        _state(TRACEPARENT), [(OrchestratorStarted(timestamp=NOW), None)], Decision(), batch
    )
    end_episode_spans(batch, ConnectionError("lost"))
    [span] = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert batch.spans == []


def test_without_tracing_an_episode_leaves_no_trace() -> None:
    state, batch = _state(), Batch()
    decision = Decision(status=OrchestrationStatus.COMPLETED)
    trace_episode(state, [(OrchestratorStarted(timestamp=NOW), None)], decision, batch)
    assert batch.spans == []
    assert state.episode_traceparent is None
    assert state.traceparent is None


# --- the activity's span ------------------------------------------------------------------

app = FunctionApp()


@app.activity
def greet(city: str) -> str:
    return f"Hello {city}!"


@app.activity
def refuse(city: str) -> str:
    raise ValueError(f"no {city}")


async def _run(*tasks: ActivityTaskMessage) -> list[OrchestratorMessage]:
    async def report(_: OrchestratorMessage) -> None:
        return None

    with ThreadPoolExecutor(1) as threads:
        runner = ActivityRunner(threads, report)
        pairs = [(app.activities[t.body.name], t) for t in tasks]
        return await runner.run_in_one_thread(pairs)


async def test_an_activity_execution_is_a_child_of_the_episode_that_scheduled_it(
    exported: InMemorySpanExporter,
) -> None:
    await _run(_task(TRACEPARENT), _task(TRACEPARENT, "refuse"))

    ok, failed = exported.get_finished_spans()
    assert (ok.name, failed.name) == ("activity greet", "activity refuse")
    assert ok.parent is not None
    assert f"{ok.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]


async def test_without_tracing_an_activity_makes_no_span(exported: InMemorySpanExporter) -> None:
    tracing.install(None)
    [result] = await _run(_task(None))
    assert result.body.event_type == "TaskCompleted"
    assert exported.get_finished_spans() == ()


# --- set-up -------------------------------------------------------------------------------


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert tracing.configure_tracing("client", tracing.TracingSettings()) is None
    assert tracing.tracer() is None
    named_none = tracing.TracingSettings(exporters="none")
    assert tracing.configure_tracing("client", named_none) is None
    disabled = tracing.TracingSettings(exporters="console", disabled=True)
    assert tracing.configure_tracing("client", disabled) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"exporters": "jaeger"}, "unknown exporter 'jaeger'"),
        ({"exporters": "file"}, "DF_TRACES_FILE"),
    ],
)
def test_a_configuration_that_cannot_work_is_refused(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(tracing.TracingError, match=message):
        tracing.configure_tracing("client", tracing.TracingSettings(**settings))


def test_the_file_exporter_writes_one_json_span_per_line(tmp_path: Path) -> None:
    settings = tracing.TracingSettings(
        exporters="file", traces_file=str(tmp_path / "{service}-{pid}.jsonl")
    )
    provider = tracing.configure_tracing("activities", settings)
    assert provider is not None
    try:
        tracer = tracing.tracer()
        assert tracer is not None
        tracer.start_span("one").end()
        tracer.start_span("two").end()
        provider.force_flush()
    finally:
        tracing.install(None)
        provider.shutdown()
    [path] = tmp_path.glob("activities-*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["one", "two"]
    assert lines[0]["resource"]["attributes"]["service.name"] == "durable-activities"


def _otlp_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(_otlp_installed(), reason="the otlp extra is installed here")
def test_a_service_asked_for_otlp_without_the_extra_refuses_to_start() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.activities"],
        env={"OTEL_TRACES_EXPORTER": "otlp", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "pip install durable-rabbit[otlp]" in done.stdout + done.stderr


def test_work_without_a_context_starts_a_new_trace_even_inside_another_span(
    exported: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    batch = Batch()
    with tracer.start_as_current_span("unrelated"):
        trace_episode(_state(), [(OrchestratorStarted(timestamp=NOW), None)], Decision(), batch)
        with tracing.activity_span(_task(None)):
            pass
    end_episode_spans(batch)
    roots = [s.name for s in exported.get_finished_spans() if s.parent is None]
    assert sorted(roots) == ["activity greet", "episode chain", "unrelated"]
