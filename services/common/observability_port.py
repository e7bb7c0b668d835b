"""The observability port of the orchestrator and activities services: ``GET /livez``,
``GET /readyz`` and ``GET /metrics`` on a small HTTP server of their own (ADR 30).

The standard library's threading HTTP server, not a web framework: the orchestrator's
supervisor serves it too, and must not load the service's libraries (ADR 15). It runs in a
daemon thread, so it answers whatever the event loop is doing; readiness comes from the
loop's latest evaluation (``services.common.readiness``) and metrics from prometheus-client,
which only reads its values.

The client service serves the same routes through its HTTP API (``services.client.api``).
"""

from __future__ import annotations

import errno
import json
import socketserver
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from services.common.readiness import Readiness, ReadinessMonitor

log = structlog.get_logger(__name__)

MetricsSource = Callable[[str], tuple[bytes, str]]
"""Renders the metrics for a request's ``Accept`` header: (body, content type)."""

ReadinessSource = Callable[[], Readiness]


class PortInUseError(OSError):
    """The observability port is taken by another process."""

    def __init__(self, host: str, port: int, setting: str) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"{host}:{port} is already in use; set {setting} to a free port, "
            "0 for any free port, or off",
        )


def registry_metrics(registry: CollectorRegistry = REGISTRY) -> MetricsSource:
    """This process's metrics (the default registry unless another is given)."""

    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    return render


def multiprocess_metrics(directory: Path) -> MetricsSource:
    """The metrics every process writes to ``directory`` in prometheus-client's
    multiprocess mode, summed or kept per process as each metric says, read at each scrape."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry_metrics(registry)


class ObservabilityPort:
    """A bound HTTP port serving ``/livez``, ``/readyz`` and ``/metrics`` from a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: ReadinessSource,
        metrics: MetricsSource,
        setting: str,
    ) -> None:
        """Bind at once, so a port in use fails the start (``PortInUseError``) before
        anything else is done; ``setting`` is the variable to name in that error."""
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port, setting) from error
            raise
        self._server.readiness = readiness
        self._server.metrics = metrics
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and the port bound (the one chosen, when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        # A short poll: ``close`` waits for it, and with it the service's stop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="observability-port", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    readiness: ReadinessSource
    metrics: MetricsSource

    def server_bind(self) -> None:
        # ``HTTPServer.server_bind`` also looks the host's name up (a DNS query that can take
        # seconds); the address is all that is needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "durable-rabbit"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path in ("/livez", "/healthz"):
                # Alive: the process answers. Whether it can do its work is /readyz.
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                readiness = self.server.readiness()
                self._json(200 if readiness.ready else 503, readiness.body())
            elif path == "/metrics":
                body, content_type = self.server.metrics(self.headers.get("Accept", ""))
                self._send(200, body, content_type)
            else:
                self._json(404, {"message": f"no route {path}: /livez, /readyz, /metrics"})
        except Exception as error:  # an answer, not a dropped connection, and the reason
            self._json(500, {"message": repr(error)})

    def do_POST(self) -> None:
        self._json(405, {"message": "only GET is allowed here"}, allow="GET")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _json(self, status: int, body: dict[str, Any], *, allow: str | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", allow=allow)

    def _send(
        self, status: int, body: bytes, content_type: str, *, allow: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow is not None:
            self.send_header("Allow", allow)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scraped every few seconds: a line each would drown the service's own


def port_or_off(value: object) -> object:
    """A port setting's value before validation: ``off`` (or nothing) disables the port."""
    if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
        return None
    return value


def serve_in_process(
    address: tuple[str, int] | None, monitor: ReadinessMonitor, setting: str
) -> ObservabilityPort | None:
    """Serve this process's own metrics and ``monitor``'s readiness on ``address`` (None:
    no port); a port in use ends the process at once with status 2 and says which."""
    if address is None:
        return None
    try:
        port = ObservabilityPort(
            *address, readiness=monitor.latest, metrics=registry_metrics(), setting=setting
        )
    except PortInUseError as error:
        log.error("service.cannot_start", error=error.strerror)
        sys.exit(2)
    host, bound = port.address
    log.info("observability.listening", host=host, port=bound)
    port.start()
    return port
