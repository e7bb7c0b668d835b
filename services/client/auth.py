"""Access keys: who may call the HTTP API, decided the way Azure Functions decides it.

A caller presents a key in the ``x-functions-key`` header or the ``code`` query parameter
(the header wins when both are given). A management key (Durable Functions' system key) opens
every route; a start key opens only starting orchestrations and raising events; a read key
(``DF_READ_KEYS``) opens only the dashboard's pages, to look, never to act (ADR 33). Anything
else is refused with 401 before the route reads its body, so a refused call changes nothing.
The health routes (``/healthz``, ``/livez``, ``/readyz``) and the OpenAPI pages need no key.
ADR 10 records the choices.

Within the events route, an orchestrator's protected events (``protected_events``, ADR 20)
need a management key: ``opens_protected_events`` says whether the request's key does.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery

from services.client.api_common import ApiError
from services.client.settings import ClientSettings

log = structlog.get_logger(__name__)

MIN_KEY_LENGTH = 16
KEY_HEADER = "x-functions-key"
KEY_PARAMETER = "code"


class KeyScope(StrEnum):
    MANAGEMENT = "management"
    START = "start"
    READ = "read"


class AccessKeysError(ValueError):
    """The deployment's key settings cannot be served safely."""


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the key's
    # length as well as its content.
    return hashlib.sha256(key.encode()).digest()


def _split(keys: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in keys.split(",") if key.strip())


@dataclass(frozen=True)
class AccessKeys:
    """The keys a deployment accepts (as digests), or ``disabled`` for local development."""

    management: tuple[bytes, ...]
    start: tuple[bytes, ...]
    disabled: bool = False
    read: tuple[bytes, ...] = ()

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> AccessKeys:
        """Raises ``AccessKeysError`` for settings that would leave the API open by accident:
        no key at all without ``DF_AUTH_DISABLED=true``, keys together with it, or a key
        shorter than ``MIN_KEY_LENGTH``."""
        management = _split(settings.management_keys.get_secret_value())
        start = _split(settings.start_keys.get_secret_value())
        read = _split(settings.read_keys.get_secret_value())
        if settings.auth_disabled:
            if management or start or read:
                raise AccessKeysError(
                    "DF_AUTH_DISABLED=true and access keys are both set; unset one of them"
                )
            return cls((), (), disabled=True)
        if not management and not start:
            raise AccessKeysError(
                "the HTTP API needs access keys: set DF_MANAGEMENT_KEYS (and DF_START_KEYS), "
                "or DF_AUTH_DISABLED=true for local development only"
            )
        if any(len(key) < MIN_KEY_LENGTH for key in management + start + read):
            raise AccessKeysError(
                f"access keys must have at least {MIN_KEY_LENGTH} characters; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if len({*management, *start, *read}) < len(management) + len(start) + len(read):
            raise AccessKeysError("an access key is listed twice; give each key one kind only")
        return cls(
            tuple(_digest(key) for key in management),
            tuple(_digest(key) for key in start),
            read=tuple(_digest(key) for key in read),
        )

    def scope_of(self, key: str) -> KeyScope | None:
        """What ``key`` opens, compared in constant time against every configured key."""
        digest = _digest(key)
        is_management = _any_equal(digest, self.management)
        is_start = _any_equal(digest, self.start)
        is_read = _any_equal(digest, self.read)
        if is_management:
            return KeyScope.MANAGEMENT
        if is_start:
            return KeyScope.START
        return KeyScope.READ if is_read else None

    def digests(self) -> list[tuple[bytes, KeyScope]]:
        """Every key's digest with its scope (the dashboard signs its sessions with them)."""
        return [
            *((digest, KeyScope.MANAGEMENT) for digest in self.management),
            *((digest, KeyScope.START) for digest in self.start),
            *((digest, KeyScope.READ) for digest in self.read),
        ]


def _any_equal(digest: bytes, keys: tuple[bytes, ...]) -> bool:
    found = False
    for key in keys:  # no early exit: the time taken does not tell which key matched
        found |= hmac.compare_digest(digest, key)
    return found


_CODE = APIKeyQuery(
    name=KEY_PARAMETER, auto_error=False, description="An access key, in the query string."
)
_HEADER = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="An access key, in a header.")
_REFUSALS = {
    "missing": f"an access key is required: pass it as the {KEY_PARAMETER} query parameter "
    f"or the {KEY_HEADER} header",
    "invalid": "the access key is not valid",
    "narrow": "this key can only start orchestrations and raise events; this route needs a "
    "management key",
    "read": "this key can only read the dashboard; this route needs a "
    "management key (or a start key)",
}


def _authorize(request: Request, needed: KeyScope, code: str | None, header: str | None) -> None:
    keys: AccessKeys = request.app.state.access_keys
    request.state.access_key = None
    request.state.access_scope = None
    if keys.disabled:
        return
    presented = header or code
    scope = keys.scope_of(presented) if presented else None
    if scope is KeyScope.MANAGEMENT or scope is needed:
        request.state.access_key = presented
        request.state.access_scope = scope
        return
    refusal = "missing" if not presented else "invalid" if scope is None else "narrow"
    if scope is KeyScope.READ:
        refusal = "read"
    log.warning("http.refused", path=request.url.path, method=request.method, refusal=refusal)
    raise ApiError(401, _REFUSALS[refusal])


async def require_management_key(
    request: Request,
    code: Annotated[str | None, Security(_CODE)],
    header: Annotated[str | None, Security(_HEADER)],
) -> None:
    """Routes that read, change or delete instances: a management key."""
    _authorize(request, KeyScope.MANAGEMENT, code, header)


async def require_start_key(
    request: Request,
    code: Annotated[str | None, Security(_CODE)],
    header: Annotated[str | None, Security(_HEADER)],
) -> None:
    """Starting orchestrations and raising events: a start key or a management key."""
    _authorize(request, KeyScope.START, code, header)


def _issued_key(request: Request) -> str | None:
    key: str | None = getattr(request.state, "access_key", None)
    return key


IssuedKey = Annotated[str | None, Depends(_issued_key)]
"""The key the request was authorized with (``None`` when keys are disabled): links the API
hands out carry it."""


def has_management_access(request: Request) -> bool:
    """Whether the request was authorized with a management key, or the deployment serves
    the API without keys: what reading instances and raising protected events need."""
    keys: AccessKeys = request.app.state.access_keys
    scope: KeyScope | None = getattr(request.state, "access_scope", None)
    return keys.disabled or scope is KeyScope.MANAGEMENT


def opens_protected_events(request: Request) -> bool:
    """Whether the request may raise an orchestrator's protected events (ADR 20)."""
    return has_management_access(request)
