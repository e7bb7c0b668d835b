"""What every request must meet before a route sees it: a body no larger than the limit, and
a URL that no id, name or filter could be refused for downstream.

An ASGI middleware, so that a body over the limit is refused from its ``Content-Length``
without reading it, and one sent in chunks is cut off when it passes the limit instead of
being held in memory whole (a 100 MB start made the client grow by 680 MB).
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.client.api_common import error_response


class BodyTooLargeError(Exception):
    """The request's body passed the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


def body_too_large_message(limit: int) -> str:
    return (
        f"The request body is larger than {limit} bytes (DF_HTTP_MAX_BODY_BYTES); "
        "nothing was changed"
    )


_ESCAPED_SLASH = b"%2f"
_ESCAPED_SLASH_MESSAGE = (
    "The URL's path holds an escaped / (%2F), which no instance id may hold and no event "
    "name can be sent in (the server reads it as a / between path segments)"
)


class RequestGuards:
    """Refuses, before any route runs: a URL holding U+0000 (``%00``) with 400, since no id,
    name or filter may hold it and Postgres cannot compare text with it; a path holding an
    escaped ``/`` (``%2F``) with 400, since the server decodes it before routing, so an id
    ending in one was redirected to the id without it, and one holding one inside answered
    404 as if the route did not exist; a body larger than ``max_body_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote(scope.get("query_string", b"").decode("latin-1"))
        if "\x00" in scope["path"] or "\x00" in query:
            refusal = error_response(
                400, "The URL holds U+0000 (%00), which no instance id, name or filter may hold"
            )
            await refusal(scope, receive, send)
            return
        if _ESCAPED_SLASH in scope.get("raw_path", b"").lower():
            refusal = error_response(400, _ESCAPED_SLASH_MESSAGE)
            await refusal(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            refusal = error_response(413, body_too_large_message(self.max_body_bytes))
            await refusal(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        """``receive`` that raises ``BodyTooLargeError`` once the body passes the limit."""
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        return counting_receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None
