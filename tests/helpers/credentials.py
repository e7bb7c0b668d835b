"""Throw-away credentials for a test deployment: a Postgres role and a RabbitMQ user with
random passwords, removed again afterwards.

The local Postgres trusts every connection, so any password is accepted for a role that may
log in; the point is that the services are configured with one, as in production.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def in_url(self, url: str) -> str:
        """``url`` with this user and password as its userinfo."""
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{self.user}:{self.password}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


def random_credentials(kind: str) -> Credentials:
    return Credentials(f"df_logtest_{kind}_{secrets.token_hex(4)}", secrets.token_hex(16))


@asynccontextmanager
async def database_role(admin_url: str) -> AsyncIterator[Credentials]:
    """A role that may log in and create databases' tables, dropped at the end."""
    role = random_credentials("db")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"CREATE ROLE \"{role.user}\" LOGIN PASSWORD '{role.password}'")
    finally:
        await admin.close()
    try:
        yield role
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP ROLE IF EXISTS "{role.user}"')
        finally:
            await admin.close()


@asynccontextmanager
async def broker_user() -> AsyncIterator[Credentials]:
    """A RabbitMQ user with every permission on the default virtual host, deleted at the end.

    Made with ``rabbitmqctl`` (the test runs beside the broker, as root).
    """
    user = random_credentials("amqp")
    _rabbitmqctl("add_user", user.user, user.password)
    try:
        _rabbitmqctl("set_permissions", "-p", "/", user.user, ".*", ".*", ".*")
        yield user
    finally:
        _rabbitmqctl("delete_user", user.user)


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "--quiet", *arguments], check=True, capture_output=True)
