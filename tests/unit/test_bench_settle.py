"""W7 waits for the machine to settle before its resumes, alike for every system: until the
whole machine is busy less than a fifth of its cores over a second, or a time-out."""

from __future__ import annotations

from collections.abc import Iterator

from bench.measure import wait_settled


def counter(steps: list[float]) -> Iterator[float]:
    total = 0.0
    yield total
    for step in steps:
        total += step
        yield total
        yield total


async def test_settled_once_a_window_is_quiet() -> None:
    # 2 cores, 0.01 s windows: busy 0.018 s (90 %), then 0.015 (75 %), then 0.001 (5 %).
    readings = counter([0.018, 0.015, 0.001])
    waited, settled = await wait_settled(lambda: next(readings), 2, window=0.01, timeout=5)
    assert settled
    assert waited < 5


async def test_gives_up_after_the_timeout_and_says_so() -> None:
    readings = counter([1.0] * 1000)  # always far busier than the window
    waited, settled = await wait_settled(lambda: next(readings), 2, window=0.01, timeout=0.03)
    assert not settled
    assert waited >= 0.03
