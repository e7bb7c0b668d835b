"""The client service's spans: the roots of the instances' traces (ADR 32).

An HTTP start (``POST /orchestrators/{functionName}``) and a broker submission each open a
span, the child of the caller's own trace when its request or message carries a
``traceparent``; the instance they start carries that span's context to the orchestrator.
Nothing happens while tracing is off.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager

from aio_pika.abc import AbstractIncomingMessage
from fastapi import Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry.trace import Span, SpanKind

from services.common.tracing import request_span

FRAMEWORK_TELEMETRY: TelemetryConfig = {"tracing": False, "operation_spans": False}
"""FastAPI's own spans stay off: a request's span would carry its query in ``url.query``,
where the ``code`` access key travels (ADR 22), and every health probe would be a trace.
The start's span below is the HTTP root instead, with only what it names."""

START_ROUTE = "/runtime/webhooks/durabletask/orchestrators/{functionName}"


def start_span(
    request: Request, function_name: str, instance_id: str | None
) -> AbstractContextManager[Span | None]:
    """The span of an HTTP start of ``function_name``."""
    attributes: dict[str, str] = {
        "http.request.method": request.method,
        "http.route": START_ROUTE + ("/{instanceId}" if instance_id else ""),
        "durable.orchestrator.name": function_name,
    }
    if instance_id:
        attributes["durable.instance.id"] = instance_id
    return request_span(
        f"{request.method} /orchestrators/{{functionName}}",
        request.headers,
        attributes,
        SpanKind.SERVER,
    )


def new_instance_id(span: Span | None) -> str | None:
    """An id for a start that names none, chosen here when it is traced so that its span
    can name it (the client would choose one the same way); None untraced."""
    if span is None:
        return None
    instance_id = uuid.uuid4().hex
    span.set_attribute("durable.instance.id", instance_id)
    return instance_id


def answered(span: Span | None, response: Response) -> Response:
    """``response``, its status recorded on ``span``."""
    if span is not None:
        span.set_attribute("http.response.status_code", response.status_code)
    return response


def submission_span(
    queue: str, orchestrator: str, instance_id: str, delivery: AbstractIncomingMessage
) -> AbstractContextManager[Span | None]:
    """The span of a start submitted over the broker to ``queue``."""
    return request_span(
        f"process {queue}",
        delivery.headers,
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": delivery.message_id or "",
            "durable.orchestrator.name": orchestrator,
            "durable.instance.id": instance_id,
        },
        SpanKind.CONSUMER,
    )
