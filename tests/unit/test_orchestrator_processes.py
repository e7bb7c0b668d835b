"""How many processes the orchestrator service runs, and the share of the partitions each
member of a deployment aims to hold (ADR 27)."""

from __future__ import annotations

import pytest

from services.orchestrator.leases import fair_share
from services.orchestrator.settings import OrchestratorSettings


@pytest.mark.parametrize(
    ("partitions", "members"), [(16, 1), (16, 2), (16, 3), (4, 4), (5, 2), (3, 5)]
)
def test_the_shares_cover_every_partition_and_differ_by_one_at_most(partitions: int, members: int):
    ids = [f"member-{index}" for index in range(members)]
    shares = [fair_share(ids, member, partitions) for member in ids]

    assert sum(shares) == partitions
    assert max(shares) - min(shares) <= 1


def test_a_member_not_yet_counted_aims_at_nothing():
    assert fair_share(["a", "b"], "c", 16) == 0


def test_the_larger_shares_go_to_the_first_members_in_id_order():
    assert [fair_share(["a", "b", "c"], m, 16) for m in "abc"] == [6, 5, 5]


def test_one_process_per_usable_core_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DF_ORCHESTRATOR_PROCESSES", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert OrchestratorSettings(partitions=16).processes == 2


def test_zero_means_one_per_usable_core_within_bounds(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert OrchestratorSettings(orchestrator_processes=0, partitions=16).processes == 4
    assert OrchestratorSettings(orchestrator_processes=0, partitions=2).processes == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3}, raising=False)
    assert OrchestratorSettings(orchestrator_processes=0, partitions=16).processes == 1


def test_without_affinity_the_cpu_count_is_used(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert OrchestratorSettings(orchestrator_processes=0, partitions=16).processes == 3
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert OrchestratorSettings(orchestrator_processes=0, partitions=16).processes == 1


def test_an_explicit_count_is_kept_up_to_the_partitions():
    assert OrchestratorSettings(orchestrator_processes=8, partitions=16).processes == 8
    assert OrchestratorSettings(orchestrator_processes=8, partitions=3).processes == 3


def test_the_pool_is_shared_out_among_the_processes():
    settings = OrchestratorSettings(orchestrator_processes=2, pool_size=20)
    assert settings.pool_size_per_process == 10
    assert OrchestratorSettings(orchestrator_processes=4, pool_size=4).pool_size_per_process == 2
