"""Starts through the client service's HTTP API at a steady rate, each answer kept: what the
callers of the API were told during a fault, to hold against what the store has afterwards.

Every start names its instance id (``POST /orchestrators/{name}/{id}``), so a start that was
refused, or whose answer never came, can still be looked for in the store. Requests go out on
a clock, not one after another: an answer that is slow in coming does not slow the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.helpers.http import PREFIX


@dataclass(frozen=True)
class Attempt:
    """One start: when it was sent and answered (wall clock, which on one machine is the
    database's), and the answer (``status`` None: no answer, ``message`` the error)."""

    instance_id: str
    sent_at: datetime
    answered_at: datetime
    status: int | None
    message: str

    @property
    def accepted(self) -> bool:
        return self.status == 202


class HttpStarts:
    """Starts ``orchestrator`` with ``inputs(i)`` ``rate`` times a second until stopped."""

    def __init__(
        self,
        base_url: str,
        key: str,
        orchestrator: str,
        inputs: Callable[[int], Any],
        *,
        rate: float,
        timeout: float = 30.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"x-functions-key": key}, timeout=timeout
        )
        self.orchestrator = orchestrator
        self._inputs = inputs
        self._interval = 1 / rate
        self.attempts: list[Attempt] = []
        self._requests: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Send starts until ``stopping`` is set, then wait for the answers still due."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        index = 0
        while not stopping.is_set():
            request = asyncio.create_task(self._start(index))
            self._requests.add(request)
            request.add_done_callback(self._requests.discard)
            index += 1
            next_at += self._interval
            # The clock of the sends: a pause until the next one is due, unless told to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(next_at - loop.time(), 0))
        await asyncio.gather(*self._requests)
        await self._http.aclose()

    async def _start(self, index: int) -> None:
        instance_id = f"http-{uuid.uuid4().hex}"
        sent_at = datetime.now(UTC)
        try:
            response = await self._http.post(
                f"{PREFIX}/orchestrators/{self.orchestrator}/{instance_id}",
                json=self._inputs(index),
            )
        except httpx.HTTPError as error:
            status, message = None, repr(error)
        else:
            status = response.status_code
            message = "" if status == 202 else response.text
        self.attempts.append(Attempt(instance_id, sent_at, datetime.now(UTC), status, message))

    def between(self, start: datetime, end: datetime) -> list[Attempt]:
        """The starts sent from ``start`` to ``end``, or answered in that time."""
        return [a for a in self.attempts if a.answered_at >= start and a.sent_at <= end]
