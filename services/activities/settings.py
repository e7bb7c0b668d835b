"""Activities service settings (``DF_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field, field_validator

from contracts.http import DEFAULT_HTTP_MAX_RESPONSE_BYTES, DEFAULT_HTTP_TIMEOUT_SECONDS
from durable.settings import CommonSettings
from services.common.observability_port import port_or_off


class ActivitiesSettings(CommonSettings):
    """Attributes:
    activity_prefetch: tasks in flight per activity queue (bounds concurrency per activity).
    activity_threads: threads for synchronous activity functions.
    shutdown_seconds: how long SIGTERM waits for running activities.
    activities_observability_port: the port serving ``/livez``, ``/readyz`` and
        ``/metrics`` (ADR 30). 0: any free port (the one bound is logged,
        ``observability.listening``); ``off``: none.
    observability_host: the interface that port listens on.
    call_http_timeout_seconds: one request of an orchestrator's ``call_http``.
    call_http_max_response_bytes: the longest response body ``call_http`` reads (a longer
        one fails the call); keep it under ``max_value_bytes``, since it is stored.
    call_http_allowed_hosts: comma-separated hosts (``*.example.com`` patterns) that
        ``call_http`` may reach; empty: any host this process can reach.
    """

    activity_prefetch: int = Field(default=64, ge=1)
    activity_threads: int = Field(default=32, ge=1)
    shutdown_seconds: float = Field(default=30.0, gt=0)
    activities_observability_port: int | None = Field(default=7073, ge=0, le=65535)
    observability_host: str = "127.0.0.1"

    _port_or_off = field_validator("activities_observability_port", mode="before")(port_or_off)
    call_http_timeout_seconds: float = Field(default=DEFAULT_HTTP_TIMEOUT_SECONDS, gt=0)
    call_http_max_response_bytes: int = Field(default=DEFAULT_HTTP_MAX_RESPONSE_BYTES, ge=0)
    call_http_allowed_hosts: str = ""
