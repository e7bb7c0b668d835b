"""``durable-ops members``: the orchestrator members of this deployment and their leases.

One line per member (id, host, pid, heartbeat age, the partitions it holds with their epochs),
then the partitions no member holds. A member whose heartbeat is older than the lease time is
marked ``stale``: it has crashed or paused, and its partitions go to the others as their
leases expire (ADR 27). Read-only.
"""

from __future__ import annotations

from typing import Annotated

import typer

from durable.store.leases import LeaseRow, MemberRow, members_and_leases
from services.operations import cli_output
from services.operations.session import EXIT_OK, Session, run

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")]
LeaseSeconds = Annotated[
    float,
    typer.Option(
        "--lease-seconds",
        envvar="DF_LEASE_SECONDS",
        min=0.5,
        help="The deployment's lease time: older heartbeats are shown as stale.",
    ),
]


def members(as_json: AsJson = False, lease_seconds: LeaseSeconds = 5.0) -> None:
    """List the orchestrator members, the partitions each holds (epoch, age) and free ones."""

    async def work(session: Session) -> int:
        pool = await session.pool()
        found, leases = await members_and_leases(pool, session.settings.namespace)
        for member in found:
            held = [lease for lease in leases if lease.owner == member.member_id]
            _member(member, held, lease_seconds, as_json)
        known = {member.member_id for member in found}
        free = [lease for lease in leases if lease.owner is None]
        orphaned = [lease for lease in leases if lease.owner not in known and lease.owner]
        cli_output.summary(
            as_json,
            {
                "members": len(found),
                "partitions": len(leases),
                "free": [lease.partition for lease in free],
                "held_by_unknown": [_lease_json(lease) for lease in orphaned],
            },
            f"{len(found)} members, {len(leases)} partitions"
            + (f"; free: {_partitions(free)}" if free else "")
            + (f"; held by members that left: {_partitions(orphaned)}" if orphaned else ""),
        )
        return EXIT_OK

    run(work)


def _member(member: MemberRow, held: list[LeaseRow], lease_seconds: float, as_json: bool) -> None:
    stale = member.heartbeat_age_seconds > lease_seconds
    if as_json:
        cli_output.line(
            cli_output.dumps(
                {
                    "kind": "member",
                    "member_id": member.member_id,
                    "host": member.host,
                    "pid": member.pid,
                    "started_at": member.started_at,
                    "heartbeat_age_seconds": round(member.heartbeat_age_seconds, 3),
                    "stale": stale,
                    "leases": [_lease_json(lease) for lease in held],
                }
            )
        )
        return
    state = "stale" if stale else "live"
    partitions = ", ".join(
        f"{lease.partition}@{lease.epoch} ({_age(lease.held_seconds)})" for lease in held
    )
    cli_output.line(
        f"{member.member_id}  {member.host} pid {member.pid}  {state}, heartbeat "
        f"{member.heartbeat_age_seconds:.1f} s ago  {len(held)} partitions: {partitions or '-'}"
    )


def _lease_json(lease: LeaseRow) -> dict[str, object]:
    return {
        "partition": lease.partition,
        "owner": lease.owner,
        "epoch": lease.epoch,
        "held_seconds": None if lease.held_seconds is None else round(lease.held_seconds, 3),
        "expires_in_seconds": (
            None if lease.expires_in_seconds is None else round(lease.expires_in_seconds, 3)
        ),
    }


def _partitions(leases: list[LeaseRow]) -> str:
    return ", ".join(str(lease.partition) for lease in leases)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
