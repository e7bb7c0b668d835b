"""Connecting to one of several Postgres hosts, each given a time of its own.

A ``DF_DATABASE_URL`` may name several hosts (``postgresql://u@h1:5432,h2:5432/db
?target_session_attrs=read-write``), the servers of a primary and its standbys: a connection
goes to the first that answers and takes writes. asyncpg gives the whole list one time-out and
spends it on the first host when that host accepts TCP connections but never answers (a frozen
VM, a stopped server whose kernel still runs): it never tries the next one, so a promoted
standby stays out of reach. libpq's ``connect_timeout`` is per host; so is this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

# Long enough for a TLS handshake over a slow link, short enough that a failover to the
# second host costs little more than the operator's promotion.
HOST_CONNECT_SECONDS = 5.0

_IPV6 = re.compile(r"\[([^\]]+)\](?::(\d+))?$")


def url_hosts(database_url: str) -> list[tuple[str, int | None]]:
    """The hosts (and ports, where given) a URL names, in order; [] when it names none in
    its authority (a Unix socket given as a parameter, a bare DSN)."""
    authority = urlsplit(database_url).netloc.rpartition("@")[2]
    hosts: list[tuple[str, int | None]] = []
    for spec in authority.split(","):
        if not spec:
            continue
        ipv6 = _IPV6.match(spec)
        if ipv6:
            host, port = ipv6.group(1), ipv6.group(2)
        else:
            host, _, port = spec.partition(":")
        hosts.append((unquote(host), int(port) if port else None))
    return hosts


def connect_per_host(
    database_url: str, per_host_seconds: float = HOST_CONNECT_SECONDS
) -> Callable[..., Coroutine[Any, Any, asyncpg.Connection]]:
    """A ``connect`` for ``asyncpg.create_pool`` that tries the URL's hosts one at a time,
    each for ``per_host_seconds``; with one host, asyncpg's own."""
    hosts = url_hosts(database_url)

    async def connect(dsn: str, **options: Any) -> asyncpg.Connection:
        if len(hosts) < 2:
            return await asyncpg.connect(dsn, **options)
        failures: list[BaseException] = []
        for host, port in hosts:
            try:
                return await asyncpg.connect(
                    dsn, host=host, port=port, timeout=per_host_seconds, **options
                )
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                # Among them TargetServerAttributeNotMatched: a standby, not the primary.
                asyncpg.InternalClientError,
            ) as error:
                failures.append(error)
        raise failures[-1]

    return connect
