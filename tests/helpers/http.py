"""Polling the HTTP API the way Durable Functions' clients do, with a deadline."""

from __future__ import annotations

import httpx

from tests.helpers.waiting import assert_eventually

PREFIX = "/runtime/webhooks/durabletask"


async def poll_until_ended(
    http: httpx.AsyncClient, status_url: str, timeout: float = 30.0, **params: str
) -> httpx.Response:
    """Poll ``statusQueryGetUri`` until it answers 200 (the instance has ended)."""

    async def ended() -> httpx.Response:
        response = await http.get(status_url, params=params)
        assert response.status_code in {200, 202}, response.text
        assert response.status_code == 200, f"still {response.json()['runtimeStatus']}"
        return response

    return await assert_eventually(ended, timeout=timeout, interval=0.1)


async def poll_until_status(
    http: httpx.AsyncClient, status_url: str, runtime_status: str, timeout: float = 30.0
) -> httpx.Response:
    """Poll ``statusQueryGetUri`` until the instance reports ``runtime_status``."""

    async def reached() -> httpx.Response:
        response = await http.get(status_url)
        assert response.status_code in {200, 202}, response.text
        assert response.json()["runtimeStatus"] == runtime_status, response.json()
        return response

    return await assert_eventually(reached, timeout=timeout, interval=0.05)
