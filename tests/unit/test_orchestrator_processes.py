"""How the orchestrator service shares its partitions out among its processes."""

from __future__ import annotations

import pytest

from services.orchestrator.processes import owned_partitions
from services.orchestrator.settings import OrchestratorSettings


@pytest.mark.parametrize(("partitions", "processes"), [(16, 2), (16, 3), (4, 4), (5, 2)])
def test_every_partition_belongs_to_exactly_one_process(partitions: int, processes: int):
    shares = [owned_partitions(partitions, processes, index) for index in range(processes)]

    assert sorted(p for share in shares for p in share) == list(range(partitions))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_lone_process_owns_every_partition():
    assert owned_partitions(4, 1, None) == [0, 1, 2, 3]
    assert owned_partitions(4, 3, None) == [0, 1, 2, 3]  # not started by a supervisor


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
