"""Orchestrator code suspended at the task it waits on: a generator or a coroutine, stepped
by hand (``send`` and ``throw``), never by an event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from durable.errors import OrchestratorYieldError
from durable.tasks import Task

Code = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]


class SuspendedCode:
    """Runs ``code`` from one task it waits on to the next.

    Completed tasks are fed back at once (their result sent, their exception thrown); the
    code stops at the first task that is not completed. When the code returns or raises, the
    matching callback gets the value or the exception, and the code is finished.
    """

    def __init__(
        self,
        code: Code,
        on_return: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._code: Code | None = code
        self._awaiting: Task[Any] | None = None
        self._on_return = on_return
        self._on_error = on_error

    def start(self) -> None:
        self._step(None, None)

    def resume(self) -> None:
        """Go on while the task the code waits on has completed."""
        while self._code is not None and self._awaiting is not None and self._awaiting.is_completed:
            task, self._awaiting = self._awaiting, None
            if task.is_faulted:
                assert task.exception is not None
                self._step(None, task.exception)
            else:
                self._step(task.result, None)

    def close(self) -> None:
        """End the code where it stands (the execution ended)."""
        if self._code is not None:
            code, self._code = self._code, None
            # Code that swallows GeneratorExit makes close() raise; the execution has ended
            # either way, so there is nothing more to report.
            with contextlib.suppress(Exception):
                code.close()
        self._awaiting = None

    def _step(self, value: Any, error: BaseException | None) -> None:
        while self._code is not None:
            try:
                yielded = self._code.send(value) if error is None else self._code.throw(error)
            except StopIteration as stop:
                self._on_return(stop.value)
                return
            except Exception as exc:
                self._on_error(exc)
                return
            if not isinstance(yielded, Task):
                value, error = (
                    None,
                    OrchestratorYieldError(
                        f"orchestrator yielded {type(yielded).__name__!s} ({yielded!r:.60}); "
                        "orchestrators may only yield or await tasks from the context "
                        "(call_activity, create_timer, task_all, ...), never asyncio objects"
                    ),
                )
                continue
            if not yielded.is_completed:
                self._awaiting = yielded
                return
            if yielded.is_faulted:
                value, error = None, yielded.exception
            else:
                value, error = yielded.result, None
