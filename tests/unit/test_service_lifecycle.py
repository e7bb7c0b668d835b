"""What every service process sets up when it runs (services.common.lifecycle)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.common.lifecycle import GC_THRESHOLDS, run_service


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_a_service_collects_cyclic_garbage_less_often_than_python_does() -> None:
    seen: list[tuple[int, int, int]] = []

    async def main() -> None:
        seen.append(gc.get_threshold())

    run_service("test", main())

    assert seen == [GC_THRESHOLDS]
    assert GC_THRESHOLDS[0] > 700  # Python's default first threshold
    assert gc.isenabled()
