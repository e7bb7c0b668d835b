"""Connecting to the nodes of one RabbitMQ cluster, as ``DF_AMQP_URL`` lists them: reading the
list, the order a connection tries them in, the connection itself (``connect``, re-exported by
``durable.broker``), and the jitter of the pauses between rounds (ADR 28).

``DF_AMQP_URL`` holds one URL or several, comma-separated, each a node of the same cluster
(a comma inside a URL, in a password say, is written ``%2C``). ``connect``
tries them in turn, from a random one: the processes of a deployment then spread their
connections over the nodes instead of all crowding onto the first listed, and when a node
fails only the connections it held move. Every reconnect loop pauses between full rounds
for a jittered time, so that the processes a failed node dropped do not all come back at
the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractConnection

from durable.broker_events import broker_observer
from durable.redaction import mask_url

log = structlog.get_logger(__name__)

SCHEMES = ("amqp", "amqps")

SINGLE_NODE_CONNECT_TIMEOUT_SECONDS = 30.0
NODE_CONNECT_TIMEOUT_SECONDS = 5.0
"""How long a connection waits for one node of a list before it tries the next: a node
that is down refuses at once, but one whose host is gone answers nothing at all."""

DEFAULT_HEARTBEAT_SECONDS = 10
"""The AMQP heartbeat of a connection whose URL names none (``?heartbeat=N`` wins).

RabbitMQ closes a connection it has heard nothing from for about three heartbeats (measured on
3.10: 14 s at 5, 29 s at 10, 179 s at aiormq's own default of 60), and only then does single
active consumer pass a partition queue on. A process that stops without closing its socket
(SIGSTOP, a long pause, a host gone from the network) keeps its partitions' deliveries that
long, even after its lease has moved to another member (ADR 27): 10 s bounds that at about
half a minute, while code that blocks an event loop for less than that still keeps its
connection.
"""


class BrokerUnreachableError(ConnectionError):
    """No node of the list answered; ``failures`` holds one line per node (URL masked)."""

    def __init__(self, failures: Sequence[str]) -> None:
        super().__init__("no broker node answered: " + "; ".join(failures))
        self.failures = list(failures)


def node_urls(amqp_url: str) -> list[str]:
    """The URLs of ``amqp_url``, a comma-separated list, in their order.

    Raises:
        ValueError: the list is empty, or one of its items is not an ``amqp://`` or
            ``amqps://`` URL with a host, a valid port and, if it has one, a whole number of
            seconds as its ``heartbeat``; the message names the item (masked) and its place.
    """
    items = [item.strip() for item in amqp_url.split(",")]
    if items == [""]:
        raise ValueError("no broker URL given")
    for place, item in enumerate(items, start=1):
        problem = _problem(item)
        if problem is not None:
            where = f"item {place} of {len(items)}" if len(items) > 1 else "the URL"
            raise ValueError(f"{where} ({mask_url(item)!r}) {problem}")
    return items


def heartbeat_of(url: str) -> int | None:
    """The URL's own ``heartbeat`` query parameter, if it names one."""
    values = parse_qs(urlsplit(url).query).get("heartbeat")
    return int(values[-1]) if values else None


def rotation(urls: Sequence[str], start: int | None = None) -> list[str]:
    """``urls`` in the order one connection tries them: from ``start`` (a random place
    unless given) to the end, then from the beginning."""
    first = random.randrange(len(urls)) if start is None else start % len(urls)
    return [*urls[first:], *urls[:first]]


def jittered(seconds: float) -> float:
    """``seconds`` spread evenly over half to one and a half times itself: the same mean
    pause, but processes that lost their node together do not reconnect together."""
    return seconds * random.uniform(0.5, 1.5)


def _problem(item: str) -> str | None:
    if not item:
        return "is empty (two commas in a row, or one at an end)"
    try:
        parts = urlsplit(item)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as error:
        return f"cannot be read: {error}"
    if parts.scheme not in SCHEMES:
        return "is not an amqp:// or amqps:// URL"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "names port 0"
    heartbeats = parse_qs(parts.query).get("heartbeat", [])
    if any(not value.isdigit() for value in heartbeats):
        return "has a heartbeat that is not a whole number of seconds"
    return None


async def connect(
    amqp_url: str, connection_name: str, *, timeout: float | None = None
) -> AbstractConnection:
    """A plain connection to one node of ``amqp_url``; whoever owns it re-connects when it
    drops.

    ``amqp_url`` is one URL or a comma-separated list of the nodes of one cluster
    (``durable.broker_nodes``): they are tried in turn from a random one, each for
    ``NODE_CONNECT_TIMEOUT_SECONDS``, and the first that answers is used (a single URL is
    given ``SINGLE_NODE_CONNECT_TIMEOUT_SECONDS`` and its own error, as before lists). The
    heartbeat is the URL's ``heartbeat`` (seconds), else ``DEFAULT_HEARTBEAT_SECONDS``.

    Raises:
        BrokerUnreachableError: no node of a list answered (a ``ConnectionError``).
    """
    urls = node_urls(amqp_url)
    if len(urls) == 1:
        single = SINGLE_NODE_CONNECT_TIMEOUT_SECONDS if timeout is None else timeout
        return await _connect_node(urls[0], connection_name, single)
    each = NODE_CONNECT_TIMEOUT_SECONDS if timeout is None else timeout
    failures: list[str] = []
    for url in rotation(urls):
        try:
            connection = await _connect_node(url, connection_name, each)
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as error:
            log.info("amqp.node_unreachable", node=mask_url(url), error=repr(error))
            broker_observer().node_unreachable()
            failures.append(f"{mask_url(url)}: {error!r}")
            continue
        log.info("amqp.connected", node=mask_url(url), connection=connection_name)
        return connection
    raise BrokerUnreachableError(failures)


async def _connect_node(url: str, connection_name: str, timeout: float) -> AbstractConnection:
    heartbeat = heartbeat_of(url)
    return await aio_pika.connect(
        url,
        client_properties={"connection_name": connection_name},
        timeout=timeout,
        # None adds nothing to the URL: its own heartbeat stands.
        heartbeat=None if heartbeat is not None else DEFAULT_HEARTBEAT_SECONDS,
    )
