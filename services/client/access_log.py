"""The HTTP API's access log (``DF_HTTP_ACCESS_LOG``): one ``http.request`` line per request,
rendered like every other line of the service (console or JSON, secrets masked).

uvicorn's own access log is off: it writes the query string, where Durable Functions' clients
put the access key (``?code=...``) and where filters may carry anything. This log writes the
path, and of the query only its parameters' names.
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("services.client.access")


class AccessLog:
    """An ASGI middleware that logs each HTTP request once its response has started, with
    its method, path, the names of its query parameters, status, duration and peer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client")
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                query=query_names(scope.get("query_string", b"")),
                # None when the request ended before an answer (a disconnect, a crash).
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                peer=f"{client[0]}:{client[1]}" if client else None,
            )


_MOST_NAMES = 16
_LONGEST_NAME = 64


def query_names(query_string: bytes) -> list[str]:
    """The names of a query's parameters, in order, without their values; a line stays small
    whatever a caller sends (the first 16 names, each cut to 64 characters)."""
    names: list[str] = []
    for part in query_string.decode("latin-1").split("&"):
        name = part.split("=", 1)[0][:_LONGEST_NAME]
        if name and name not in names:
            names.append(name)
            if len(names) == _MOST_NAMES:
                break
    return names
