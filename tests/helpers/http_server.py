"""A small local HTTP server for durable HTTP tests: ``/jobs`` answers ``202`` with a
``Location`` (and ``Retry-After: 1``) as many times as asked, then ``200``; every request is
recorded. It runs in a thread of the test process; the services reach it over 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class JobServer:
    """How many ``202`` answers each job gets before its ``200``, and what it was sent."""

    accepted_answers: int = 2
    big_body_bytes: int = 0
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    _polls: dict[str, int] = field(default_factory=dict)


def _handler(server: JobServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append(
                Recorded(self.command, self.path, dict(self.headers.items()), body)
            )
            job = self.path.split("?")[0].rstrip("/").split("/")[-1]
            if self.path.startswith("/big"):
                self._send(200, b"x" * server.big_body_bytes)
                return
            polls = server._polls.get(job, 0)
            server._polls[job] = polls + 1
            if polls < server.accepted_answers:
                self.send_response(202)
                self.send_header("Location", f"/status/{job}")
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(200, f'{{"job": "{job}", "polls": {polls}}}'.encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    return Handler


@contextmanager
def job_server(accepted_answers: int = 2, big_body_bytes: int = 0) -> Iterator[JobServer]:
    """A running ``JobServer`` on a free port of 127.0.0.1."""
    state = JobServer(accepted_answers, big_body_bytes)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
