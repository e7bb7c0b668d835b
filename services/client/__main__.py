"""The client service: Durable Functions' HTTP API (and, later, the broker entry points).

Run with ``python -m services.client``; configure with ``DF_*`` environment variables.
"""

from __future__ import annotations

import uvicorn

from services.client.api import create_app
from services.client.client import DurableClient
from services.client.settings import ClientSettings
from services.common.db import create_pool
from services.common.lifecycle import run_service
from services.common.logging import configure_logging
from services.common.migrate import apply_migrations


async def serve(settings: ClientSettings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await apply_migrations(connection)
    finally:
        await pool.close()
    async with await DurableClient.connect(settings, name="client-service") as client:
        config = uvicorn.Config(
            create_app(settings, client),
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
        )
        await uvicorn.Server(config).serve()


def main() -> None:
    settings = ClientSettings()
    configure_logging("client", log_format=settings.log_format, level=settings.log_level)
    run_service("client", serve(settings))


if __name__ == "__main__":
    main()
