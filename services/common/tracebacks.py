"""Tracebacks for log lines: plain text, never a local variable, and bounded.

Local variables are where secrets live (a request's headers, a connection's parameters, the
settings), and rendering them is slow: with Rich installed, structlog's console renderer
shows them by default, and one deep exception once wrote half a million lines (ADR 22). So
every traceback a service logs is Python's own format, without locals, and an exception
whose stack is deeper than ``OUTERMOST_FRAMES + INNERMOST_FRAMES`` (a ``RecursionError``)
shows only its outermost and innermost frames and says how many it left out.
"""

from __future__ import annotations

import traceback
from types import TracebackType

OUTERMOST_FRAMES = 15
"""Where the work came from: the service's loop, the consumer or the route."""
INNERMOST_FRAMES = 35
"""Where it failed: the library call and what led to it."""

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo) -> str:
    """The traceback of ``exc_info`` (its causes and contexts too), without local
    variables, each stack cut to its outermost and innermost frames."""
    error_type, error, error_traceback = exc_info
    rendered = traceback.TracebackException(
        error_type, error, error_traceback, capture_locals=False, lookup_lines=False
    )
    _bound_stacks(rendered)
    return "".join(rendered.format()).rstrip("\n")


class _ElidedStack(traceback.StackSummary):
    """A stack that renders its outermost frames, a line saying how many were left out,
    and its innermost frames."""

    omitted: int

    @classmethod
    def of(cls, stack: traceback.StackSummary) -> _ElidedStack:
        elided = cls([*stack[:OUTERMOST_FRAMES], *stack[-INNERMOST_FRAMES:]])
        elided.omitted = len(stack) - OUTERMOST_FRAMES - INNERMOST_FRAMES
        return elided

    def format(self) -> list[str]:
        outermost = traceback.StackSummary.from_list(self[:OUTERMOST_FRAMES])
        innermost = traceback.StackSummary.from_list(self[OUTERMOST_FRAMES:])
        return [
            *outermost.format(),
            f"  [... {self.omitted} frames left out ...]\n",
            *innermost.format(),
        ]


def _bound_stacks(root: traceback.TracebackException) -> None:
    pending, seen = [root], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if len(current.stack) > OUTERMOST_FRAMES + INNERMOST_FRAMES:
            current.stack = _ElidedStack.of(current.stack)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += current.exceptions or []
