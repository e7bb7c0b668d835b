"""The HTTP API: Durable Functions' management routes under ``/runtime/webhooks/durabletask``.

Routes, status codes, headers and JSON field names follow Durable Functions, so existing
clients (and habits) work against it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.client.client import DurableClient, InstanceExistsError
from services.client.settings import ClientSettings
from services.common.instances import InstanceStatus

PREFIX = "/runtime/webhooks/durabletask"
RETRY_AFTER_SECONDS = "10"


def format_time(value: datetime | None) -> str | None:
    """Durable Functions' time format: ISO 8601, UTC, whole seconds, ``Z``."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def create_app(settings: ClientSettings, client: DurableClient | None = None) -> FastAPI:
    """The API app. Without ``client``, it connects one at start-up and closes it at shutdown."""

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
        description="Durable Functions' HTTP API over RabbitMQ and Postgres.",
        version="1.0",
        lifespan=lifespan,
    )
    base_url = settings.public_base_url

    def check_status_payload(instance_id: str) -> dict[str, str]:
        instance_url = f"{base_url}{PREFIX}/instances/{instance_id}"
        return {
            "id": instance_id,
            "statusQueryGetUri": instance_url,
            "sendEventPostUri": f"{instance_url}/raiseEvent/{{eventName}}",
            "terminatePostUri": f"{instance_url}/terminate?reason={{text}}",
            "purgeHistoryDeleteUri": instance_url,
            "suspendPostUri": f"{instance_url}/suspend?reason={{text}}",
            "resumePostUri": f"{instance_url}/resume?reason={{text}}",
            "restartPostUri": f"{instance_url}/restart",
        }

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(PREFIX + "/orchestrators/{function_name}", status_code=202)
    @app.post(PREFIX + "/orchestrators/{function_name}/{instance_id}", status_code=202)
    async def start_orchestration(
        request: Request, function_name: str, instance_id: str | None = None
    ) -> Response:
        durable: DurableClient = request.app.state.client
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError as error:
            return _error(400, f"the request body is not valid JSON: {error}")
        if function_name not in await durable.registered_orchestrators():
            return _error(404, f"no orchestrator named {function_name!r} is registered")
        try:
            started = await durable.start_new(function_name, instance_id, payload)
        except InstanceExistsError as error:
            return _error(409, str(error))
        body = check_status_payload(started)
        return JSONResponse(
            body,
            status_code=202,
            headers={"Location": body["statusQueryGetUri"], "Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.get(PREFIX + "/instances/{instance_id}")
    async def get_instance(request: Request, instance_id: str) -> Response:
        durable: DurableClient = request.app.state.client
        status = await durable.get_status(instance_id)
        if status is None:
            return _error(404, f"no instance {instance_id!r}")
        body = status_payload(status)
        if status.runtime_status.is_terminal:
            return JSONResponse(body, status_code=200)
        location = f"{base_url}{PREFIX}/instances/{instance_id}"
        return JSONResponse(
            body,
            status_code=202,
            headers={"Location": location, "Retry-After": RETRY_AFTER_SECONDS},
        )

    return app


def status_payload(status: InstanceStatus) -> dict[str, Any]:
    """An instance's status in Durable Functions' JSON shape."""
    output: Any = status.output
    if status.failure is not None and output is None:
        output = f"{status.failure.error_type}: {status.failure.message}"
    return {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.value,
        "input": status.input,
        "customStatus": status.custom_status,
        "output": output,
        "createdTime": format_time(status.created_at),
        "lastUpdatedTime": format_time(status.last_updated_at),
    }


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status_code)
