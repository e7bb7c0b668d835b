"""InstanceCache: bounded by count (least recently used first) and by idleness."""

from __future__ import annotations

from services.orchestrator.cache import InstanceCache, InstanceState


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(instance_id: str) -> InstanceState:
    return InstanceState(
        instance_id=instance_id,
        name="orchestrator",
        execution_id="e1",
        correlation_id="c1",
        last_seq=1,
        executor=None,
    )


def cache_holding(*instance_ids: str, **options) -> InstanceCache:
    cache = InstanceCache(**options)
    for instance_id in instance_ids:
        cache.put(state(instance_id))
    return cache


def test_least_recently_put_instance_is_evicted_beyond_the_count_bound():
    cache = cache_holding("a", "b", "c", max_instances=2)

    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("b") is not None
    assert cache.get("c") is not None


def test_get_makes_an_instance_the_most_recently_used():
    cache = cache_holding("a", "b", max_instances=2)

    assert cache.get("a").instance_id == "a"
    cache.put(state("c"))

    assert cache.get("b") is None
    assert cache.get("a") is not None


def test_put_of_a_cached_instance_replaces_it_without_growing():
    cache = cache_holding("a", "b", max_instances=2)
    newer = state("a")

    cache.put(newer)

    assert len(cache) == 2
    assert cache.get("a") is newer


def test_a_cache_bounded_to_zero_keeps_nothing():
    cache = cache_holding("a", max_instances=0)

    assert len(cache) == 0


def test_evict_removes_one_instance():
    cache = cache_holding("a", "b")

    cache.evict("a")
    cache.evict("never-cached")

    assert cache.get("a") is None
    assert len(cache) == 1


def test_evict_idle_drops_only_instances_idle_longer_than_the_limit():
    clock = FakeClock()
    cache = InstanceCache(idle_seconds=300, clock=clock)
    cache.put(state("waiting-for-a-manager"))
    clock.now = 200
    cache.put(state("busy"))

    clock.now = 301
    evicted = cache.evict_idle()

    assert evicted == 1
    assert cache.get("waiting-for-a-manager") is None
    assert cache.get("busy") is not None


def test_put_refreshes_an_instances_idle_time():
    clock = FakeClock()
    cache = InstanceCache(idle_seconds=300, clock=clock)
    cache.put(state("a"))
    clock.now = 250
    cache.put(state("a"))

    clock.now = 400

    assert cache.evict_idle() == 0
    assert cache.get("a") is not None


def test_an_instance_used_through_get_is_not_evicted_as_idle():
    clock = FakeClock()
    cache = InstanceCache(idle_seconds=300, clock=clock)
    cache.put(state("a"))
    clock.now = 100
    cache.put(state("b"))
    clock.now = 200
    cache.get("a")

    clock.now = 420
    cache.evict_idle()

    assert cache.get("a") is not None
