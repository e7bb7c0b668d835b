"""What every peer driver shares: arguments, the result file, versions, timing helpers."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.config import Sizes


def log(peer: str, message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {peer}: {message}", file=sys.stderr, flush=True)


def arguments() -> tuple[Sizes, list[str], Path]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--only", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parsed = parser.parse_args()
    raw = json.loads(parsed.sizes)
    raw["w3_fan_out"] = tuple(raw["w3_fan_out"])
    return Sizes(**raw), [w for w in parsed.only.split(",") if w], parsed.output


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def unavailable(output: Path, reason: str, packages: tuple[str, ...]) -> None:
    """The peer cannot run here: say so in the results instead of failing the run."""
    result = {"status": "unavailable", "reason": reason, "versions": versions(*packages)}
    output.write_text(json.dumps(result, indent=2))


def run_workloads(
    peer: str,
    workloads: dict[str, Callable[[Sizes], dict[str, Any]]],
    not_measured: dict[str, str],
    sizes: Sizes,
    only: list[str],
) -> dict[str, Any]:
    """Run the selected workloads, each isolated: one failing does not stop the others."""
    results: dict[str, Any] = {}
    for name in only:
        if name in not_measured:
            results[name] = {"skipped": not_measured[name]}
            continue
        if name not in workloads:
            continue
        log(peer, name)
        started = time.monotonic()
        try:
            data = workloads[name](sizes)
            data["seconds"] = round(time.monotonic() - started, 1)
            results[name] = data
            log(peer, f"{name} {json.dumps(data.get('metrics'))}")
        except Exception as error:
            results[name] = _failed(peer, name, error)
    return results


async def run_workloads_async(
    peer: str,
    workloads: Mapping[str, Callable[[Sizes], Awaitable[dict[str, Any]]]],
    not_measured: dict[str, str],
    sizes: Sizes,
    only: list[str],
) -> dict[str, Any]:
    """``run_workloads`` for a driver whose workloads run on its event loop."""
    results: dict[str, Any] = {}
    for name in only:
        if name in not_measured:
            results[name] = {"skipped": not_measured[name]}
            continue
        if name not in workloads:
            continue
        log(peer, name)
        started = time.monotonic()
        try:
            data = await workloads[name](sizes)
            data["seconds"] = round(time.monotonic() - started, 1)
            results[name] = data
            log(peer, f"{name} {json.dumps(data.get('metrics'))}")
        except Exception as error:
            results[name] = _failed(peer, name, error)
    return results


def _failed(peer: str, name: str, error: Exception) -> dict[str, Any]:
    log(peer, f"{name} failed: {error!r}")
    return {
        "error": repr(error),
        "traceback": traceback.format_exc(),
        "checks": [{"check": "ran", "ok": False, "detail": repr(error)}],
    }


def check(name: str, ok: bool, detail: Any = "") -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "detail": str(detail)}
