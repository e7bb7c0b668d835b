"""``python -m deploy.local demo``, the way a person runs it (``make run``), as a subprocess.

The demo starts its own three service processes, so it gets its own database and broker
namespace: nothing it does can disturb the session's services, and both are removed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from contracts import Topology
from contracts.http import HTTP_ACTIVITY
from deploy.processes import PROJECT_ROOT
from tests.conftest import (
    AMQP_URL,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    unique,
)

pytestmark = pytest.mark.e2e

FAN_OUT = 20
DEMO_TIMEOUT_SECONDS = 120
DEMO_ACTIVITIES = [
    "say_hello",
    "square",
    "plan_approval",
    "send_approval_request",
    "send_proposal_outcome",
    HTTP_ACTIVITY,  # built in: every activities service serves it
]


@pytest.fixture(scope="module")
async def demo_output() -> AsyncIterator[str]:
    """What ``python -m deploy.local demo`` printed (it ran once, in its own deployment)."""
    topology = Topology(namespace=unique("demo"), partitions=2)
    database_url = await create_database()
    try:
        env = {
            "DF_DATABASE_URL": database_url,
            "DF_AMQP_URL": AMQP_URL,
            "DF_NAMESPACE": topology.namespace,
            "DF_PARTITIONS": str(topology.partitions),
            "DF_FUNCTION_MODULES": "workflows.samples,workflows.approval",
            "DF_HTTP_PORT": str(free_port()),
            "DF_LOG_FORMAT": "console",
        }
        yield await run_demo(env)
    finally:
        await delete_broker_objects(topology, DEMO_ACTIVITIES)
        await drop_database(database_url)


async def run_demo(demo_env: dict[str, str]) -> str:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DF_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.local",
        "demo",
        "--fan-out",
        str(FAN_OUT),
        cwd=PROJECT_ROOT,
        env={**inherited, **demo_env, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # Its own process group, so a hung demo can be killed together with its services.
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), DEMO_TIMEOUT_SECONDS)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = await process.communicate()
        pytest.fail(f"demo did not finish within {DEMO_TIMEOUT_SECONDS} s:\n{output.decode()}")
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def test_local_demo_runs_the_samples_and_prints_the_sum(demo_output: str) -> None:
    text = demo_output
    expected = sum(n * n for n in range(FAN_OUT))
    assert f"sum of squares = {expected} (expected {expected})" in text, text
    # Both samples (the chain and the fan-out) report their terminal status.
    assert text.count("Completed, ") == 2, text
    assert "Hello Tokyo!" in text


def test_local_demo_escalates_a_proposal_and_the_head_of_department_approves(
    demo_output: str,
) -> None:
    # Approvers have no broker users of their own here: the demo's user is trusted for all,
    # and says so.
    assert (
        "warning: approval answers published as broker user 'guest' count for every approver"
        in demo_output
    ), demo_output
    # The manager is asked, reminded, then the proposal moves up and is approved there.
    approval = demo_output[demo_output.index("▶ human interaction") :]
    steps = [
        "← ApprovalRequest to mia (manager, request)",
        "← ApprovalRequest to mia (manager, reminder)",
        "← ApprovalRequest to hugo (head_of_department, request, reassigned from mia)",
        "→ ApprovalResponse: hugo approves, published to",
        "← ProposalOutcome for alice: approved by hugo (head_of_department) after 2",
        "output: approved by hugo (head_of_department); "
        "escalations: reminder → mia, reassignment → hugo",
    ]
    positions = [approval.find(step) for step in steps]
    assert -1 not in positions, approval
    assert positions == sorted(positions), approval
    assert "status: manager mia asked, deadline" in approval
    assert "status: head_of_department hugo asked" in approval
    assert "status: decided, approved" in approval
