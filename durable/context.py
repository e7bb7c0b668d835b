"""The orchestration context: what orchestrator code calls, as a protocol.

Method names and meaning follow azure-functions-durable's ``DurableOrchestrationContext``, so
orchestrators written for it run unchanged. The engine that replays orchestrators
(``engine``) implements this protocol; orchestrator code needs only
this module. Everything here is deterministic: time comes from the history
(``current_utc_datetime``), ids from the instance id and a counter (``new_uuid``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from pydantic import JsonValue

from durable.http import DurableHttpResponse
from durable.retry import RetryOptions
from durable.tasks import Task, TimerTask, WhenAllTask, WhenAnyTask


@runtime_checkable
class OrchestrationContext(Protocol):
    """What an orchestrator function receives. Only call it from orchestrator code."""

    @property
    def instance_id(self) -> str:
        """The id of this orchestration instance."""
        ...

    @property
    def parent_instance_id(self) -> str | None:
        """The parent's instance id when this runs as a sub-orchestration, else ``None``."""
        ...

    @property
    def version(self) -> str | None:
        """The app version this instance started under (``DF_APP_VERSION`` of the process that
        started it, or its parent's for a sub-orchestration); ``None`` if it has none. Branch
        on it to keep old instances on the code paths they started with."""
        ...

    @property
    def current_utc_datetime(self) -> datetime:
        """The current time, replay-safe: when the running episode started, from the history."""
        ...

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs a part it ran before (use it to silence duplicate logs)."""
        ...

    def get_input(self, model: Any = None) -> Any:
        """The orchestration's input, as decoded JSON, or validated into ``model`` (a pydantic
        model, or a type involving one) when given; a mismatch raises ``BoundaryError``."""
        ...

    def new_uuid(self) -> str:
        """A UUID that is the same on every replay (name-based, from instance id, time, counter)."""
        ...

    def new_guid(self) -> str:
        """``new_uuid``, under the name azure-functions-durable also gives it."""
        ...

    def set_custom_status(self, status: Any) -> None:
        """Publish a JSON-serializable status value, visible to clients while the instance runs."""
        ...

    @property
    def custom_status(self) -> JsonValue:
        """The last value given to ``set_custom_status``."""
        ...

    def call_activity(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        *,
        timeout: timedelta | float | None = None,
    ) -> Task[Any]:
        """Schedule the activity ``name`` with ``input_``; the task completes with its result.

        If the activity fails, awaiting the task raises ``TaskFailedError``. With ``timeout``
        (a ``timedelta`` or seconds), it fails with ``ActivityTimeoutError`` when the activity
        has not finished that long after a worker started it, even if the worker died.
        """
        ...

    def call_activity_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        *,
        timeout: timedelta | float | None = None,
    ) -> Task[Any]:
        """``call_activity``, attempted again after failures as ``retry_options`` says.

        The waits between attempts are durable timers. Fails with the last attempt's failure.
        """
        ...

    def call_http(
        self,
        method: str,
        uri: str,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        token_source: Any = None,
        is_raw_str: bool = False,
        *,
        asynchronous_pattern_enabled: bool = True,
        timeout: timedelta | float | None = None,
    ) -> Task[DurableHttpResponse]:
        """Make an HTTP request, recorded in the history; completes with the answer.

        The activities service makes the request (the built-in activity ``durable.http``),
        so replay reads the answer from the history. ``content`` is sent as JSON (with
        ``Content-Type: application/json`` unless ``headers`` has one), or as it is when
        ``is_raw_str`` and it is a string. An answer ``202`` with a ``Location`` header is
        polled with ``GET`` after durable timers (``Retry-After``, else 30 s) until an answer
        that is not 202, unless ``asynchronous_pattern_enabled`` is false; ``timeout`` (a
        ``timedelta`` or seconds) bounds the whole call, polls included. Every status is an
        answer (``DurableHttpResponse``); a request that gets none (host unreachable or not
        allowed, time-out, body too long) or polling that gives up fails the task with
        ``TaskFailedError``. ``token_source`` (Azure managed identities) is not supported.
        """
        ...

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> Task[Any]:
        """Run the orchestrator ``name`` as a child instance; completes with its output.

        ``instance_id`` defaults (when None or empty) to one derived from this instance's. A
        child that fails (or is terminated) raises ``TaskFailedError`` here, with the child's
        failure as details. The child runs under ``version``, by default this instance's.
        """
        ...

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
    ) -> Task[Any]:
        """``call_sub_orchestrator``, attempted again after failures as ``retry_options`` says."""
        ...

    def continue_as_new(self, input_: Any, preserve_unprocessed_events: bool = False) -> None:
        """When the orchestrator returns, start over as a new execution with ``input_``.

        The new execution starts with an empty history under the same instance id. Events
        raised to this execution that it did not consume are passed on to the new one when
        ``preserve_unprocessed_events`` is true, and dropped otherwise.
        """
        ...

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer that fires at ``fire_at`` (UTC), or after a ``timedelta`` from now."""
        ...

    def wait_for_external_event(
        self, name: str, timeout: timedelta | float | None = None
    ) -> Task[Any]:
        """A task that completes with the data of the next event raised under ``name``.

        Event names are case-insensitive. Events raised before anyone waits are kept, in order.
        With ``timeout`` (a ``timedelta`` or seconds), the task fails with
        ``EventTimeoutError`` (a ``TimeoutError``) if no event arrives in time; the wait is
        then withdrawn, so a later event is kept for the next wait.
        """
        ...

    def call_entity(
        self, entity_id: Any, operation_name: str, operation_input: Any = None
    ) -> Task[Any]:
        """Run ``operation_name`` on the entity ``entity_id`` (an ``EntityId``) with
        ``operation_input``; the task completes with what the operation set as its result.

        If the operation raises, the entity keeps its state and awaiting the task raises
        ``EntityOperationFailedError``. Operations on one entity run one at a time, in the
        order they arrive.
        """
        ...

    def signal_entity(
        self, entity_id: Any, operation_name: str, operation_input: Any = None
    ) -> Task[None]:
        """Send ``operation_name`` to the entity ``entity_id`` without waiting for it (one-way).

        Returns a task that has already completed (yielding it is allowed, never needed).
        """
        ...

    def lock(self, entities: Sequence[Any]) -> Task[Any]:
        """Lock ``entities`` (``EntityId``s) for a critical section; the task completes with a
        ``CriticalSection`` once all are locked. Until it is released (``release()``, the end
        of its ``with`` block, or the end of the orchestration), the entities run only this
        orchestration's operations. Locks are taken in one global order of entity ids, so two
        orchestrations locking overlapping sets cannot deadlock. Asking for a lock while
        holding one raises ``LockingRulesViolationError``.
        """
        ...

    @property
    def is_locked(self) -> bool:
        """True while the orchestration holds a critical section."""
        ...

    def task_all(self, tasks: Sequence[Task[Any]]) -> WhenAllTask:
        """Completes with the list of all results, in order; fails when one task fails."""
        ...

    def task_any(self, tasks: Sequence[Task[Any]]) -> WhenAnyTask:
        """Completes with the first task to succeed (the task object; read ``.result``)."""
        ...


def function_name(function: str | Callable[..., Any]) -> str:
    """The registered name of a function, given the name or the function itself."""
    if isinstance(function, str):
        return function
    registered = getattr(function, "__durable_name__", None)
    return registered if isinstance(registered, str) else function.__name__
