"""The event store's contract, part one: appending events and loading histories."""

from __future__ import annotations

import asyncpg
import pytest

from contracts import OrchestrationStatus
from durable.store.batch import BatchWrite, NewEvent, write_batch
from durable.store.errors import ConcurrencyError
from durable.store.events import load_histories_txn, load_history, load_stream_txn
from durable.store.instances import insert_instances_txn
from durable.store.queries import fetch_instance
from tests.store.factories import appended, chain_events, new_instance, running_instance, update


class EventsContract:
    """Appends name the seq they write; a history loads back exactly as appended."""

    async def test_appended_events_load_back_in_seq_order(self, store: asyncpg.Pool) -> None:
        events = chain_events()
        instance_id, _ = await running_instance(store, events)

        history = await load_history(store, instance_id)

        assert [stored.seq for stored in history] == [1, 2, 3, 4, 5, 6]
        assert [stored.event for stored in history] == events
        assert all(stored.recorded_at is not None for stored in history)

    async def test_an_event_keeps_the_message_id_that_brought_it(self, store: asyncpg.Pool) -> None:
        row = new_instance()
        [event] = appended(row.instance_id, chain_events()[:1])
        async with store.acquire() as connection:
            await insert_instances_txn(connection, [row])
            await write_batch(connection, BatchWrite(events=[event]))

        [stored] = await load_history(store, row.instance_id)

        assert stored.message_id == event.message_id

    async def test_histories_load_from_each_instances_own_seq(self, store: asyncpg.Pool) -> None:
        first, _ = await running_instance(store)
        second, _ = await running_instance(store)
        async with store.acquire() as connection:
            histories = await load_histories_txn(connection, {first: 5, second: 1, "none": 1})

        assert [stored.seq for stored in histories[first]] == [5, 6]
        assert len(histories[second]) == 6
        assert histories["none"] == []

    async def test_a_stream_names_each_events_execution(self, store: asyncpg.Pool) -> None:
        instance_id, last_seq = await running_instance(store)
        async with store.acquire() as connection:
            await write_batch(
                connection,
                BatchWrite(events=appended(instance_id, chain_events()[:2], last_seq + 1, "e2")),
            )
            stream = await load_stream_txn(connection, instance_id, from_seq=6)

        assert [(e.seq, e.execution_id) for e in stream] == [(6, "e1"), (7, "e2"), (8, "e2")]

    async def test_a_seq_already_taken_fails_the_whole_batch(self, store: asyncpg.Pool) -> None:
        instance_id, _ = await running_instance(store)
        other = new_instance()
        async with store.acquire() as connection:
            await insert_instances_txn(connection, [other])
            taken = NewEvent(instance_id, 6, "e1", chain_events()[0])
            with pytest.raises(ConcurrencyError):
                await write_batch(
                    connection,
                    BatchWrite(events=[*appended(other.instance_id, chain_events()), taken]),
                )

        assert await load_history(store, other.instance_id) == []

    async def test_a_row_moved_since_the_batch_began_fails_it(self, store: asyncpg.Pool) -> None:
        instance_id, last_seq = await running_instance(store)
        stale = BatchWrite(
            events=appended(instance_id, chain_events()[:1], last_seq + 1),
            updates=[update(instance_id, last_seq + 1)],
            expected_seqs={instance_id: last_seq - 1},
        )
        async with store.acquire() as connection:
            with pytest.raises(ConcurrencyError):
                await write_batch(connection, stale)

        assert len(await load_history(store, instance_id)) == last_seq

    async def test_a_batch_updates_rows_only_at_their_expected_seq(
        self, store: asyncpg.Pool
    ) -> None:
        instance_id, last_seq = await running_instance(store)
        ending = update(instance_id, last_seq + 1, OrchestrationStatus.COMPLETED, output="done")
        async with store.acquire() as connection:
            await write_batch(
                connection,
                BatchWrite(
                    events=appended(instance_id, chain_events()[:1], last_seq + 1),
                    updates=[ending],
                    expected_seqs={instance_id: last_seq},
                ),
            )

        status = await fetch_instance(store, instance_id)
        assert status is not None
        assert (status.runtime_status, status.output) == (OrchestrationStatus.COMPLETED, "done")
        assert status.custom_status == {"step": last_seq + 1}
        assert status.completed_at == ending.completed_at

    async def test_a_batch_that_writes_nothing_is_harmless(self, store: asyncpg.Pool) -> None:
        async with store.acquire() as connection:
            assert await write_batch(connection, BatchWrite()) == []
