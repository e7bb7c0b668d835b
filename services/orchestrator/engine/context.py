"""The orchestration context: the API orchestrator code calls.

Method names and meaning follow azure-functions-durable's ``DurableOrchestrationContext``, so
orchestrators written for it run unchanged. Everything here is deterministic: time comes from
the history (``current_utc_datetime``), ids from the instance id and a counter (``new_uuid``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue, TypeAdapter

from contracts.typed import adapter_for, checked
from contracts.values import to_json_value
from services.orchestrator.engine.retry import RetryOptions, RetryTask
from services.orchestrator.engine.tasks import (
    CompletableTask,
    ExternalEventTask,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)
from services.orchestrator.engine.typing_boundaries import result_converter

if TYPE_CHECKING:
    from services.orchestrator.engine.executor import OrchestrationExecutor

_UUID_NAMESPACE = uuid.UUID("0c6e8d3e-0f5b-4a53-9b67-7c5e0a4f2b11")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OrchestrationContext:
    """What an orchestrator function receives. Only call it from orchestrator code."""

    def __init__(self, executor: OrchestrationExecutor, instance_id: str) -> None:
        self._executor = executor
        self._instance_id = instance_id
        self._parent_instance_id: str | None = None
        self._input: JsonValue = None
        self._current_utc_datetime = _EPOCH
        self._is_replaying = False
        self._custom_status: JsonValue = None
        self._uuid_counter = 0

    # --- identity and time -------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        """The id of this orchestration instance."""
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        """The parent's instance id when this runs as a sub-orchestration, else ``None``."""
        return self._parent_instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        """The current time, replay-safe: when the running episode started, from the history."""
        return self._current_utc_datetime

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs a part it ran before (use it to silence duplicate logs)."""
        return self._is_replaying

    def get_input(self, model: Any = None) -> Any:
        """The orchestration's input, as decoded JSON, or validated into ``model`` (a pydantic
        model, or a type involving one) when given; a mismatch raises ``BoundaryError``."""
        if model is None:
            return self._input
        adapter = adapter_for(model) or TypeAdapter(model)
        return checked(adapter, self._input, "the orchestration", "input")

    def new_uuid(self) -> str:
        """A UUID that is the same on every replay (name-based, from instance id, time, counter)."""
        name = f"{self._instance_id}_{self._current_utc_datetime.isoformat()}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    # --- custom status -----------------------------------------------------------------------

    def set_custom_status(self, status: Any) -> None:
        """Publish a JSON-serializable status value, visible to clients while the instance runs."""
        self._custom_status = to_json_value(status, "the custom status")

    @property
    def custom_status(self) -> JsonValue:
        return self._custom_status

    # --- actions -----------------------------------------------------------------------------

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
        activity_name = function_name(name)
        task = self._executor.schedule_task(
            activity_name,
            to_json_value(input_, f"the input of activity {activity_name!r}"),
            timeout=_as_timedelta(timeout),
        )
        return _converting(task, name, f"activity {activity_name!r}")

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
        activity_name = function_name(name)
        data = to_json_value(input_, f"the input of activity {activity_name!r}")
        limit = _as_timedelta(timeout)
        description = f"activity {activity_name!r}"

        def attempt(number: int) -> Task[Any]:
            task = self._executor.schedule_task(activity_name, data, attempt=number, timeout=limit)
            return _converting(task, name, description)

        return RetryTask(
            retry_options, attempt, self._executor.create_timer, lambda: self._current_utc_datetime
        )

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
    ) -> Task[Any]:
        """Run the orchestrator ``name`` as a child instance; completes with its output.

        ``instance_id`` defaults (when None or empty) to one derived from this instance's. A
        child that fails (or is terminated) raises ``TaskFailedError`` here, with the child's
        failure as details.
        """
        orchestrator = function_name(name)
        data = to_json_value(input_, f"the input of sub-orchestration {orchestrator!r}")
        task = self._executor.create_sub_orchestration(orchestrator, data, instance_id)
        return _converting(task, name, f"sub-orchestration {orchestrator!r}")

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
    ) -> Task[Any]:
        """``call_sub_orchestrator``, attempted again after failures as ``retry_options`` says."""
        orchestrator = function_name(name)
        data = to_json_value(input_, f"the input of sub-orchestration {orchestrator!r}")
        return RetryTask(
            retry_options,
            lambda attempt: self._executor.create_sub_orchestration(
                orchestrator, data, instance_id
            ),
            self._executor.create_timer,
            lambda: self._current_utc_datetime,
        )

    def continue_as_new(self, input_: Any, preserve_unprocessed_events: bool = False) -> None:
        """When the orchestrator returns, start over as a new execution with ``input_``.

        The new execution starts with an empty history under the same instance id. Events
        raised to this execution that it did not consume are passed on to the new one when
        ``preserve_unprocessed_events`` is true, and dropped otherwise.
        """
        self._executor.continue_as_new(
            to_json_value(input_, "the continue-as-new input"), preserve_unprocessed_events
        )

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer that fires at ``fire_at`` (UTC), or after a ``timedelta`` from now."""
        if isinstance(fire_at, timedelta):
            fire_at = self._current_utc_datetime + fire_at
        elif fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=UTC)
        return self._executor.create_timer(fire_at)

    def wait_for_external_event(
        self, name: str, timeout: timedelta | float | None = None
    ) -> Task[Any]:
        """A task that completes with the data of the next event raised under ``name``.

        Event names are case-insensitive. Events raised before anyone waits are kept, in order.
        With ``timeout`` (a ``timedelta`` or seconds), the task fails with
        ``EventTimeoutError`` (a ``TimeoutError``) if no event arrives in time; the wait is
        then withdrawn, so a later event is kept for the next wait.
        """
        return self._executor.wait_for_event(name, _as_timedelta(timeout))

    def task_all(self, tasks: Sequence[Task[Any]]) -> WhenAllTask:
        """Completes with the list of all results, in order; fails when one task fails."""
        return WhenAllTask(tasks)

    def task_any(self, tasks: Sequence[Task[Any]]) -> WhenAnyTask:
        """Completes with the first task to succeed (the task object; read ``.result``)."""
        return WhenAnyTask(tasks)


def _converting(task: Task[Any], function: Any, description: str) -> Task[Any]:
    if isinstance(task, CompletableTask):
        task.converter = result_converter(function, description)
    return task


def _as_timedelta(value: timedelta | float | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


def function_name(function: str | Callable[..., Any]) -> str:
    """The registered name of a function, given the name or the function itself."""
    if isinstance(function, str):
        return function
    registered = getattr(function, "__durable_name__", None)
    return registered if isinstance(registered, str) else function.__name__


__all__ = [
    "CompletableTask",
    "ExternalEventTask",
    "OrchestrationContext",
    "Task",
    "TimerTask",
    "function_name",
]
