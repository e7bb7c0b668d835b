"""Stored events give back their JSON as written, so replays see dict keys in the same order."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from contracts import ExecutionStarted
from durable.store.events import load_history
from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import unique
from tests.integration import messages
from tests.integration.stored import handle


async def test_an_input_dict_comes_back_with_its_keys_in_the_order_they_were_sent(
    new_handler: Callable[..., OrchestrationHandler], pool: asyncpg.Pool
) -> None:
    instance_id = unique("keys-")
    # jsonb would give these back as {"b": ..., "aa": ..., "zzz": ...} (shortest key first).
    data = {"zzz": 1, "aa": 2, "b": 3}
    await handle(new_handler(), pool, [messages.start(instance_id, "hello_cities", data)])

    history = await load_history(pool, instance_id)

    started = next(s.event for s in history if isinstance(s.event, ExecutionStarted))
    assert isinstance(started.input, dict)
    assert list(started.input) == ["zzz", "aa", "b"]
