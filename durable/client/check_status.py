"""Start-and-wait: the outcome when the instance ends in time, else the check-status payload.

What Durable Functions' ``WaitForCompletionOrCreateCheckStatusResponseAsync`` answers, as a
plain value (status code, JSON body, headers) that any web framework turns into its own
response, and that Python code reads directly (``status``, ``ended``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from contracts import OrchestrationStatus
from durable.client.errors import InstanceNotFoundError
from durable.client.payloads import check_status_payload, status_payload
from durable.store.queries import InstanceStatus

START_RETRY_AFTER_SECONDS = "10"
"""``Retry-After`` of a check-status response, as Durable Functions sends it."""


@dataclass(frozen=True)
class CheckStatusResponse:
    """Either the instance's outcome or, while it runs, the links to follow it.

    Attributes:
        status_code: 200 when the instance has ended (500 for a Failed one when asked for),
            202 while it is Pending, Running or Suspended.
        body: the output of a Completed instance; the status (Durable Functions' JSON) of a
            Failed or Terminated one; otherwise the check-status payload.
        headers: ``Location`` (the status link) and ``Retry-After`` on a 202.
        status: the last status read: the final one once the instance has ended.
    """

    status_code: int
    body: Any
    status: InstanceStatus
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status.runtime_status.is_terminal


def create_check_status_response(
    base_url: str, status: InstanceStatus, access_key: str | None = None
) -> CheckStatusResponse:
    """202 with the check-status payload, its links carrying ``access_key``."""
    payload = check_status_payload(base_url, status.instance_id, access_key)
    headers = {"Location": payload["statusQueryGetUri"], "Retry-After": START_RETRY_AFTER_SECONDS}
    return CheckStatusResponse(202, payload, status, headers)


def outcome_response(
    status: InstanceStatus, *, return_internal_server_error_on_failure: bool = False
) -> CheckStatusResponse:
    """The answer for an ended instance: its output when it Completed, else its status."""
    if status.runtime_status is OrchestrationStatus.COMPLETED:
        return CheckStatusResponse(200, status.output, status)
    failed = status.runtime_status is OrchestrationStatus.FAILED
    code = 500 if failed and return_internal_server_error_on_failure else 200
    return CheckStatusResponse(code, status_payload(status), status)


STOP_CHECK_SECONDS = 0.25
"""How often a wait looks at ``give_up`` between two reads of the instance."""


async def wait_for_completion_or_check_status(
    get_status: Callable[[str], Awaitable[InstanceStatus | None]],
    instance_id: str,
    base_url: str,
    *,
    timeout: float,
    retry_interval: float,
    access_key: str | None = None,
    return_internal_server_error_on_failure: bool = False,
    give_up: Callable[[], Awaitable[bool]] | None = None,
) -> CheckStatusResponse:
    """Poll the instance every ``retry_interval`` seconds for up to ``timeout`` seconds.

    ``give_up`` is asked every ``STOP_CHECK_SECONDS`` while waiting: when it says so (the
    caller went away, the service is stopping), the wait ends at once with the check-status
    payload, as if the time had run out.

    Raises ``ValueError`` when ``retry_interval`` exceeds ``timeout`` (as Durable Functions
    does) and ``InstanceNotFoundError`` when there is no such instance.
    """
    if retry_interval > timeout:
        raise ValueError(
            f"the timeout ({timeout:g} s) must not be shorter than the retry interval "
            f"({retry_interval:g} s)"
        )
    deadline = time.monotonic() + timeout
    while True:
        status = await get_status(instance_id)
        if status is None:
            raise InstanceNotFoundError(instance_id)
        if status.runtime_status.is_terminal:
            return outcome_response(
                status,
                return_internal_server_error_on_failure=return_internal_server_error_on_failure,
            )
        if time.monotonic() >= deadline:
            return create_check_status_response(base_url, status, access_key)
        next_read = min(time.monotonic() + max(retry_interval, 0.01), deadline)
        while (remaining := next_read - time.monotonic()) > 0:
            if give_up is not None and await give_up():
                return create_check_status_response(base_url, status, access_key)
            await asyncio.sleep(min(remaining, STOP_CHECK_SECONDS))
