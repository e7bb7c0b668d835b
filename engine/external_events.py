"""External events: waiters and the buffer of events raised before anyone waited."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from pydantic import JsonValue

from durable.tasks import ExternalEventTask


class ExternalEvents:
    """Matches raised events to waits by name (case-insensitive), first come first served.

    An event nobody waits for is kept, in order, for the next wait under its name.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, deque[ExternalEventTask[Any]]] = {}
        self._buffer: dict[str, deque[tuple[int, str, JsonValue]]] = {}
        self._order = itertools.count()

    def wait(self, name: str) -> ExternalEventTask[Any]:
        task: ExternalEventTask[Any] = ExternalEventTask(name)
        buffered = self._buffer.get(name.casefold())
        if buffered:
            task._complete(buffered.popleft()[2])
        else:
            self._waiters.setdefault(name.casefold(), deque()).append(task)
        return task

    def withdraw(self, task: ExternalEventTask[Any]) -> None:
        """Stop ``task`` from taking an event (its wait timed out)."""
        waiters = self._waiters.get(task.name.casefold())
        if waiters and task in waiters:
            waiters.remove(task)

    def deliver(self, name: str, data: JsonValue) -> None:
        waiters = self._waiters.get(name.casefold())
        if waiters:
            waiters.popleft()._complete(data)
        else:
            self.keep(name, data)

    def keep(self, name: str, data: JsonValue) -> None:
        """Buffer an event without offering it to a waiter."""
        self._buffer.setdefault(name.casefold(), deque()).append((next(self._order), name, data))

    def unprocessed(self) -> tuple[tuple[str, JsonValue], ...]:
        """Every buffered event, ``(name, data)``, in the order they arrived."""
        entries = sorted(entry for queue in self._buffer.values() for entry in queue)
        return tuple((name, data) for _, name, data in entries)
