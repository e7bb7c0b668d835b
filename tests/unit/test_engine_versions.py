"""Orchestration versions: what an instance's version is, how versions order, which
instances a process runs under each strategy, and what sub-orchestrations inherit."""

from __future__ import annotations

import pytest

from contracts import (
    ExecutionStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
)
from durable import compare_versions
from engine import replay
from engine.versions import Verdict, VersionFailure, VersionMatch, VersionPolicy
from tests.apps.functions import versioned_approval, versioned_parent
from tests.helpers.driving import drive
from tests.helpers.history import T0, HistoryBuilder


def started(version: str | None, name: str = "o") -> list:
    return [
        *HistoryBuilder().episode().events,
        ExecutionStarted(timestamp=T0, name=name, execution_id="e1", version=version),
    ]


@pytest.mark.parametrize("version", ["1.0", "2026-01-rc1", None])
def test_context_version_is_the_version_the_execution_started_with(version):
    def orchestrator(ctx):
        return ctx.version

    decision = replay(orchestrator, "i1", [], started(version))

    assert decision.output == version


def test_code_branching_on_the_version_keeps_an_old_instance_on_its_old_path():
    old = drive(
        versioned_approval,
        "a",
        None,
        lambda t: t.input,
        version="1.0",
        events=[("Approval", "yes")],
    )
    new = drive(
        versioned_approval,
        "a",
        None,
        lambda t: t.input,
        version="2.0",
        events=[("Approval", "yes")],
    )

    assert old[-1].result == {"version": "1.0", "steps": ["decided: yes"]}
    assert new[-1].result == {"version": "2.0", "steps": ["compliance checked", "decided: yes"]}


def test_a_sub_orchestration_runs_under_the_parents_version_unless_the_call_names_one():
    history = HistoryBuilder().episode()
    history.add(
        ExecutionStarted(
            timestamp=T0, name="versioned_parent", execution_id="e1", input="3.0", version="1.4"
        )
    )
    first = replay(versioned_parent, "i1", [], history.events)
    [inherited] = first.new_events
    history.add(inherited).episode()
    history.add(SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=0, result="1.4"))
    past, new = history.split()

    second = replay(versioned_parent, "i1", past, new)

    assert isinstance(inherited, SubOrchestrationInstanceCreated)
    assert inherited.version == "1.4"
    [chosen] = second.new_events
    assert isinstance(chosen, SubOrchestrationInstanceCreated)
    assert chosen.version == "3.0"


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [
        ("1.0", "1.0", 0),
        ("2", "2.0.0", 0),
        ("1.9", "1.10", -1),
        ("10.0", "9.9", 1),
        (None, "0.1", -1),
        ("", None, 0),
        ("1.0", "1.0-beta", -1),  # numbers before any other text
        ("beta", "alpha", 1),
    ],
)
def test_versions_order_numerically_none_first(left, right, order):
    assert compare_versions(left, right) == order
    assert compare_versions(right, left) == -order


STRICT = VersionPolicy("2.0", VersionMatch.STRICT, VersionFailure.REJECT)
OLDER = VersionPolicy("2.0", VersionMatch.CURRENT_OR_OLDER, VersionFailure.FAIL)


@pytest.mark.parametrize(
    ("policy", "instance_version", "verdict"),
    [
        (VersionPolicy(), "9.9", Verdict.RUN),
        (VersionPolicy("2.0"), "1.0", Verdict.RUN),  # match "none": every version runs
        (VersionPolicy(None, VersionMatch.STRICT), "1.0", Verdict.RUN),  # nothing to compare
        (STRICT, "2.0", Verdict.RUN),
        (STRICT, "2", Verdict.RUN),
        (STRICT, "1.0", Verdict.WAIT),
        (STRICT, "3.0", Verdict.WAIT),
        (STRICT, None, Verdict.WAIT),
        (OLDER, "1.0", Verdict.RUN),
        (OLDER, None, Verdict.RUN),  # started before versions were recorded: older
        (OLDER, "2.0", Verdict.RUN),
        (OLDER, "2.1", Verdict.FAIL),
    ],
)
def test_the_policy_runs_leaves_waiting_or_fails_an_instance_by_its_version(
    policy, instance_version, verdict
):
    assert policy.verdict(instance_version) is verdict


def test_a_mismatch_names_both_versions_and_the_strategy():
    assert STRICT.mismatch("1.0") == (
        "the instance started under '1.0', and this process (DF_APP_VERSION='2.0', "
        "DF_VERSION_MATCH=strict) runs exactly version '2.0'"
    )
