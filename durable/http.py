"""Durable HTTP calls: the answer ``ctx.call_http`` completes with.

``DurableHttpResponse`` has Durable Functions' names (``status_code``, ``headers``,
``content``). Every status is an answer, 4xx and 5xx included; only a request that gets no
answer (the host is unreachable, the time-out passes, the body is too long, the host is not
allowed) fails the task with ``TaskFailedError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DurableHttpResponse:
    """An HTTP answer, as recorded in the orchestration's history.

    Attributes:
        status_code: the HTTP status, e.g. 200.
        headers: the response's headers; several values of one header are joined with
            ``", "``. Look one up in any letter case with ``header``.
        content: the body as text (decoded as the response's charset says, else UTF-8), or
            ``None`` when it was empty.
    """

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: str | None = None

    def header(self, name: str) -> str | None:
        """The value of header ``name``, whatever its letter case, or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        if self.content is None:
            raise ValueError("the response has no content")
        return json.loads(self.content)
