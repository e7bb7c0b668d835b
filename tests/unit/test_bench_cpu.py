"""The benchmark's CPU measure counts the machine's busy time, which includes this process's."""

from __future__ import annotations

import time

from bench.measure import busy_cpu_seconds, cpu_ms_per


def test_busy_time_includes_the_cpu_this_process_spent() -> None:
    busy_before, own_before = busy_cpu_seconds(), time.process_time()
    while time.process_time() - own_before < 0.3:
        pass  # spin: CPU time, not waiting
    busy, own = busy_cpu_seconds() - busy_before, time.process_time() - own_before
    # The kernel counts in ticks (10 ms here); the rest of the machine only adds to ``busy``.
    assert busy >= own - 0.05


def test_cpu_per_item_is_in_milliseconds() -> None:
    assert cpu_ms_per(1.5, 1000) == 1.5
