"""Sending results to the orchestrator: those finished together travel together (ADR 17).

The results finished during one turn of the event loop for one partition leave in one
``OrchestratorMessageBatch`` message (a result alone as a plain message), published with a
confirm; each caller learns when its own result is safe. No result waits longer than that
turn of the loop.
"""

from __future__ import annotations

import asyncio

from contracts import ORCHESTRATOR_MESSAGE_BATCH, OrchestratorMessage, Topology
from durable.broker import OutgoingMessage, Publisher, carrier

RESULT_PATIENCE_SECONDS = 30.0


class ResultSender:
    """Sends results with a confirm, several to a message when they finish together.

    Attributes:
        most: most results carried by one message.
        patience: how long a result's publish is tried again before its task is given back
            to the queue (and run again): long enough for a quorum queue to elect a new
            leader when a broker node is lost.
    """

    def __init__(
        self,
        publisher: Publisher,
        topology: Topology,
        *,
        most: int = 64,
        patience: float = RESULT_PATIENCE_SECONDS,
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self.most = most
        self.patience = patience
        self._pending: dict[str, list[tuple[OutgoingMessage, asyncio.Future[None]]]] = {}
        self._flush: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def send(self, result: OrchestratorMessage) -> None:
        """Return once ``result`` is confirmed by the broker; raise ``PublishFailedError``
        if it is not (nor is any result sent in the same message)."""
        exchange, routing_key = self._topology.orchestrator_route(result.envelope.instance_id)
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[None] = loop.create_future()
        message = OutgoingMessage.of(result, exchange, routing_key)
        self._pending.setdefault(routing_key, []).append((message, confirmed))
        if self._flush is None:
            self._flush = loop.call_soon(self._send_pending)
        await confirmed

    def _send_pending(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        for results in pending.values():
            for start in range(0, len(results), self.most):
                task = asyncio.create_task(self._publish(results[start : start + self.most]))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _publish(self, results: list[tuple[OutgoingMessage, asyncio.Future[None]]]) -> None:
        messages = [message for message, _ in results]
        try:
            await self._publisher.publish_patiently(
                messages[0]
                if len(messages) == 1
                else carrier(messages, ORCHESTRATOR_MESSAGE_BATCH),
                within=self.patience,
            )
        except Exception as error:
            for _, confirmed in results:
                if not confirmed.done():
                    confirmed.set_exception(error)
            return
        for _, confirmed in results:
            if not confirmed.done():
                confirmed.set_result(None)
