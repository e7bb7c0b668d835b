"""The ``row-matches-events`` rule: an ``instances`` row against its stored events. Pure.

The orchestrator writes the row in the transaction that appends the events, so in any
snapshot the two agree (``projections`` states how each column follows from the events; the
rule checks the columns that the events alone decide):

- ``execution_id``: the last stored execution's, or the one its ContinueAsNew names when the
  next execution has no event yet; ``execution_start_seq``: that execution's first seq (the
  ContinueAsNew's seq + 1 when it has none); ``last_seq``: the last stored seq (with no event
  at all, ``execution_start_seq - 1``);
- ``status``: Completed, Failed or Terminated by the current execution's end; Running or
  Suspended (by its last suspend/resume) while it has none; ContinuedAsNew between a
  continue-as-new and the next execution's first episode; Pending with no event at all;
- ``output``: a Completed execution's result, a Terminated one's reason, else null;
  ``failure``: a Failed one's failure, else null; ``completed_at`` set exactly when it ended;
- ``name``, ``input``, ``parent_instance_id``: the current execution's ExecutionStarted, once
  it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts import (
    ContinueAsNew,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionTerminated,
    OrchestrationStatus,
)
from services.operations.invariants import Execution, Violation

RULE = "row-matches-events"
S = OrchestrationStatus


def check_row(
    instance_id: str, row: Mapping[str, Any], executions: Sequence[Execution]
) -> list[Violation]:
    """The ways ``row`` disagrees with the ``executions`` its stored events form."""
    check = _RowCheck(instance_id, row)
    if not executions:
        check.no_events()
    elif executions[-1].execution_id == row["execution_id"]:
        previous = executions[-2] if len(executions) > 1 else None
        check.current(executions[-1], previous)
    elif executions[-1].successor == row["execution_id"]:
        check.between(executions[-1])
    else:
        last = executions[-1]
        check.flag(
            f"execution_id is {row['execution_id']}, but the last stored execution is "
            f"{last.execution_id} (from seq {last.first_seq})"
            + (f", which names {last.successor} next" if last.successor else ""),
            last.last_seq,
        )
        check.equal("last_seq", last.last_seq, last.last_seq)
    return check.violations


class _RowCheck:
    def __init__(self, instance_id: str, row: Mapping[str, Any]) -> None:
        self.instance_id = instance_id
        self.row = row
        self.violations: list[Violation] = []

    def flag(self, reason: str, seq: int | None = None) -> None:
        self.violations.append(
            Violation(self.instance_id, RULE, reason, str(self.row["execution_id"]), seq)
        )

    def equal(self, column: str, expected: Any, seq: int | None, why: str = "") -> None:
        value = self.row[column]
        same = same_json(value, expected) if column in _JSON else value == expected
        if not same:
            because = f" ({why})" if why else ""
            self.flag(f"{column} is {_show(value)}, the events say {_show(expected)}{because}", seq)

    def status(self, allowed: Sequence[OrchestrationStatus], why: str, seq: int | None) -> None:
        status = self.row["status"]
        if status not in allowed:
            expected = " or ".join(s.value for s in allowed)
            self.flag(f"status is {_show(status)}, the events say {expected} ({why})", seq)

    def no_events(self) -> None:
        start = self.row["execution_start_seq"]
        self.equal("last_seq", start - 1, None, "no event is stored")
        if start > 1:
            self.status([S.CONTINUED_AS_NEW], "no event stored, earlier executions dropped", None)
        else:
            self.status([S.PENDING], "no event is stored", None)
        self._not_ended(None)

    def between(self, previous: Execution) -> None:
        """The row has moved on to the execution ``previous`` continued as, which has no
        event yet."""
        ending = previous.ending
        seq = ending.seq if ending is not None else previous.last_seq
        self.equal("execution_start_seq", previous.last_seq + 1, seq, "next after ContinueAsNew")
        self.equal("last_seq", previous.last_seq, previous.last_seq)
        self.status([S.CONTINUED_AS_NEW], "continued as new, not started again yet", seq)
        self._not_ended(seq)

    def current(self, execution: Execution, previous: Execution | None) -> None:
        self.equal("execution_start_seq", execution.first_seq, execution.first_seq)
        self.equal("last_seq", execution.last_seq, execution.last_seq)
        started = execution.started
        if started is not None:
            seq = execution.started_seq
            self.equal("name", started.name, seq)
            self.equal("input", started.input, seq)
            parent = started.parent.instance_id if started.parent is not None else None
            self.equal("parent_instance_id", parent, seq)
        ending = execution.ending
        match ending.event if ending is not None else None:
            case ExecutionCompleted(result=result):
                assert ending is not None
                self.status([S.COMPLETED], f"ExecutionCompleted at seq {ending.seq}", ending.seq)
                self.equal("output", result, ending.seq)
                self.equal("failure", None, ending.seq)
                self._ended(ending.seq)
            case ExecutionFailed(failure=failure):
                assert ending is not None
                self.status([S.FAILED], f"ExecutionFailed at seq {ending.seq}", ending.seq)
                self.equal("failure", failure.model_dump(mode="json"), ending.seq)
                self.equal("output", None, ending.seq)
                self._ended(ending.seq)
            case ExecutionTerminated(reason=reason):
                assert ending is not None
                self.status([S.TERMINATED], f"ExecutionTerminated at seq {ending.seq}", ending.seq)
                self.equal("output", reason, ending.seq)
                self.equal("failure", None, ending.seq)
                self._ended(ending.seq)
            case ContinueAsNew(new_execution_id=new):
                assert ending is not None
                self.flag(
                    f"the row still points at this execution, which continued as {new} "
                    f"(ContinueAsNew at seq {ending.seq})",
                    ending.seq,
                )
            case _:
                self._running(execution, previous)

    def _running(self, execution: Execution, previous: Execution | None) -> None:
        allowed = [S.SUSPENDED if execution.suspended else S.RUNNING]
        why = "suspended by its last suspend/resume" if execution.suspended else "not ended"
        # Events carried over by a continue-as-new are written with it, before the next
        # execution starts; the row says ContinuedAsNew until that execution's next episode.
        continued = previous is not None and isinstance(
            previous.ending.event if previous.ending else None, ContinueAsNew
        )
        if execution.started is None and (
            continued or (previous is None and execution.first_seq > 1)
        ):
            allowed.append(S.CONTINUED_AS_NEW)
        self.status(allowed, why, execution.last_seq)
        self._not_ended(execution.last_seq)

    def _not_ended(self, seq: int | None) -> None:
        self.equal("output", None, seq, "not ended")
        self.equal("failure", None, seq, "not ended")
        if self.row["completed_at"] is not None:
            self.flag(f"completed_at is {self.row['completed_at']}, but it has not ended", seq)

    def _ended(self, seq: int) -> None:
        if self.row["completed_at"] is None:
            self.flag("completed_at is null, but the execution has ended", seq)


_JSON = frozenset({"input", "output", "failure"})


def same_json(left: Any, right: Any) -> bool:
    """Equal JSON values, numbers by value: ``jsonb`` gives back ``1e+100`` as an integer of
    101 digits, the events' ``json`` as written."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        if isinstance(left, float) or isinstance(right, float):
            try:
                return float(left) == float(right)
            except OverflowError:
                return False
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            same_json(a, b) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and left == right


def _show(value: Any, width: int = 60) -> str:
    text = str(value.value) if isinstance(value, OrchestrationStatus) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
