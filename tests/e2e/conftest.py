"""Fixtures for the HTTP API tests: the client service's base URL and an HTTP client that
presents the session's management key (as ``x-functions-key``) on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.processes import ServiceGroup
from tests.conftest import MANAGEMENT_KEY


@pytest.fixture
def base_url(services: ServiceGroup) -> str:
    host = services.env.get("DF_HTTP_HOST", "127.0.0.1")
    return f"http://{host}:{services.env['DF_HTTP_PORT']}"


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"x-functions-key": MANAGEMENT_KEY}
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, headers=headers) as http:
        yield http
