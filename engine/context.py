"""The engine's orchestration context: ``durable.context.OrchestrationContext`` implemented.

Orchestrator code sees the protocol (its docstrings say what each method does); this class
turns each call into the executor's actions. Time comes from the history, ids from the
instance id and a counter: nothing here reads a clock or draws a random number.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue, TypeAdapter

from contracts import ExecutionStarted
from contracts.http import HTTP_ACTIVITY, HttpRequest
from contracts.limits import check_json_value, check_short_string
from contracts.typed import adapter_for, checked
from contracts.values import to_json_value
from durable.context import OrchestrationContext, function_name
from durable.http import DurableHttpResponse
from durable.retry import RetryOptions
from durable.tasks import (
    CompletableTask,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)
from engine.http import HttpCallTask, describe, http_request
from engine.retry import RetryTask
from engine.typing_boundaries import result_converter

if TYPE_CHECKING:
    from engine.executor import OrchestrationExecutor

_UUID_NAMESPACE = uuid.UUID("0c6e8d3e-0f5b-4a53-9b67-7c5e0a4f2b11")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayContext:
    """The context the executor hands to orchestrator code while it replays a history."""

    def __init__(self, executor: OrchestrationExecutor, instance_id: str) -> None:
        self._executor = executor
        self._instance_id = instance_id
        self._parent_instance_id: str | None = None
        self._version: str | None = None
        self._input: JsonValue = None
        self._current_utc_datetime = _EPOCH
        self._is_replaying = False
        self._custom_status: JsonValue = None
        self._uuid_counter = 0

    # --- identity and time -------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        return self._parent_instance_id

    @property
    def version(self) -> str | None:
        return self._version

    def _started(self, event: ExecutionStarted) -> None:
        self._input = event.input
        self._version = event.version
        if event.parent is not None:
            self._parent_instance_id = event.parent.instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        return self._current_utc_datetime

    @property
    def is_replaying(self) -> bool:
        return self._is_replaying

    def get_input(self, model: Any = None) -> Any:
        if model is None:
            return self._input
        adapter = adapter_for(model) or TypeAdapter(model)
        return checked(adapter, self._input, "the orchestration", "input")

    def new_uuid(self) -> str:
        name = f"{self._instance_id}_{self._current_utc_datetime.isoformat()}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def new_guid(self) -> str:
        return self.new_uuid()

    # --- custom status -----------------------------------------------------------------------

    def set_custom_status(self, status: Any) -> None:
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
        request = http_request(method, uri, content, headers, token_source, is_raw_str)
        check_json_value(request.model_dump(mode="json"), f"the request of {describe(request)}")

        def send(request: HttpRequest) -> Task[Any]:
            task = self._executor.schedule_task(HTTP_ACTIVITY, request.model_dump(mode="json"))
            if isinstance(task, CompletableTask):
                task.description = describe(request)
            return task

        return HttpCallTask(
            request,
            polling=asynchronous_pattern_enabled,
            timeout=_as_timedelta(timeout),
            send=send,
            create_timer=self._executor.create_timer,
            current_time=lambda: self._current_utc_datetime,
        )

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> Task[Any]:
        orchestrator = function_name(name)
        data = to_json_value(input_, f"the input of sub-orchestration {orchestrator!r}")
        if version is not None:
            check_short_string(version, f"the version of sub-orchestration {orchestrator!r}")
        task = self._executor.create_sub_orchestration(
            orchestrator, data, instance_id, version or self._version
        )
        return _converting(task, name, f"sub-orchestration {orchestrator!r}")

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
    ) -> Task[Any]:
        orchestrator = function_name(name)
        data = to_json_value(input_, f"the input of sub-orchestration {orchestrator!r}")
        return RetryTask(
            retry_options,
            lambda attempt: self._executor.create_sub_orchestration(
                orchestrator, data, instance_id, self._version
            ),
            self._executor.create_timer,
            lambda: self._current_utc_datetime,
        )

    def continue_as_new(self, input_: Any, preserve_unprocessed_events: bool = False) -> None:
        self._executor.continue_as_new(
            to_json_value(input_, "the continue-as-new input"), preserve_unprocessed_events
        )

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        if isinstance(fire_at, timedelta):
            fire_at = self._current_utc_datetime + fire_at
        elif fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=UTC)
        return self._executor.create_timer(fire_at)

    def wait_for_external_event(
        self, name: str, timeout: timedelta | float | None = None
    ) -> Task[Any]:
        return self._executor.wait_for_event(name, _as_timedelta(timeout))

    def call_entity(
        self, entity_id: Any, operation_name: str, operation_input: Any = None
    ) -> Task[Any]:
        return self._executor.entities.call(entity_id, operation_name, operation_input)

    def signal_entity(
        self, entity_id: Any, operation_name: str, operation_input: Any = None
    ) -> Task[None]:
        return self._executor.entities.signal(entity_id, operation_name, operation_input)

    def lock(self, entities: Sequence[Any]) -> Task[Any]:
        return self._executor.entities.lock(entities)

    @property
    def is_locked(self) -> bool:
        return self._executor.entities.is_locked

    def task_all(self, tasks: Sequence[Task[Any]]) -> WhenAllTask:
        return WhenAllTask(tasks)

    def task_any(self, tasks: Sequence[Task[Any]]) -> WhenAnyTask:
        return WhenAnyTask(tasks)


def _converting(task: Task[Any], function: Any, description: str) -> Task[Any]:
    if isinstance(task, CompletableTask):
        task.converter = result_converter(function, description)
    return task


def _as_timedelta(value: timedelta | float | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


# mypy checks here that the engine's context is what the SDK promises orchestrator code.
_IMPLEMENTS_THE_SDK_PROTOCOL: type[OrchestrationContext] = ReplayContext
