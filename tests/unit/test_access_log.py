"""The HTTP API's access log: one line per request, with no query value in it."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from services.client.access_log import AccessLog, query_names


async def answer_teapot(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b"short and stout"})


async def crash(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("before any answer")


async def test_a_request_is_logged_with_its_query_names_but_no_values() -> None:
    transport = httpx.ASGITransport(app=AccessLog(answer_teapot))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        with capture_logs() as lines:
            response = await http.get("/runtime/x?code=secret-key&showHistory=true&code=again")
    assert response.status_code == 418
    [line] = [line for line in lines if line["event"] == "http.request"]
    assert line["method"] == "GET"
    assert line["path"] == "/runtime/x"
    assert line["query"] == ["code", "showHistory"]
    assert line["status"] == 418
    assert line["duration_ms"] >= 0
    assert "secret-key" not in repr(line)


async def test_a_request_that_ends_without_an_answer_is_logged_without_a_status() -> None:
    transport = httpx.ASGITransport(app=AccessLog(crash))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        with capture_logs() as lines, pytest.raises(RuntimeError):
            await http.post("/anything")
    [line] = [line for line in lines if line["event"] == "http.request"]
    assert line["status"] is None


def test_query_names_stay_few_and_short_whatever_is_sent() -> None:
    many = "&".join(f"{i}{'n' * 100}=v" for i in range(40)).encode()
    names = query_names(many)
    assert len(names) == 16
    assert all(len(name) == 64 for name in names)
    assert query_names(b"") == []
    assert query_names(b"a=1&&b&a=2") == ["a", "b"]
