"""Durable HTTP: the task behind ``call_http``, which follows the 202-and-``Location`` pattern.

Each request is a call of the built-in HTTP activity (``contracts.http.HTTP_ACTIVITY``), so
its answer is in the history and replay never calls the server again. An answer ``202
Accepted`` with a ``Location`` header is polled: a durable timer waits what ``Retry-After``
says (else ``DEFAULT_POLLING_INTERVAL``; between one second and one day), then a ``GET`` of
the location, with the first request's headers, until an answer that is not 202, as Durable
Functions does. A call can turn polling off, and polling gives up after ``MAX_POLLS`` polls
or past the call's ``timeout``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from contracts import FailureDetails
from contracts.http import HttpRequest, HttpResponse
from durable.errors import TaskFailedError
from durable.http import DurableHttpResponse
from durable.tasks import Task, TimerTask

DEFAULT_POLLING_INTERVAL = timedelta(seconds=30)
"""The wait between polls when the answer has no usable ``Retry-After`` (Durable Functions'
default)."""

MIN_POLLING_INTERVAL = timedelta(seconds=1)
"""The shortest wait between polls, whatever ``Retry-After`` says: ``Retry-After: 0`` must
not make an instance poll as fast as the broker goes."""

MAX_POLLING_INTERVAL = timedelta(days=1)
"""The longest wait between polls: a ``Retry-After`` further away is taken as a day."""

MAX_POLLS = 1000
"""Polls of one call before it fails: four events each, so one call adds at most about 4,000
events to the history (at the default interval, more than eight hours of polling)."""


def http_request(
    method: str,
    uri: str,
    content: Any,
    headers: Mapping[str, str] | None,
    token_source: Any,
    is_raw_str: bool,
) -> HttpRequest:
    """The first request of a call, from ``call_http``'s arguments (azure-functions-durable's
    rules: ``content`` is sent as JSON unless ``is_raw_str`` and it is a string)."""
    if token_source is not None:
        raise ValueError(
            "call_http: token_source (Azure managed identities) is not supported; "
            "pass the token in an Authorization header"
        )
    if is_raw_str and not isinstance(content, str):
        raise TypeError("call_http: is_raw_str=True needs content that is a str")
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"call_http needs an absolute http or https URI, not {uri!r}")
    sent_headers = dict(headers or {})
    body: str | None = None
    if content is not None:
        body = content if is_raw_str else json.dumps(content)
        if not is_raw_str and not any(k.lower() == "content-type" for k in sent_headers):
            sent_headers["Content-Type"] = "application/json"
    return HttpRequest(method=method.upper(), uri=uri, content=body, headers=sent_headers)


def describe(request: HttpRequest) -> str:
    """How errors name a request: method and URI without its query (which may hold a key)."""
    parts = urlsplit(request.uri)
    return f"call_http {request.method} {parts.scheme}://{parts.netloc}{parts.path}"


class HttpCallTask(Task[DurableHttpResponse]):
    """Completes with the first answer that ends the call; fails when a request fails (the
    activity's ``TaskFailedError``) or polling gives up."""

    def __init__(
        self,
        request: HttpRequest,
        *,
        polling: bool,
        timeout: timedelta | None,
        send: Callable[[HttpRequest], Task[Any]],
        create_timer: Callable[[datetime], TimerTask],
        current_time: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self._first = request
        self._polling = polling
        self._send = send
        self._create_timer = create_timer
        self._current_time = current_time  # the orchestration's replay-safe clock
        self._deadline = current_time() + timeout if timeout is not None else None
        self._next_request = request
        self.polls = 0
        self._request(request)

    def _request(self, request: HttpRequest) -> None:
        task = self._send(request)
        task._parents.append(self)
        if task.is_completed:
            self._on_child_completed(task)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self._completed:
            return
        if isinstance(child, TimerTask):
            self.polls += 1
            self._request(self._next_request)
            return
        if child.is_faulted:
            assert child.exception is not None
            self._fail(child.exception)
            return
        answer = HttpResponse.model_validate(child.result)
        response = DurableHttpResponse(answer.status_code, answer.headers, answer.content)
        location = response.header("Location")
        if not self._polling or response.status_code != 202 or not location:
            self._complete(response)
            return
        now = self._current_time()
        poll_at = now + _retry_after(response.header("Retry-After"), now)
        if self.polls >= MAX_POLLS or (self._deadline is not None and poll_at > self._deadline):
            self._fail(self._gave_up())
            return
        self._next_request = HttpRequest(
            method="GET",
            uri=urljoin(self._next_request.uri, location),
            headers=dict(self._first.headers),
        )
        timer = self._create_timer(poll_at)
        timer._parents.append(self)

    def _gave_up(self) -> TaskFailedError:
        limit = (
            f"its {MAX_POLLS} polls"
            if self.polls >= MAX_POLLS
            else "the time-out before the next poll is due"
        )
        message = (
            f"{describe(self._first)} is still answering 202 Accepted after "
            f"{self.polls} polls; it gave up at {limit}"
        )
        details = FailureDetails(
            error_type="HttpPollingTimeoutError", message=message, is_non_retriable=True
        )
        return TaskFailedError(message, details)


def _retry_after(value: str | None, now: datetime) -> timedelta:
    """``Retry-After`` as a wait: seconds, or an HTTP date; at least ``MIN_POLLING_INTERVAL``."""
    if value is None:
        return DEFAULT_POLLING_INTERVAL
    wait: timedelta | None = None
    text = value.strip()
    if text.isdigit() and len(text) <= 9:
        wait = timedelta(seconds=min(int(text), MAX_POLLING_INTERVAL.total_seconds()))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            wait = (when if when.tzinfo else when.replace(tzinfo=UTC)) - now
    if wait is None:
        return DEFAULT_POLLING_INTERVAL
    return min(max(wait, MIN_POLLING_INTERVAL), MAX_POLLING_INTERVAL)
