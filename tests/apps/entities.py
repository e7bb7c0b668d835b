"""Entities the tests drive (ADR 38): a counter, bank accounts, and the orchestrations that
signal, call and lock them."""

from __future__ import annotations

from typing import Any

from durable import EntityContext, EntityId, FunctionApp

app = FunctionApp()


class InsufficientFundsError(Exception):
    pass


@app.entity
def counter(ctx: EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    match ctx.operation_name:
        case "add":
            ctx.set_state(value + ctx.get_input())
        case "get":
            ctx.set_result(value)
        case "reset":
            ctx.set_state(0)
        case "delete":
            ctx.destruct_on_exit()
        case "add_then_fail":
            ctx.set_state(value + ctx.get_input())
            raise ValueError("failed after changing the state")
        case other:
            raise ValueError(f"unknown operation {other!r}")


@app.entity(name="Account")
def account(ctx: EntityContext) -> None:
    balance = ctx.get_state(lambda: 0)
    match ctx.operation_name:
        case "deposit":
            ctx.set_state(balance + ctx.get_input())
        case "withdraw":
            amount = ctx.get_input()
            if amount > balance:
                raise InsufficientFundsError(f"{amount} > {balance}")
            ctx.set_state(balance - amount)
        case "get":
            ctx.set_result(balance)


@app.orchestrator
def signal_counter(ctx: Any) -> int:
    """Signals the counter ``key`` ``count`` times with ``add 1``."""
    spec = ctx.get_input()
    target = EntityId("counter", spec["key"])
    for _ in range(spec["count"]):
        ctx.signal_entity(target, "add", 1)
    return int(spec["count"])


@app.orchestrator
def call_counter(ctx: Any):  # type: ignore[no-untyped-def]
    """Adds through calls, then reads: what two-way calls answer, failures included."""
    target = EntityId("counter", ctx.get_input())
    yield ctx.call_entity(target, "add", 5)
    try:
        yield ctx.call_entity(target, "add_then_fail", 100)
    except Exception as error:
        failed = type(error).__name__
    value = yield ctx.call_entity(target, "get")
    return {"value": value, "failed": failed}


@app.orchestrator
def transfer_between(ctx: Any):  # type: ignore[no-untyped-def]
    """Moves ``amount`` from one account to the other ``times`` times, each inside a
    critical section holding both, skipping a move the source cannot pay."""
    spec = ctx.get_input()
    source, target = EntityId("Account", spec["from"]), EntityId("Account", spec["to"])
    moved = 0
    for _ in range(spec["times"]):
        with (yield ctx.lock([source, target])):
            balance = yield ctx.call_entity(source, "get")
            if balance >= spec["amount"]:
                yield ctx.call_entity(source, "withdraw", spec["amount"])
                yield ctx.call_entity(target, "deposit", spec["amount"])
                moved += 1
    return moved


@app.orchestrator
def holds_counter(ctx: Any):  # type: ignore[no-untyped-def]
    """Locks the counter ``key`` and holds it until the event ``release`` arrives."""
    target = EntityId("counter", ctx.get_input())
    with (yield ctx.lock([target])):
        yield ctx.wait_for_external_event("release")
    return True
