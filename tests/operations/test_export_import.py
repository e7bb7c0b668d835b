"""``durable-ops export`` and ``import``: event streams moved to another store unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import create_database, drop_database
from tests.operations.conftest import OpsDeployment, Workload

pytestmark = pytest.mark.e2e

SNAPSHOT = {
    "instances": """
        SELECT instance_id, name, execution_id, status, input::text, output::text,
               custom_status::text, failure::text, correlation_id, parent_instance_id,
               created_at, updated_at, completed_at, last_seq, execution_start_seq, version
        FROM instances WHERE instance_id = ANY($1) ORDER BY instance_id
    """,
    "events": """
        SELECT instance_id, seq, execution_id, event_type, payload::text, message_id,
               recorded_at, global_position
        FROM events WHERE instance_id = ANY($1) ORDER BY instance_id, seq
    """,
    "timers": """
        SELECT instance_id, execution_id, timer_id, fire_at, correlation_id, swept_at
        FROM timers WHERE instance_id = ANY($1) ORDER BY instance_id, execution_id, timer_id
    """,
}


async def snapshot(database_url: str, ids: list[str]) -> dict[str, list[dict]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: [dict(row) for row in await connection.fetch(query, ids)]
            for table, query in SNAPSHOT.items()
        }
    finally:
        await connection.close()


async def test_export_then_import_into_an_empty_database_yields_identical_streams(
    deployment: OpsDeployment, workload: Workload, tmp_path: Path
) -> None:
    source = deployment.settings.database_url
    rows = await deployment.pool.fetch("SELECT instance_id FROM instances")
    ids = [row["instance_id"] for row in rows]
    before = await snapshot(source, ids)
    exported = tmp_path / "streams.jsonl"

    result = await deployment.ops("export", "--output", str(exported))

    assert result.code == 0, result
    assert await snapshot(source, ids) == before  # nothing moved while it was read
    assert sum(len(rows) for rows in before.values()) + 1 == len(exported.read_text().splitlines())
    assert before["timers"], "the waiting instances' timers are part of the export"
    versions = {row["version"] for row in before["instances"]}
    assert {"2.0", "3.0"} <= versions, "the versioned instances' versions are part of it"

    target = await create_database()
    try:
        restored = await deployment.ops("import", str(exported), DF_DATABASE_URL=target)
        assert restored.code == 0, restored
        assert await snapshot(target, ids) == before

        again = await deployment.ops("import", str(exported), DF_DATABASE_URL=target)
        assert again.code == 1
        assert again.stderr.startswith("error: the store is not empty")
        assert len(again.stderr.strip().splitlines()) == 1
    finally:
        await drop_database(target)

    # Exports of part of the store: by name and status, by instance.
    by_name = await deployment.ops("export", "--name", "hello_cities", "--status", "Completed")
    assert by_name.code == 0, by_name
    lines = [json.loads(line) for line in by_name.stdout.splitlines()]
    names = {line["name"] for line in lines if line["kind"] == "instance"}
    assert names == {"hello_cities"}

    chosen = workload.ids["approval"][:2]
    by_id = await deployment.ops("export", "--instance", chosen[0], "--instance", chosen[1])
    lines = [json.loads(line) for line in by_id.stdout.splitlines()]
    assert {line["instance_id"] for line in lines if line["kind"] != "export"} == set(chosen)
