"""Durable HTTP: what ``call_http`` hands to the built-in HTTP activity and gets back.

An orchestrator's HTTP call is an activity like any other (``HTTP_ACTIVITY``), run by the
activities service: its ``TaskScheduled`` input is an ``HttpRequest``, its ``TaskCompleted``
result an ``HttpResponse``, so replay reads the answer from the history and never calls again.
Field names follow Durable Functions' ``DurableHttpRequest`` and ``DurableHttpResponse``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.limits import ShortString

HTTP_ACTIVITY = "durable.http"
"""The built-in activity that makes one HTTP request (Durable Functions: ``BuiltIn::HttpActivity``,
whose ``::`` no activity name here may hold)."""

DEFAULT_HTTP_TIMEOUT_SECONDS = 100.0
"""One request, connection to last byte (.NET ``HttpClient``'s default, which Durable
Functions' HTTP activity uses)."""

DEFAULT_HTTP_MAX_RESPONSE_BYTES = 1024 * 1024
"""The most of a response body the activity reads; a longer body fails the call. The response
is stored in the history, so it must also fit ``DF_MAX_VALUE_BYTES``."""


class HttpRequest(BaseModel):
    """One request of a durable HTTP call (the first, or a poll of its ``Location``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: ShortString
    uri: str = Field(min_length=1)
    content: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class HttpResponse(BaseModel):
    """What the server answered: any status, 4xx and 5xx included (they are not failures)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status_code: int
    headers: dict[str, str] = Field(default_factory=dict)
    content: str | None = None
