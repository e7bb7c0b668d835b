"""Every service's broker connection (``durable.broker.connect``) against the real broker."""

from __future__ import annotations

import pytest

from durable.broker import DEFAULT_HEARTBEAT_SECONDS, connect
from tests.conftest import AMQP_URL


@pytest.mark.parametrize(
    ("query", "heartbeat"), [("", DEFAULT_HEARTBEAT_SECONDS), ("?heartbeat=3", 3)]
)
async def test_a_connection_heartbeats_every_ten_seconds_unless_its_url_says(
    query: str, heartbeat: int
) -> None:
    # aiormq's own default (60 s) lets a stopped process keep its partitions' deliveries for
    # three minutes after its lease has moved on.
    url = AMQP_URL.split("?")[0] + query
    connection = await connect(url, "integration.heartbeat")
    try:
        assert connection.transport is not None
        assert connection.transport.connection.heartbeat_timeout == heartbeat
    finally:
        await connection.close()
