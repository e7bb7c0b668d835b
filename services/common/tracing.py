"""OpenTelemetry traces: set-up from the standard ``OTEL_*`` variables, and the helpers the
services call at their edges (ADR 32, ``docs/guide/observability.md#traces``).

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter: ``console``, ``otlp`` (the ``otlp``
extra), or ``file`` (one JSON span per line, to ``DF_TRACES_FILE``; for tests and local
runs); several, comma-separated. While it is off, every helper here returns at once and
nothing is added to any message: ``tracer()`` is ``None``, span helpers hand back a shared
``nullcontext``, and no trace context is ever written.

The context of a piece of work travels as a W3C ``traceparent`` string: in the ``Envelope``
of each message (so it survives carriers and the outbox), in ``ExecutionStarted`` (so an
instance's later episodes join its trace after any restart), and, for a message carrying one
item, in the AMQP ``traceparent`` header as well.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import ActivityTaskMessage

log = structlog.get_logger(__name__)

INSTRUMENTATION_NAME = "durable-rabbit"
EXPORTERS = ("console", "otlp", "file", "none")
OTLP_HINT = "pip install durable-rabbit[otlp]"

_tracer: Tracer | None = None
_OFF: AbstractContextManager[None] = contextlib.nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()
NEW_TRACE = Context()
"""The context of a span without a parent: passed explicitly, since ``None`` would make the
span a child of whatever span happens to be current."""


class TracingError(Exception):
    """Tracing was asked for in a way this process cannot provide (the service refuses to
    start, naming what to change)."""


class TracingSettings(BaseSettings):
    """The variables tracing reads; the OpenTelemetry SDK and exporters read the rest
    themselves (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_BSP_SCHEDULE_DELAY``,
    ``OTEL_TRACES_SAMPLER``, ``OTEL_RESOURCE_ATTRIBUTES``, ...).

    Attributes:
        exporters: ``OTEL_TRACES_EXPORTER``: ``none`` (the default), or one or more of
            ``console``, ``otlp``, ``file``, comma-separated.
        service_name: ``OTEL_SERVICE_NAME``; ``durable-<service>`` when not set.
        traces_file: ``DF_TRACES_FILE``: where the ``file`` exporter appends its lines;
            ``{service}`` and ``{pid}`` in it are replaced, so processes need not share one.
        disabled: ``OTEL_SDK_DISABLED``: true turns tracing off whatever else is set.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    exporters: str = Field(default="none", validation_alias=AliasChoices("OTEL_TRACES_EXPORTER"))
    service_name: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_SERVICE_NAME")
    )
    traces_file: str | None = Field(default=None, validation_alias=AliasChoices("DF_TRACES_FILE"))
    disabled: bool = Field(default=False, validation_alias=AliasChoices("OTEL_SDK_DISABLED"))

    def exporter_names(self) -> list[str]:
        names = [name.strip().lower() for name in self.exporters.split(",") if name.strip()]
        unknown = [name for name in names if name not in EXPORTERS]
        if unknown:
            raise TracingError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r}; "
                f"choose from {', '.join(EXPORTERS)}"
            )
        if self.disabled:
            return []
        return [name for name in names if name != "none"]


def start_tracing(service: str) -> None:
    """``configure_tracing`` from the environment, for a service's start-up: a refused
    configuration is one clear line and exit status 2, as other start-up errors are."""
    try:
        configure_tracing(service, TracingSettings())
    except TracingError as error:
        log.error("service.cannot_start", error=str(error))
        sys.exit(2)


def configure_tracing(service: str, settings: TracingSettings) -> TracerProvider | None:
    """Install a tracer provider exporting this process's spans as ``settings`` say; None
    (and tracing off) when they name no exporter.

    Raises:
        TracingError: an unknown exporter, ``otlp`` without the ``otlp`` extra, or ``file``
            without ``DF_TRACES_FILE``.
    """
    exporters = [_exporter(name, service, settings) for name in settings.exporter_names()]
    if not exporters:
        return None
    resource = Resource.create(
        {"service.name": settings.service_name or f"durable-{service}", "process.pid": os.getpid()}
    )
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    log.info("tracing.on", exporters=settings.exporter_names())
    return provider


def install(provider: TracerProvider | None) -> None:
    """Make ``provider`` this process's (None: tracing off). Also the global provider the
    first time, so spans that user code makes with the OpenTelemetry API join the trace."""
    global _tracer
    if provider is None:
        _tracer = None
        return
    _tracer = provider.get_tracer(INSTRUMENTATION_NAME)
    with contextlib.suppress(Exception):
        trace.set_tracer_provider(provider)


def tracer() -> Tracer | None:
    """The tracer, or None while tracing is off (callers then do nothing at all)."""
    return _tracer


def _exporter(name: str, service: str, settings: TracingSettings) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(service_name=settings.service_name or f"durable-{service}")
    if name == "file":
        if not settings.traces_file:
            raise TracingError("OTEL_TRACES_EXPORTER=file needs DF_TRACES_FILE (a path)")
        path = settings.traces_file.replace("{service}", service)
        return JsonLinesSpanExporter(Path(path.replace("{pid}", str(os.getpid()))))
    try:
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: {OTLP_HINT}"
        ) from None
    # It reads OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT ... itself.
    exporter: SpanExporter = otlp.OTLPSpanExporter()
    return exporter


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span to a file as one line of JSON (``ReadableSpan.to_json``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock, self._path.open("a", encoding="utf-8") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened for each batch."""


# --- trace context as a string ---------------------------------------------------------------


def traceparent_of(span: Span | None) -> str | None:
    """The W3C ``traceparent`` of ``span``, for the work it sends on; None for no span or
    one without a valid context."""
    if span is None:
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def context_of(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` names, to start a child span in; None (a new trace) for
    no ``traceparent`` or an invalid one."""
    if traceparent is None:
        return None
    return context_from_headers({"traceparent": traceparent})


def context_from_headers(headers: Mapping[str, Any] | None) -> Context | None:
    """The context in a request's or a message's ``traceparent`` header (AMQP header values
    may arrive as bytes); None when there is none."""
    if not headers:
        return None
    value = headers.get("traceparent")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    context = _PROPAGATOR.extract({"traceparent": value})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


# --- spans at the edges ----------------------------------------------------------------------


def request_span(
    name: str, headers: Mapping[str, Any] | None, attributes: dict[str, Any], kind: SpanKind
) -> AbstractContextManager[Span | None]:
    """A span for work that arrives from outside (an HTTP request, a broker submission), the
    child of the caller's trace context when its headers carry one, else a new trace's root;
    current while it lasts."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(
        name, context=context_from_headers(headers) or NEW_TRACE, kind=kind, attributes=attributes
    )


def activity_span(message: ActivityTaskMessage) -> AbstractContextManager[Span | None]:
    """The span of one execution of an activity task, in the trace of the episode that
    scheduled it (the task's ``envelope.traceparent``); current while the function runs."""
    if _tracer is None:
        return _OFF
    envelope, task = message.envelope, message.body
    return _tracer.start_as_current_span(
        f"activity {task.name}",
        context=context_of(envelope.traceparent) or NEW_TRACE,
        kind=SpanKind.CONSUMER,
        attributes={
            "durable.activity.name": task.name,
            "durable.instance.id": envelope.instance_id,
            "durable.execution.id": envelope.execution_id or "",
            "durable.task.id": task.task_scheduled_id,
            "durable.activity.attempt": task.attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    )


def failed(span: Span | None, error: BaseException) -> None:
    """Mark ``span`` (if any) as failed with ``error``."""
    if span is None:
        return
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
