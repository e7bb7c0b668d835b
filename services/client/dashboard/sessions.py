"""Dashboard logins: a signed cookie naming the key that logged in, and CSRF tokens.

A browser cannot send ``x-functions-key`` when it follows a link, so the key is typed once into
``/dashboard/login`` and the answer sets a cookie (HttpOnly, SameSite=Strict, path
``/dashboard``). The cookie holds the key's scope, an expiry, a random nonce and a key id (a
hash of the key's digest: it names the key without revealing it), signed with HMAC-SHA256
keyed by the key's digest, which the service holds anyway and nobody can derive without the
key. Hence (ADR 33):

- no secret of its own to configure, and a login holds across restarts and replicas;
- removing a key from the settings ends every login it opened (rotation revokes);
- the cookie carries no key, and a changed byte makes it worthless.

Every form that acts carries a CSRF token derived from the same digest and the nonce; a POST
whose token does not match is refused. SameSite=Strict already keeps other sites' requests
from carrying the cookie: the token is the second lock.

Without keys (``DF_AUTH_DISABLED=true``) the dashboard is open like the API, with a signing key
drawn at start-up so forms still carry CSRF tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.client.auth import AccessKeys, KeyScope

COOKIE_NAME = "df_dashboard"
_OPEN = "open"
"""The key id of logins to a dashboard served without keys."""
_SIGNS_IN = (KeyScope.MANAGEMENT, KeyScope.READ)
"""A start key reads no instance (ADR 10), so it opens no dashboard page either."""


@dataclass(frozen=True)
class DashboardSession:
    """A valid login: what it may do, and the token its forms must carry."""

    scope: KeyScope
    expires_at: int
    csrf_token: str

    @property
    def may_act(self) -> bool:
        """Whether this login may change anything (a management key, or no keys at all)."""
        return self.scope is KeyScope.MANAGEMENT


def _key_id(digest: bytes) -> str:
    return hashlib.sha256(b"df-dashboard-key-id:" + digest).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sessions:
    """Issues and checks dashboard logins for a deployment's access keys."""

    def __init__(
        self,
        keys: AccessKeys,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lifetime = lifetime_seconds
        self._clock = clock
        self.open_access = keys.disabled
        if keys.disabled:
            self._signing = {_OPEN: (secrets.token_bytes(32), KeyScope.MANAGEMENT)}
        else:
            self._signing = {
                _key_id(digest): (digest, scope)
                for digest, scope in keys.digests()
                if scope in _SIGNS_IN
            }
        self._keys = keys

    def login(self, key: str) -> str | None:
        """The cookie value for a login with ``key``, or None when the key opens no page."""
        if self.open_access:
            return self._issue(_OPEN)
        if not key or self._keys.scope_of(key) not in _SIGNS_IN:
            return None
        return self._issue(_key_id(hashlib.sha256(key.encode()).digest()))

    def login_without_key(self) -> str | None:
        """A login for a dashboard served without keys; None when keys are required."""
        return self._issue(_OPEN) if self.open_access else None

    def _issue(self, key_id: str) -> str:
        digest, scope = self._signing[key_id]
        expires = int(self._clock() + self._lifetime)
        payload = f"{key_id}.{scope.value}.{expires}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign(digest, payload)}"

    def check(self, cookie: str | None) -> DashboardSession | None:
        """The login a cookie holds, or None: absent, forged, expired, or its key removed."""
        if not cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] not in self._signing:
            return None
        key_id, scope, expires, nonce = parts
        digest, key_scope = self._signing[key_id]
        if not hmac.compare_digest(signature, self._sign(digest, payload)):
            return None
        if scope != key_scope.value or not expires.isdigit() or int(expires) <= self._clock():
            return None
        token = self._sign(digest, f"csrf:{nonce}")
        return DashboardSession(key_scope, int(expires), token)

    @staticmethod
    def _sign(digest: bytes, payload: str) -> str:
        return _b64(hmac.new(digest, payload.encode(), hashlib.sha256).digest())


def csrf_matches(session: DashboardSession, token: str | None) -> bool:
    """Whether a form's token is the one its login issued (compared in constant time)."""
    return token is not None and hmac.compare_digest(token, session.csrf_token)
