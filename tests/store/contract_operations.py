"""The event store's contract, part four: what the operations tools read and write, and the
values Postgres refuses."""

from __future__ import annotations

import json

import asyncpg

from contracts import OrchestrationStatus
from durable.store import feed, records
from durable.store.columns import refuses_json
from durable.store.events import load_history
from durable.store.queries import fetch_instance
from durable.store.rows import (
    existing_instance_ids,
    instance_rows_txn,
    repair_instance_txn,
    replay_targets_txn,
)
from durable.store.selection import InstanceSelection, selected_ids
from tests.conftest import unique
from tests.store.factories import running_instance


async def export(store: asyncpg.Pool, instance_ids: list[str]) -> list[str]:
    async with store.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        lines = await records.instance_lines_txn(connection, instance_ids)
        lines += [line async for line in records.event_lines_txn(connection, instance_ids, 2)]
        lines += await records.timer_lines_txn(connection, instance_ids)
    return lines


class OperationsContract:
    """Selections page through ids; rows are read whole and repaired; streams leave as JSON
    lines and come back identical; events are read in commit order."""

    async def test_a_selection_pages_through_ids_in_order(self, store: asyncpg.Pool) -> None:
        ids = sorted([(await running_instance(store))[0] for _ in range(5)])
        selection = InstanceSelection(instance_ids=tuple(ids), names=("hello_cities",))

        pages = [page async for page in selected_ids(store, selection, page_size=2)]
        sampled = [
            page
            async for page in selected_ids(
                store, InstanceSelection(instance_ids=tuple(ids), sample=3), page_size=2
            )
        ]

        assert pages == [ids[0:2], ids[2:4], ids[4:5]]
        assert sum(len(page) for page in sampled) == 3

    async def test_rows_are_read_whole_and_repaired(self, store: asyncpg.Pool) -> None:
        instance_id, last_seq = await running_instance(store)
        async with store.acquire() as connection, connection.transaction():
            [row] = await instance_rows_txn(connection, [instance_id], lock=True)
            assert row["status"] is OrchestrationStatus.RUNNING
            assert row["custom_status"] == {"step": last_seq}
            await repair_instance_txn(
                connection,
                instance_id,
                {"status": OrchestrationStatus.COMPLETED, "output": {"fixed": True}},
            )
            [target] = await replay_targets_txn(connection, [instance_id])

        status = await fetch_instance(store, instance_id)
        assert status is not None
        assert (status.runtime_status, status.output) == (
            OrchestrationStatus.COMPLETED,
            {"fixed": True},
        )
        assert (target.name, target.execution_start_seq) == ("hello_cities", 1)
        assert await existing_instance_ids(store, [instance_id, unique("gone-")]) == [instance_id]

    async def test_an_export_imports_into_an_empty_store_unchanged(
        self, store: asyncpg.Pool, empty_store: asyncpg.Pool
    ) -> None:
        instance_id, _ = await running_instance(store)
        lines = await export(store, [instance_id])
        by_kind: dict[str, list[str]] = {}
        for line in lines:
            by_kind.setdefault(json.loads(line)["kind"], []).append(line)

        async with empty_store.acquire() as connection, connection.transaction():
            assert await records.lock_for_import_txn(connection)
            for kind, kind_lines in by_kind.items():
                await records.import_lines_txn(connection, kind, kind_lines)
            await records.continue_global_positions_txn(connection)
        async with store.acquire() as connection, connection.transaction():
            assert not await records.lock_for_import_txn(connection)

        assert await export(empty_store, [instance_id]) == lines
        assert await load_history(empty_store, instance_id) == await load_history(
            store, instance_id
        )

    async def test_show_reads_a_stream_in_pages(self, store: asyncpg.Pool) -> None:
        instance_id, _ = await running_instance(store)
        first = await records.event_lines_after(store, instance_id, 0, 4)
        rest = await records.event_lines_after(store, instance_id, first[-1].seq, 4)

        assert [line.seq for line in first + rest] == [1, 2, 3, 4, 5, 6]
        assert json.loads(rest[-1].line)["seq"] == 6
        assert await records.instance_status(store, instance_id) == "Running"
        assert await records.instance_status(store, unique("gone-")) is None

    async def test_the_feed_reads_committed_events_in_commit_order(
        self, store: asyncpg.Pool
    ) -> None:
        horizon = await feed.snapshot_horizon(store)
        first, _ = await running_instance(store)
        second, _ = await running_instance(store)
        start = feed.StartFilter()
        below = await feed.snapshot_horizon(store)
        assert await feed.snapshot_end(store) >= below > horizon

        read: list[feed.StoredLine] = []
        after = feed.EventKey(horizon, 0)
        while page := await feed.events_after(store, after, below, start, limit=5):
            read += page
            after = page[-1].key
        ours = [line for line in read if line.instance_id in (first, second)]

        assert [line.key for line in read] == sorted(line.key for line in read)
        assert [(line.instance_id, line.seq) for line in ours] == [
            *((first, seq) for seq in range(1, 7)),
            *((second, seq) for seq in range(1, 7)),
        ]
        keys = await feed.event_keys(store, [(first, 2), (second, 9)], start)
        assert list(keys) == [(first, 2)]
        chain = await feed.events_up_to(store, {second: 3}, feed.EventKey(horizon, 0), start)
        assert [line.seq for line in chain] == [1, 2, 3]
        assert await feed.count_held_back(store, after, below, start, cap=10) == 0

    async def test_postgres_refuses_what_jsonb_cannot_hold(self, store: asyncpg.Pool) -> None:
        async with store.acquire() as connection:
            assert await refuses_json(connection, json.dumps("a\u0000b"), "jsonb")
            assert not await refuses_json(connection, json.dumps("a\u0000b"), "json")
            assert not await refuses_json(connection, '{"fine": 1}', "jsonb")
