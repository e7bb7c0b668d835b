"""The nodes of one RabbitMQ cluster, as ``DF_AMQP_URL`` lists them: reading the list, the
order a connection tries them in, and the jitter of the pauses between rounds (ADR 28).

``DF_AMQP_URL`` holds one URL or several, comma-separated, each a node of the same cluster
(a comma inside a URL, in a password say, is written ``%2C``). ``durable.broker.connect``
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

from durable.redaction import mask_url

SCHEMES = ("amqp", "amqps")


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
