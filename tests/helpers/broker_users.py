"""RabbitMQ users made for a test session, and removed at its end.

Users are the broker's, not a virtual host's, so their names carry the session's tag: sessions
running side by side never share or delete each other's. They are created with one
``rabbitmqctl import_definitions`` call (about a third of a second here), which the broker
applies asynchronously: ``create`` returns once every user can log in. ``rabbitmqctl`` runs on
this machine, or inside the RabbitMQ container when the session started one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq

from tests.helpers.waiting import assert_eventually


@dataclass(frozen=True)
class BrokerUser:
    """A broker user with full permissions on the default virtual host."""

    name: str
    password: str

    @classmethod
    def new(cls, name: str) -> BrokerUser:
        return cls(name, secrets.token_urlsafe(18))

    def url(self, amqp_url: str) -> str:
        """``amqp_url`` with this user's credentials instead of its own."""
        parts = urlsplit(amqp_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(self.name, safe='')}:{quote(self.password, safe='')}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _password_hash(password: str) -> str:
    # rabbit_password_hashing_sha256: a 4-byte salt, then SHA-256 of salt + password, base64.
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(users: Iterable[BrokerUser], vhost: str = "/") -> dict[str, object]:
    """RabbitMQ definitions adding ``users`` with full permissions on ``vhost``."""
    listed = list(users)
    return {
        "users": [
            {
                "name": user.name,
                "password_hash": _password_hash(user.password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for user in listed
        ],
        "permissions": [
            {"user": user.name, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
            for user in listed
        ],
    }


async def _rabbitmqctl(command: Sequence[str], *args: str, stdin: bytes | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), 60)
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {output.decode()}")


async def create(users: Sequence[BrokerUser], amqp_url: str, command: Sequence[str]) -> None:
    """Add ``users`` to the broker and wait until each of them can log in."""
    await import_definitions(json.dumps(definitions(users)).encode(), users, amqp_url, command)


async def import_definitions(
    body: bytes, users: Sequence[BrokerUser], amqp_url: str, command: Sequence[str]
) -> None:
    """Import definitions ``body`` (users and permissions only) and wait until each of
    ``users`` can log in."""
    await _rabbitmqctl(command, "import_definitions", stdin=body)

    async def logs_in(user: BrokerUser) -> bool:
        try:
            connection = await aio_pika.connect(user.url(amqp_url), timeout=5)
        except (aiormq.exceptions.AMQPError, ConnectionError) as error:
            raise AssertionError(f"{user.name} cannot log in yet: {error!r}") from error
        await connection.close()
        return True

    for user in users:
        await assert_eventually(lambda user=user: logs_in(user), timeout=30, interval=0.1)


async def delete(users: Iterable[BrokerUser], command: Sequence[str]) -> None:
    """Remove ``users`` from the broker (together: each call costs a third of a second)."""
    await asyncio.gather(*(_rabbitmqctl(command, "delete_user", user.name) for user in users))
