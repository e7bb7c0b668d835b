"""Client service settings (``DF_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from durable.settings import CommonSettings


class ClientSettings(CommonSettings):
    """Attributes:
    http_host: interface the HTTP API listens on.
    http_port: its port (7071, as Azure Functions' local host uses).
    base_url: the public base URL put into status and management links; defaults to
        ``http://{http_host}:{http_port}``.
    management_keys: comma-separated access keys that open every route of the HTTP API
        (Durable Functions' system key); several, so a key can be rotated.
    start_keys: comma-separated access keys that only start orchestrations and raise events.
    read_keys: comma-separated access keys that open only the dashboard's pages, to look at
        instances, approvals and dead letters without acting (ADR 33).
    auth_disabled: serve the HTTP API without keys, for local development only. The service
        refuses to start without keys unless this is set, and with both.
    http_max_body_bytes: the largest request body the HTTP API reads (413 beyond); by
        default twice ``max_value_bytes``, room for a value of the largest size sent the way
        Durable Functions' SDKs encode it.
    http_max_wait_seconds: the longest a request waits for an instance to end (a start or
        restart with ``timeout``); a longer ``timeout`` is shortened to this, and the caller
        gets the check-status payload to poll, as when any wait runs out.
    shutdown_seconds: how long a stop (SIGTERM) lets requests in progress finish before
        they are cancelled and the service exits.
    http_access_log: log one ``http.request`` line per request (method, path, the names of
        the query's parameters, status, duration, peer); off by default.
    dashboard_session_hours: how long a dashboard login lasts.
    dashboard_approval_orchestrator: the orchestrator whose instances the dashboard's
        approvals page shows (the approval workflow's name by default).
    """

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=7071, ge=1, le=65535)
    base_url: str | None = None
    management_keys: SecretStr = SecretStr("")
    start_keys: SecretStr = SecretStr("")
    read_keys: SecretStr = SecretStr("")
    auth_disabled: bool = False
    http_max_body_bytes: int | None = Field(default=None, ge=1024)
    http_max_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    shutdown_seconds: float = Field(default=10.0, gt=0, le=600)
    http_access_log: bool = False
    dashboard_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    dashboard_approval_orchestrator: str = "proposal_approval"

    @property
    def max_body_bytes(self) -> int:
        return self.http_max_body_bytes or 2 * self.max_value_bytes

    @property
    def public_base_url(self) -> str:
        return (self.base_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
