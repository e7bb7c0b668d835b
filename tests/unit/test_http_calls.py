"""The built-in HTTP activity against a real local server: what it sends, what it records,
and what fails the call (unreachable host, a host not allowed, a body too long)."""

from __future__ import annotations

import socket

import httpx
import pytest

from contracts.http import HTTP_ACTIVITY, HttpRequest, HttpResponse
from services.activities.http_calls import (
    HttpHostNotAllowedError,
    HttpResponseTooLargeError,
    http_functions,
)
from tests.helpers.http_server import job_server


def activity(allowed_hosts=(), max_response_bytes=1024, timeout_seconds=5.0):
    app = http_functions(
        timeout_seconds=timeout_seconds,
        max_response_bytes=max_response_bytes,
        allowed_hosts=allowed_hosts,
    )
    return app.activities[HTTP_ACTIVITY]


async def call(definition, request: HttpRequest) -> HttpResponse:
    return await definition.function(request)


async def test_sends_the_request_and_records_status_headers_and_content():
    with job_server(accepted_answers=0) as server:
        request = HttpRequest(
            method="POST",
            uri=f"{server.base_url}/jobs/j1",
            content='{"a": 1}',
            headers={"Content-Type": "application/json", "X-Trace": "t1"},
        )

        response = await call(activity(), request)

    assert response.status_code == 200
    assert response.content == '{"job": "j1", "polls": 0}'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    [sent] = server.requests
    assert (sent.method, sent.path, sent.body) == ("POST", "/jobs/j1", b'{"a": 1}')
    assert sent.headers["X-Trace"] == "t1"


async def test_a_202_is_returned_as_it_is_the_orchestrator_polls():
    with job_server(accepted_answers=1) as server:
        response = await call(
            activity(), HttpRequest(method="GET", uri=f"{server.base_url}/jobs/j2")
        )

    assert response.status_code == 202
    assert response.headers["location"] == "/status/j2"
    assert response.content is None


async def test_an_unreachable_host_fails_the_call():
    with socket.socket() as listener:  # a port nobody listens on once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]

    with pytest.raises(httpx.ConnectError):
        await call(activity(), HttpRequest(method="GET", uri=f"http://127.0.0.1:{port}/x"))


async def test_a_host_not_allowed_is_refused_before_anything_is_sent():
    with job_server() as server:
        with pytest.raises(HttpHostNotAllowedError, match=r"'127\.0\.0\.1' is not one"):
            await call(
                activity(allowed_hosts=["*.example.com"]),
                HttpRequest(method="GET", uri=f"{server.base_url}/jobs/j3"),
            )

        assert server.requests == []


async def test_an_allowed_host_pattern_lets_the_call_through():
    with job_server(accepted_answers=0) as server:
        response = await call(
            activity(allowed_hosts=["api.example.com", "127.0.0.*"]),
            HttpRequest(method="GET", uri=f"{server.base_url}/jobs/j4"),
        )

    assert response.status_code == 200


async def test_a_body_longer_than_the_cap_fails_the_call():
    with (
        job_server(big_body_bytes=5000) as server,
        pytest.raises(HttpResponseTooLargeError, match="longer than 1024 bytes"),
    ):
        await call(activity(), HttpRequest(method="GET", uri=f"{server.base_url}/big"))
