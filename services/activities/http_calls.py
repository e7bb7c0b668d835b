"""The built-in HTTP activity: the requests of orchestrators' ``call_http``, made here.

The activities service makes every durable HTTP request, so it is this process's network
position that a request reaches from, and an orchestrator's author chooses the URI: a
deployment that can reach internal services should list the hosts calls may go to
(``DF_CALL_HTTP_ALLOWED_HOSTS``). Redirects are not followed (a 3xx is the answer), so a
listed host cannot send a call on to one that is not. Every request has a time-out, and a
body longer than the cap fails the call rather than filling the history.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from contracts.http import HTTP_ACTIVITY, HttpRequest, HttpResponse
from durable.app import FunctionApp


class HttpHostNotAllowedError(PermissionError):
    """The request's host is not one ``DF_CALL_HTTP_ALLOWED_HOSTS`` lists."""


class HttpResponseTooLargeError(ValueError):
    """The response's body is longer than ``DF_CALL_HTTP_MAX_RESPONSE_BYTES``."""


def http_functions(
    *, timeout_seconds: float, max_response_bytes: int, allowed_hosts: Sequence[str] = ()
) -> FunctionApp:
    """A function app holding the built-in HTTP activity, configured.

    Args:
        timeout_seconds: one request, from connecting to the body's last byte.
        max_response_bytes: the longest body read.
        allowed_hosts: host names (``fnmatch`` patterns such as ``*.example.com``, compared
            in lower case) requests may go to; empty allows every host.
    """
    patterns = [host.strip().lower() for host in allowed_hosts if host.strip()]
    app = FunctionApp()

    @app.activity(name=HTTP_ACTIVITY)
    async def durable_http(request: HttpRequest) -> HttpResponse:
        host = (urlsplit(request.uri).hostname or "").lower()
        if patterns and not any(fnmatch.fnmatchcase(host, p) for p in patterns):
            raise HttpHostNotAllowedError(
                f"host {host!r} is not one DF_CALL_HTTP_ALLOWED_HOSTS allows: {patterns}"
            )
        async with asyncio.timeout(timeout_seconds):
            return await _send(request, timeout_seconds, max_response_bytes)

    return app


async def _send(request: HttpRequest, timeout_seconds: float, most: int) -> HttpResponse:
    async with (
        httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as client,
        client.stream(
            request.method,
            request.uri,
            content=request.content.encode() if request.content is not None else None,
            headers=request.headers,
        ) as response,
    ):
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > most:
                raise HttpResponseTooLargeError(
                    f"the response of {request.method} {request.uri} is longer than "
                    f"{most} bytes (DF_CALL_HTTP_MAX_RESPONSE_BYTES)"
                )
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        content = bytes(body).decode(response.encoding or "utf-8", errors="replace")
        return HttpResponse(
            status_code=response.status_code, headers=headers, content=content or None
        )
