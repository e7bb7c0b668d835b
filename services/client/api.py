"""The HTTP API: Durable Functions' management routes under ``/runtime/webhooks/durabletask``.

Routes, status codes, headers and JSON field names follow Durable Functions, so existing
clients (and habits) work against it. The routes live by concern:

- ``api_orchestrators``: starting instances;
- ``api_instances``: status, lists, purges;
- ``api_operations``: raising events, terminate, suspend, resume, restart, rewind.

Every route needs an access key (``auth``); ``ROUTERS`` says which kind. The same routes are
also served under ``RPC_PREFIX`` for Durable Functions' out-of-process SDKs. Their literal
segments match in any letter case, as the Functions host's do (``api_route_case``). OpenAPI is
served at ``/openapi.json`` and browsable at ``/docs``, without a key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiormq
import asyncpg
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from contracts.limits import ValueRefusedError
from durable.broker import PublishFailedError
from durable.client import DurableClient
from durable.client.errors import StartOutcomeUnknownError
from durable.client.payloads import PREFIX, RPC_PREFIX
from durable.store.errors import is_unavailable
from services.client import api_entities, api_instances, api_operations, api_orchestrators
from services.client.access_log import AccessLog
from services.client.api_common import ApiError, error_response, error_responses
from services.client.api_guards import BodyTooLargeError, RequestGuards, body_too_large_message
from services.client.api_route_case import CaseInsensitiveRoutes, RouteSpellings
from services.client.auth import AccessKeys, require_management_key, require_start_key
from services.client.dashboard import DASHBOARD_PATH, create_dashboard
from services.client.settings import ClientSettings
from services.client.traces import FRAMEWORK_TELEMETRY
from services.common.observability_port import registry_metrics

__all__ = ["PREFIX", "ROUTERS", "RPC_PREFIX", "create_app"]

log = structlog.get_logger(__name__)

UNAVAILABLE_RETRY_AFTER_SECONDS = "5"
"""``Retry-After`` of a 503: the database or the broker is unreachable."""

_INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # No host of a multi-host DF_DATABASE_URL is a primary (a failover under way).
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    OSError,
    TimeoutError,
    aiormq.exceptions.AMQPError,
    PublishFailedError,
    StartOutcomeUnknownError,
)
"""What the database and the broker raise: a 503 when they are unavailable (a retry later
can succeed), else a 500."""

ROUTERS: list[tuple[APIRouter, Any]] = [
    (api_orchestrators.router, require_start_key),
    (api_operations.events_router, require_start_key),
    (api_instances.router, require_management_key),
    (api_operations.router, require_management_key),
    (api_entities.router, require_management_key),
]
"""Every router, with the key its routes need: starting orchestrations and raising events
take a start key (or a management key); everything else a management key."""


def create_app(
    settings: ClientSettings,
    client: DurableClient | None = None,
    *,
    stopping: Callable[[], bool] = lambda: False,
) -> FastAPI:
    """The API app. Without ``client``, it connects one at start-up and closes it at shutdown.

    ``stopping`` says whether the service is shutting down: requests waiting for an instance
    to end then answer at once (the check-status payload), so none holds the stop up.
    Raises ``AccessKeysError`` when the key settings would leave the API open by accident.
    """
    access_keys = AccessKeys.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if client is not None:
            app.state.client = client
            yield
            return
        async with await DurableClient.connect(settings, name="client-api") as own:
            app.state.client = own
            yield

    app = FastAPI(
        title="Durable Functions management API",
        description="Durable Functions' HTTP API over RabbitMQ and Postgres: the same routes, "
        'status codes, headers and JSON. Errors answer `{"message": "..."}`.',
        version="1.0",
        lifespan=lifespan,
        telemetry=FRAMEWORK_TELEMETRY,
    )
    app.state.base_url = settings.public_base_url
    app.state.access_keys = access_keys
    app.state.max_wait_seconds = settings.http_max_wait_seconds
    app.state.stopping = stopping
    app.state.route_methods = _route_methods()
    # Set by the service once its entry points' consumers exist (``__main__``).
    app.state.consumers_readiness = None
    for prefix, documented in ((PREFIX, True), (RPC_PREFIX, False)):
        for router, key_check in ROUTERS:
            app.include_router(
                router,
                prefix=prefix,
                dependencies=[Depends(key_check)],
                # What any route can answer before it runs or whatever it does: a URL no id
                # may be in, no key, a body over the limit, the store or broker down.
                responses=error_responses(400, 401, 413, 503),
                include_in_schema=documented,
            )
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _routing_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValueRefusedError, _value_refused)
    app.add_exception_handler(BodyTooLargeError, _body_too_large)
    for error_type in _INFRASTRUCTURE_ERRORS:
        app.add_exception_handler(error_type, _infrastructure_error)
    app.add_exception_handler(Exception, _unexpected_error)
    # The last added runs first: the guards judge the URL as it was sent, then its literal
    # segments are respelt for the router.
    app.add_middleware(
        CaseInsensitiveRoutes, spellings=RouteSpellings(path for path, _ in _api_routes())
    )
    app.add_middleware(RequestGuards, max_body_bytes=settings.max_body_bytes)
    if settings.http_access_log:
        app.add_middleware(AccessLog)  # outermost: it sees every answer, refusals included

    _document_400_not_422(app)
    app.mount(DASHBOARD_PATH, create_dashboard(settings, access_keys, lambda: app.state.client))

    @app.get("/healthz", include_in_schema=False)
    @app.get("/livez", include_in_schema=False)
    async def health() -> dict[str, str]:
        # Alive: the process serves requests. Whether it can do its work is /readyz.
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        durable: DurableClient = request.app.state.client
        checks = await durable.check_connections()
        consumers: Callable[[], str] | None = request.app.state.consumers_readiness
        if consumers is not None:
            checks["consumers"] = consumers()
        if all(result == "ok" for result in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        log.warning("http.not_ready", checks=checks)
        return JSONResponse({"status": "not ready", "checks": checks}, status_code=503)

    metrics = registry_metrics()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        # The default registry, as the other services' observability ports serve theirs
        # (ADR 30); with no key, like the health routes, for Prometheus to scrape.
        body, content_type = metrics(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return app


def _document_400_not_422(app: FastAPI) -> None:
    """Invalid requests answer 400 (see ``_validation_error``); say so in the OpenAPI too."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(
        error.status_code, error.message, exception_message=error.exception_message
    )


async def _routing_error(request: Request, error: Exception) -> JSONResponse:
    # The router's own answers: no route for the URL (404), none for the method (405). Its
    # 405 named only the first route's methods (GET, where GET and DELETE serve the URL).
    assert isinstance(error, HTTPException)
    if error.status_code != 405:
        headers = dict(error.headers) if error.headers else None
        return error_response(error.status_code, str(error.detail), headers=headers)
    allowed = ", ".join(_allowed_methods(request))
    return error_response(
        405,
        f"{request.method} is not allowed here; the methods allowed are {allowed}",
        headers={"Allow": allowed},
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves the request's URL with."""
    path = request.scope["path"]
    routes: list[tuple[re.Pattern[str], set[str]]] = request.app.state.route_methods
    return sorted(
        {method for pattern, methods in routes if pattern.match(path) for method in methods}
    )


def _route_methods() -> list[tuple[re.Pattern[str], set[str]]]:
    """Each API route's path, as the pattern Starlette matches it with, and its methods."""
    return [(compile_path(path)[0], methods) for path, methods in _api_routes()]


def _api_routes() -> list[tuple[str, set[str]]]:
    """Each API route's full path (under both prefixes), with its methods."""
    return [
        (prefix + route.path, route.methods or set())
        for prefix in (PREFIX, RPC_PREFIX)
        for router, _ in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    # Durable Functions answers bad requests with 400, never FastAPI's 422.
    assert isinstance(error, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
        for problem in error.errors()
    )
    return error_response(400, problems or "invalid request")


async def _value_refused(request: Request, error: Exception) -> JSONResponse:
    # A value or an id that a later layer could not store or send, refused before anything
    # was written (contracts.limits).
    return error_response(400, str(error))


async def _body_too_large(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BodyTooLargeError)
    return error_response(413, body_too_large_message(error.limit))


async def _infrastructure_error(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, StartOutcomeUnknownError):
        message = str(error)
    elif isinstance(error, PublishFailedError | aiormq.exceptions.AMQPError):
        message = "The message broker is unavailable; nothing was sent. Retry later."
    elif is_unavailable(error):
        message = "The event store is unavailable; nothing was changed. Retry later."
    else:
        return await _unexpected_error(request, error)
    log.warning("http.unavailable", path=request.url.path, error=repr(error))
    return error_response(503, message, headers={"Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS})


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error("http.unexpected_error", path=request.url.path, error=repr(error), exc_info=error)
    return error_response(500, "Something went wrong while processing your request")
