"""What an orchestrator service records about its functions: names, and the events only a
management key may raise over HTTP (read back by the client service)."""

from __future__ import annotations

import asyncpg

from durable.store.registered_functions import (
    protected_events,
    record_registered_functions,
    registered_orchestrators,
)
from tests.conftest import unique


async def test_protected_events_are_recorded_with_the_orchestrator_and_read_back_casefolded(
    pool: asyncpg.Pool,
) -> None:
    review, open_to_all = unique("review_"), unique("open_")

    await record_registered_functions(
        pool, "orchestrator", [review, open_to_all], {review: ["Verdict", "Veto"]}
    )

    assert {review, open_to_all} <= await registered_orchestrators(pool)
    assert await protected_events(pool, review) == {"verdict", "veto"}
    assert await protected_events(pool, open_to_all) == frozenset()
    assert await protected_events(pool, unique("never_registered_")) == frozenset()


async def test_a_new_version_of_an_orchestrator_replaces_its_protected_events(
    pool: asyncpg.Pool,
) -> None:
    review = unique("review_")
    await record_registered_functions(pool, "orchestrator", [review], {review: ["Verdict"]})

    await record_registered_functions(pool, "orchestrator", [review], {review: ["Appeal"]})
    assert await protected_events(pool, review) == {"appeal"}
    await record_registered_functions(pool, "orchestrator", [review])
    assert await protected_events(pool, review) == frozenset()
