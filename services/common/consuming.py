"""Keeping consumers attached: connect, set up, notice the loss, reconnect, set up again.

aio-pika's robust connections reconnect by themselves, but after a broker restart they were
seen here to come back without their consumers (a service that silently stops working).
The supervisor owns the consuming connection instead: each time it connects, it calls
``attach`` (declare, open channels, start consuming); when the connection drops it calls
``detach`` (forget deliveries of the dead channels: the broker redelivers them) and connects
again with backoff, until stopped. Each connect tries every node ``DF_AMQP_URL`` lists
(``durable.broker.connect``), so a failed node's consumers come back on another; the pauses
between rounds are jittered, so the processes that node held do not all arrive at once.

A channel can also be closed by the broker alone, its connection staying up: a channel error
(an acknowledgement of a delivery tag the broker no longer knows, a queue deleted under a
consumer). Its consumers are gone with it, and nothing else would notice, so the channels
that consume are ``watch``-ed: the broker closing one is handled as losing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPChannelError, ChannelClosed

from durable.broker import connect
from durable.broker_nodes import jittered

log = structlog.get_logger(__name__)

_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)

ChannelWatch = Callable[[AbstractChannel], None]
"""What ``attach`` calls with each channel it consumes on (``ConnectionSupervisor.watch``)."""


async def consuming_channel(
    connection: AbstractConnection, prefetch: int, watch: ChannelWatch | None = None
) -> AbstractChannel:
    """A channel to consume on: ``watch``-ed (when given) and with at most ``prefetch``
    deliveries unacknowledged."""
    channel = await connection.channel()
    if watch is not None:
        watch(channel)
    await channel.set_qos(prefetch_count=prefetch)
    return channel


class ConnectionSupervisor:
    """Runs ``attach`` on every new connection and ``detach`` when it is lost."""

    def __init__(
        self,
        amqp_url: str,
        connection_name: str,
        attach: Callable[[AbstractConnection], Awaitable[None]],
        detach: Callable[[], Awaitable[None]],
    ) -> None:
        self._amqp_url = amqp_url
        self._connection_name = connection_name
        self._attach = attach
        self._detach = detach
        self.attached = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self, stopping: asyncio.Event) -> asyncio.Task[None]:
        """Connect and attach once (raising if that fails), then keep it up in the background."""
        connection = await connect(self._amqp_url, self._connection_name)
        lost = await self._attached(connection)
        return asyncio.create_task(self._keep_up(stopping, lost), name=self._connection_name)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()

    def watch(self, channel: AbstractChannel) -> None:
        """If the broker closes ``channel`` while its connection is up, log why and close the
        connection: the supervisor then detaches, reconnects and attaches again, so the
        channel's consumers come back instead of being silently gone."""
        connection = self._connection

        def on_close(_: object, error: BaseException | None = None) -> None:
            if connection is None or connection.is_closed or not _closed_by_broker(error):
                return
            log.error(
                "amqp.channel_closed_by_broker",
                connection=self._connection_name,
                error=repr(error),
            )
            task = asyncio.ensure_future(connection.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        channel.close_callbacks.add(on_close)

    async def _attached(self, connection: AbstractConnection) -> asyncio.Event:
        lost = asyncio.Event()

        def on_close(*_: Any) -> None:
            lost.set()

        connection.close_callbacks.add(on_close)
        self._connection = connection
        await self._attach(connection)
        self.attached.set()
        log.info("amqp.attached", connection=self._connection_name)
        return lost

    async def _keep_up(self, stopping: asyncio.Event, lost: asyncio.Event) -> None:
        current: asyncio.Event | None = lost
        while current is not None:
            await _first_of(stopping, current)
            if stopping.is_set():
                return
            self.attached.clear()
            log.warning("amqp.connection_lost", connection=self._connection_name)
            await self._detach()
            current = await self._reconnect(stopping)

    async def _reconnect(self, stopping: asyncio.Event) -> asyncio.Event | None:
        attempt = 0
        while not stopping.is_set():
            delay = jittered(_BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return None
            attempt += 1
            try:
                connection = await connect(self._amqp_url, self._connection_name)
            except Exception as error:  # broker still down: try again
                log.info("amqp.reconnect_failed", attempt=attempt, error=repr(error))
                continue
            try:
                return await self._attached(connection)
            except Exception as error:  # e.g. the connection dropped again mid-attach
                log.warning("amqp.attach_failed", error=repr(error))
                with contextlib.suppress(Exception):
                    await connection.close()
                await self._detach()
        return None


def _closed_by_broker(error: BaseException | None) -> bool:
    """Whether a channel's close came from the broker (a reply code and text), not from our
    own ``close()`` (a bare ``ChannelClosed``) or the connection's end."""
    if not isinstance(error, AMQPChannelError):
        return False
    return not (type(error) is ChannelClosed and not any(error.args))


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
