"""What every route of the HTTP API shares: the client, the public base URL, errors, and the
reading of query-string values.

Bad input is answered with Durable Functions' status code and ``{"message": "..."}`` before
anything is written or published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pydantic_core
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, JsonValue

from contracts import OrchestrationStatus
from contracts.limits import ValueRefusedError, check_json_value
from durable.client import DurableClient
from durable.client.payloads import RPC_PREFIX
from services.client.filters import parse_statuses, parse_time


class ApiError(Exception):
    """An answer other than success, with the status code Durable Functions gives it."""

    def __init__(self, status_code: int, message: str, *, exception_message: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.exception_message = exception_message


def error_response(
    status_code: int,
    message: str,
    *,
    exception_message: bool = False,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """``{"message": ...}``; with ``exception_message``, the same text as ``ExceptionMessage``
    too, where Durable Functions' SDKs read it (a refused start)."""
    body = {"message": message}
    if exception_message:
        body["ExceptionMessage"] = message
    return JSONResponse(body, status_code=status_code, headers=headers)


def _durable_client(request: Request) -> DurableClient:
    client: DurableClient = request.app.state.client
    return client


def _base_url(request: Request) -> str:
    base_url: str = request.app.state.base_url
    return base_url


Client = Annotated[DurableClient, Depends(_durable_client)]
"""The app's ``DurableClient``, for a route's parameters."""

BaseUrl = Annotated[str, Depends(_base_url)]
"""The public base URL links are built from (``DF_BASE_URL``)."""


class ErrorBody(BaseModel):
    """The body of every error answer."""

    message: str


ERROR_DESCRIPTIONS = {
    400: "Bad request: the body is not JSON or holds a value that cannot be stored, or a "
    "value in the URL is not valid (an id or name holding U+0000 or an escaped /, a "
    "parameter out of its range). Nothing was changed.",
    401: "Unauthorized: no access key, a key that is not valid, or a start key on a route "
    "that needs a management key. Nothing was changed.",
    404: "Not found: no instance (or no instances) match.",
    409: "Conflict: an instance with this id exists and has not ended.",
    410: "Gone: the instance has ended (Completed, Failed or Terminated).",
    412: "Precondition failed: the instance is not in a state that allows this.",
    413: "Content too large: the body is longer than DF_HTTP_MAX_BODY_BYTES. Nothing was changed.",
    501: "Not implemented by this backend.",
    503: "Service unavailable: the database or the broker cannot be reached now. Nothing was "
    "changed (unless the message says the outcome is unknown); retry after Retry-After "
    "seconds.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of a route's error answers."""
    return {code: {"description": ERROR_DESCRIPTIONS[code], "model": ErrorBody} for code in codes}


def _sdk_encoded(request: Request) -> bool:
    return request.url.path.startswith(f"{RPC_PREFIX}/")


SdkEncoded = Annotated[bool, Depends(_sdk_encoded)]
"""Whether the request came through ``RPC_PREFIX``, where values are sent the way Durable
Functions' out-of-process SDKs send them."""


def parse_json_body(raw: bytes, what: str, *, sdk_encoded: bool = False) -> JsonValue:
    """The JSON value of a request body (``what`` it is, e.g. "the input"); an empty body is
    ``null``. Raises ``ApiError`` (400) for a body that is not JSON, and for a value that a
    later layer could not store or send (``contracts.limits``), naming the problem.

    ``sdk_encoded`` bodies are a JSON string holding the value's JSON text (what
    azure-functions-durable sends for an input or an event's data); they are decoded twice.
    """
    if not raw.strip():
        return None
    value = parse_json(raw, what)
    if sdk_encoded and isinstance(value, str):
        value = parse_json(value, what)
    return value


def parse_json(text: bytes | str, what: str) -> JsonValue:
    """JSON text as a value that every layer after the HTTP API can store and send.

    Parsed by pydantic's JSON parser, not Python's ``json``: it refuses ``NaN`` and
    ``Infinity`` (not JSON), and nesting deeper than it supports, without recursing in
    Python (a 1 KB body nested 500 deep made ``json.loads`` raise RecursionError).
    """
    try:
        value: JsonValue = pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as error:
        raise ApiError(400, f"Invalid JSON content in {what}: {error}") from None
    try:
        check_json_value(value, what)
    except ValueRefusedError as error:
        raise ApiError(400, str(error)) from None
    return value


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    """``true``/``false`` in any letter case, as .NET reads booleans."""
    if value is None:
        return default
    match value.strip().casefold():
        case "true":
            return True
        case "false":
            return False
    raise ApiError(400, f"{name} must be true or false, not {value!r}")


def parse_optional_time(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_time(value, name)
    except ValueError as error:
        raise ApiError(400, str(error)) from None


def parse_runtime_statuses(value: str | None) -> list[OrchestrationStatus] | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_statuses([value])
    except ValueError as error:
        raise ApiError(400, str(error)) from None


def parse_seconds(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ApiError(400, f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise ApiError(400, f"{name} must be zero or more seconds, not {value!r}")
    return seconds
