"""The orchestrator's Postgres sessions run with the parameters it relies on: a transaction
left idle ends within a lease (ADR 27), and each statement is planned for its own arguments,
so that a plan made while a table was empty is not kept once it is full (ADR 40's W5 runs)."""

from __future__ import annotations

from durable.store.database import create_pool
from services.orchestrator.service import session_settings
from services.orchestrator.settings import OrchestratorSettings


async def test_the_orchestrators_sessions_plan_each_statement_for_its_arguments(
    database_url: str,
) -> None:
    settings = OrchestratorSettings(database_url=database_url, lease_seconds=5)
    pool = await create_pool(database_url, server_settings=session_settings(settings, "m-1"))
    try:
        async with pool.acquire() as connection:
            assert await connection.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
            assert await connection.fetchval("SHOW idle_in_transaction_session_timeout") == "5s"
            name = await connection.fetchval("SHOW application_name")
            assert "m-1" in name
    finally:
        await pool.close()
