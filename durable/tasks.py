"""Durable tasks: what orchestrator code yields or awaits.

A task is a placeholder for the outcome of an action (an activity, a timer, an external event)
or of other tasks (``task_all``, ``task_any``). The engine completes tasks as it applies
history events; completion propagates to composite parents. Attribute names follow
azure-functions-durable: ``is_completed``, ``is_faulted``, ``result``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Task(Generic[T]):
    """The outcome of durable work, available once ``is_completed``.

    ``yield task`` (generator orchestrators) and ``await task`` (``async def`` orchestrators)
    both return the result, or raise the task's exception.
    """

    def __init__(self) -> None:
        self._completed = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._parents: list[Task[Any]] = []

    @property
    def is_completed(self) -> bool:
        """True when the task has an outcome (success or failure)."""
        return self._completed

    @property
    def is_faulted(self) -> bool:
        """True when the task completed with an exception."""
        return self._exception is not None

    @property
    def result(self) -> T:
        """The result once completed successfully, else ``None``."""
        return self._result  # type: ignore[no-any-return]

    @property
    def exception(self) -> BaseException | None:
        """The failure, once completed with one."""
        return self._exception

    def get_result(self) -> T:
        """The result, or raise the failure. Only valid once completed."""
        if not self._completed:
            raise RuntimeError("the task has not completed")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    def _complete(self, result: Any) -> None:
        if self._completed:
            return
        self._completed = True
        self._result = result
        for parent in self._parents:
            parent._on_child_completed(self)

    def _fail(self, exception: BaseException) -> None:
        if self._completed:
            return
        self._completed = True
        self._exception = exception
        for parent in self._parents:
            parent._on_child_completed(self)

    def _on_child_completed(self, child: Task[Any]) -> None:
        """Called by a child task this task waits on (composite tasks only)."""
        raise NotImplementedError

    def __await__(self) -> Generator[Task[T], Any, T]:
        # The driver sends the result back in (or throws the failure), exactly as it does
        # for ``yield task`` in a generator orchestrator.
        result: T = yield self
        return result


class CompletableTask(Task[T]):
    """A task completed by one history event, identified by its action's ``event_id``."""

    def __init__(self, task_id: int, description: str) -> None:
        super().__init__()
        self.id = task_id
        self.description = description
        # Set when a retry policy answered this task's failure with another attempt.
        self.retried = False
        # Turns the recorded JSON result into what the code expects (a typed function's model).
        self.converter: Callable[[Any], Any] | None = None


class ActivityCallTask(CompletableTask[T]):
    """An activity call; with ``timeout``, it fails if the activity has not finished that long
    after a worker started it."""

    def __init__(self, task_id: int, description: str, timeout: timedelta | None = None) -> None:
        super().__init__(task_id, description)
        self.timeout = timeout
        self.timeout_timer: TimerTask | None = None


class SubOrchestrationTask(CompletableTask[T]):
    """A sub-orchestration; completes with the child's output or fails with its failure."""

    def __init__(self, task_id: int, description: str, instance_id: str) -> None:
        super().__init__(task_id, description)
        self.instance_id = instance_id


class TimerTask(CompletableTask[None]):
    """A durable timer. ``cancel()`` stops waiting for it; a later fire is ignored."""

    def __init__(
        self,
        task_id: int,
        description: str,
        on_cancel: Callable[[TimerTask], None] | None = None,
    ) -> None:
        super().__init__(task_id, description)
        self.is_cancelled = False
        self._on_cancel = on_cancel

    def cancel(self) -> None:
        """Cancel the timer (no effect once it has fired or was cancelled)."""
        if self._completed or self.is_cancelled:
            return
        self.is_cancelled = True
        if self._on_cancel is not None:
            self._on_cancel(self)


class ExternalEventTask(Task[T]):
    """Waits for an event raised to the instance under ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class EventWithTimeoutTask(Task[T]):
    """``wait_for_external_event(name, timeout)``: the event's data, or a timeout error.

    Whichever comes first wins: the event cancels the timer; the timer withdraws the wait, so
    a later event is kept for the next wait instead of being swallowed.
    """

    def __init__(
        self,
        event: ExternalEventTask[T],
        timer: TimerTask,
        on_timeout: Callable[[], BaseException],
    ) -> None:
        super().__init__()
        self.event = event
        self.timer = timer
        self._on_timeout = on_timeout
        event._parents.append(self)
        timer._parents.append(self)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if self._completed:
            return
        if child is self.event:
            self.timer.cancel()
            self._complete(self.event.result)
        else:
            self._fail(self._on_timeout())


class CompositeTask(Task[T]):
    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__()
        self.children = list(children)
        for child in self.children:
            if not isinstance(child, Task):
                raise TypeError(f"expected durable tasks, got {type(child).__name__}")
            child._parents.append(self)


class WhenAllTask(CompositeTask[list[Any]]):
    """Completes with every child's result, in order; fails as soon as one child fails."""

    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__(children)
        self._remaining = sum(1 for child in self.children if not child.is_completed)
        failed = next((c for c in self.children if c.is_faulted), None)
        if failed is not None:
            self._fail(_exception_of(failed))
        elif self._remaining == 0:
            self._complete([child.result for child in self.children])

    def _on_child_completed(self, child: Task[Any]) -> None:
        self._remaining -= 1
        if child.is_faulted:
            self._fail(_exception_of(child))
        elif self._remaining == 0:
            self._complete([c.result for c in self.children])


class WhenAnyTask(CompositeTask[Task[Any]]):
    """Completes with the first child to complete, successfully or not: the task itself, as
    azure-functions-durable (1.7) and the Durable Task Framework return it. It never raises;
    check the winner's ``is_faulted`` and ``result``."""

    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__(children)
        if not self.children:
            raise ValueError("task_any needs at least one task")
        for child in self.children:
            if child.is_completed:
                self._on_child_completed(child)

    def _on_child_completed(self, child: Task[Any]) -> None:
        if not self._completed:
            self._complete(child)


def _exception_of(task: Task[Any]) -> BaseException:
    assert task.exception is not None
    return task.exception


class EntityCallTask(CompletableTask[T]):
    """``call_entity``: completes with the operation's result, or fails with
    ``EntityOperationFailedError``."""

    def __init__(self, task_id: int, description: str, target: str) -> None:
        super().__init__(task_id, description)
        self.target = target


class LockTask(CompletableTask[T]):
    """``lock``: completes with the ``CriticalSection`` once every entity is locked."""
