"""Run the system on this machine: ``python -m deploy.local demo`` (``make run``) or ``up``.

``demo`` starts the three services, runs the sample orchestrations while printing their
progress from the event store, then takes a proposal through the approval workflow with
escalation over the broker (``deploy.approval_demo``), and stops the services. ``up``
starts them and waits for Ctrl-C. Both use the ``DF_*`` environment variables, exactly as
the services do.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Annotated, Any

import asyncpg
import typer

from contracts import (
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    HistoryEvent,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from deploy.approval_demo import DEMO_DEADLINES, ApprovalDemo, broker_user
from deploy.processes import PROJECT_ROOT, ServiceGroup
from durable.client import DurableClient
from services.client.settings import ClientSettings
from services.common.loader import load_function_apps
from services.common.migrate import apply_migrations, ensure_database
from workflows.approval.inbound import ApprovalEntrySettings

LOG_DIR = PROJECT_ROOT / ".run" / "logs"

cli = typer.Typer(add_completion=False, help=__doc__)


def _say(text: str) -> None:
    typer.echo(text)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _describe(event: HistoryEvent) -> str | None:
    match event:
        case ExecutionStarted(name=name, input=data):
            return f"ExecutionStarted    {name}({_short(data)})"
        case TaskScheduled(name=name, input=data):
            return f"TaskScheduled  #{event.event_id:<3} {name}({_short(data)})"
        case TaskCompleted(task_scheduled_id=task_id, result=result):
            return f"TaskCompleted  #{task_id:<3} → {_short(result)}"
        case TaskFailed(task_scheduled_id=task_id, failure=failure):
            return f"TaskFailed     #{task_id:<3} {failure.error_type}: {failure.message}"
        case ExecutionCompleted(result=result):
            return f"ExecutionCompleted  → {_short(result)}"
        case ExecutionFailed(failure=failure):
            return f"ExecutionFailed     {failure.error_type}: {failure.message}"
        case _:
            return None


async def _follow(
    client: DurableClient, instance_id: str, *, verbose: bool, timeout: float
) -> None:
    """Print the instance's events as they are recorded, until it ends.

    Times are when each event was committed, relative to the instance's first event.
    """
    deadline = time.monotonic() + timeout
    shown = scheduled = completed = reported = 0
    while True:
        # Status first: when it says the instance ended, the history read after it is complete.
        status = await client.get_status(instance_id)
        history = await client.get_history(instance_id)
        origin = history[0].recorded_at if history else None
        fresh = history[shown:]
        scheduled += sum(isinstance(s.event, TaskScheduled) for s in fresh)
        completed += sum(isinstance(s.event, TaskCompleted | TaskFailed) for s in fresh)
        if not verbose and scheduled and completed != reported:
            _say(f"    activities completed: {completed}/{scheduled}")
            reported = completed
        for stored in fresh:
            event = stored.event
            line = _describe(event)
            if line and (verbose or not isinstance(event, TaskScheduled | TaskCompleted)):
                offset = (
                    (stored.recorded_at - origin).total_seconds()
                    if origin and stored.recorded_at
                    else 0.0
                )
                _say(f"    +{offset * 1000:7.0f} ms  {line}")
        shown = len(history)
        if status is not None and status.runtime_status.is_terminal:
            elapsed = (status.last_updated_at - status.created_at).total_seconds()
            _say(f"    {status.runtime_status.value}, {elapsed:.2f} s after it was started")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"instance {instance_id} did not finish within {timeout} s")
        await asyncio.sleep(0.05 if verbose else 0.2)


def _local_access(settings: ClientSettings) -> dict[str, str]:
    """Without configured keys, the services run the HTTP API without access keys, as Azure
    Functions Core Tools do on a developer's machine (it listens on 127.0.0.1 by default)."""
    keys = settings.management_keys.get_secret_value() or settings.start_keys.get_secret_value()
    return {} if keys or settings.auth_disabled else {"DF_AUTH_DISABLED": "true"}


def _local_approvers(settings: ClientSettings) -> dict[str, str]:
    """Without configured gateways, the broker user of ``DF_AMQP_URL`` (guest) may answer for
    every approver, as the demo's head of department does: on a developer's machine the
    approvers have no broker users of their own (docs/approval.md, trust model)."""
    if ApprovalEntrySettings().approval_gateway_users.strip():
        return {}
    return {"DF_APPROVAL_GATEWAY_USERS": broker_user(settings.amqp_url)}


def _approvers_line(approvers: dict[str, str]) -> str | None:
    gateway = approvers.get("DF_APPROVAL_GATEWAY_USERS")
    if gateway is None:
        return None
    return (
        f"  warning: approval answers published as broker user {gateway!r} count for every "
        "approver (local development; set DF_APPROVAL_GATEWAY_USERS to choose)"
    )


def _api_line(settings: ClientSettings, access: dict[str, str]) -> str:
    keyless = settings.auth_disabled or "DF_AUTH_DISABLED" in access
    required = "no access keys (local development)" if keyless else "access keys required"
    return f"HTTP API on {settings.public_base_url}, {required}"


async def _prepare_database(settings: ClientSettings) -> None:
    """Create the database when it is missing and apply migrations (the services would too)."""
    await ensure_database(settings.database_url)
    connection = await asyncpg.connect(settings.database_url)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()


async def _demo(settings: ClientSettings, fan_out: int) -> None:
    await _prepare_database(settings)
    deadlines = {name: os.environ.get(name, value) for name, value in DEMO_DEADLINES.items()}
    access = _local_access(settings)
    approvers = _local_approvers(settings)
    group = ServiceGroup({**deadlines, **access, **approvers}, LOG_DIR, free_ports=False)
    functions = load_function_apps(settings.modules)
    _say(f"▶ starting orchestrator, activities and client services (logs in {LOG_DIR})")
    started = time.monotonic()
    group.start()
    try:
        await group.wait_ready(settings.topology, functions.activities)
        _say(f"  ready in {time.monotonic() - started:.1f} s; {_api_line(settings, access)}")
        if line := _approvers_line(approvers):
            _say(line)
        async with await DurableClient.connect(settings, name="demo") as client:
            _say("\n▶ function chaining: hello_cities (Durable Functions' 'Hello cities')")
            instance_id = await client.start_new("hello_cities")
            _say(f"  instance {instance_id}")
            await _follow(client, instance_id, verbose=True, timeout=60)

            _say(f"\n▶ fan-out/fan-in: fan_out_fan_in over {fan_out} activities")
            instance_id = await client.start_new("fan_out_fan_in", input=fan_out)
            _say(f"  instance {instance_id}")
            await _follow(client, instance_id, verbose=False, timeout=300)
            status = await client.get_status(instance_id)
            expected = sum(n * n for n in range(fan_out))
            assert status is not None
            _say(f"    sum of squares = {status.output} (expected {expected})")

            if "proposal_approval" in functions.orchestrators:
                _say(
                    "\n▶ human interaction: proposal_approval, with escalation "
                    f"({deadlines['DF_APPROVAL_RESPONSE_SECONDS']} s to answer, "
                    f"{deadlines['DF_APPROVAL_REMINDER_SECONDS']} s after a reminder)"
                )
                demo = ApprovalDemo(client, settings.topology, settings.amqp_url, _say)
                output = await demo.run()
                _say(
                    f"    output: {output['outcome']} by {output['decided_by']} "
                    f"({output['stage']}); escalations: "
                    + ", ".join(f"{e['kind']} → {e['assignee']}" for e in output["escalations"])
                )
    except BaseException:
        _say("\n" + group.logs())
        raise
    finally:
        _say("\n▶ stopping services")
        group.stop()


@cli.command()
def demo(
    fan_out: Annotated[int, typer.Option(help="activities in the fan-out sample")] = 200,
) -> None:
    """Start the services, run the samples while showing progress, stop the services."""
    asyncio.run(_demo(ClientSettings(), fan_out))


@cli.command()
def up() -> None:
    """Start the services and keep them running until Ctrl-C."""
    settings = ClientSettings()
    asyncio.run(_prepare_database(settings))
    access = _local_access(settings)
    approvers = _local_approvers(settings)
    group = ServiceGroup({**access, **approvers}, LOG_DIR, free_ports=False)
    group.start()
    try:
        functions = load_function_apps(settings.modules)
        asyncio.run(group.wait_ready(settings.topology, functions.activities))
        _say(f"services are up; {_api_line(settings, access)}; logs in {LOG_DIR}")
        _say(
            "health and metrics (/livez, /readyz, /metrics): "
            + ", ".join(f"{n} {s.health_url}" for n, s in group.services.items() if s.health_url)
        )
        if line := _approvers_line(approvers):
            _say(line)
        _say("press Ctrl-C to stop")
        while all(service.running for service in group.services.values()):
            time.sleep(0.5)
        _say("a service exited:\n" + group.logs())
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()


if __name__ == "__main__":
    cli()
