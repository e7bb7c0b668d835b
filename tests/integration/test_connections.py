"""Every service's broker connection (``durable.broker.connect``) against the real broker."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from durable.broker import connect
from durable.broker_nodes import DEFAULT_HEARTBEAT_SECONDS, BrokerUnreachableError
from tests.conftest import AMQP_URL, free_port


def _down(password: str = "guest") -> str:
    """A node that is down: nothing listens on its port."""
    return f"amqp://guest:{password}@127.0.0.1:{free_port()}/"


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


async def test_a_list_connects_to_a_node_that_answers_and_logs_which_masked() -> None:
    url = AMQP_URL.split("?")[0]
    live = url + "?heartbeat=3"
    with capture_logs() as logs:
        # Whichever node the rotation starts from, the one that answers is used.
        for _ in range(4):
            connection = await connect(f"{_down()},{live},{_down()}", "integration.nodes")
            try:
                assert connection.transport is not None
                # The heartbeat of the URL it connected to, which names one.
                assert connection.transport.connection.heartbeat_timeout == 3
            finally:
                await connection.close()
    connected = [entry for entry in logs if entry["event"] == "amqp.connected"]
    assert len(connected) == 4
    assert {entry["node"] for entry in connected} == {live.replace("guest:guest@", "***@")}


async def test_a_list_of_which_no_node_answers_says_so_for_each_without_passwords() -> None:
    nodes = [_down("secret-1"), _down("secret-2")]
    with pytest.raises(BrokerUnreachableError) as refused:
        await connect(",".join(nodes), "integration.nodes")
    assert len(refused.value.failures) == 2
    assert "secret" not in str(refused.value)
    # A ConnectionError: every reconnect loop and error report treats it as a broker down.
    assert isinstance(refused.value, ConnectionError)
