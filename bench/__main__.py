"""``python -m bench``: run the workloads on our runtime and on the peers, print the table,
write the JSON.

    python -m bench --mode quick                    # every workload, small sizes
    python -m bench --only W2,W4 --systems ours     # some workloads, some systems
    python -m bench --set w2_instances=500          # change one size
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import ceilings, history, ours
from bench.config import SYSTEMS, WORKLOADS, Endpoints, Sizes, sizes_for
from bench.deployment import FUNCTION_MODULES, OurDeployment
from bench.plot import write_chart
from bench.report import build_rows, format_markdown, format_table, write_json
from durable.broker import connect

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# W7 restarts the services for a clean memory baseline, so it runs last.
OUR_ORDER = ("W1", "W3", "W6", "W2", "W8", "W4", "W5", "W7", "W9")
WORKLOAD_TIMEOUT = 900.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["full", "quick", "smoke"], default="full")
    parser.add_argument("--only", default="", help="workloads to run, e.g. W1,W4 or ceilings")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=",".join(SYSTEMS))
    parser.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/<time>.json)")
    parser.add_argument("--log-dir", type=Path, help="services' logs (default: a temp dir)")
    parser.add_argument(
        "--history",
        type=Path,
        help="append the run's line to this file (default bench/results/history.jsonl, "
        "only without --output)",
    )
    return parser.parse_args(argv)


def selected(text: str, known: tuple[str, ...], what: str) -> list[str]:
    if not text:
        return list(known)
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    lookup = {name.lower(): name for name in known}
    unknown = [c for c in chosen if c.lower() not in lookup]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return [lookup[c.lower()] for c in chosen]


def machine() -> dict[str, Any]:
    """The machine, and the commit of ours that is measured."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu,
            "memory_gb": round(memory_kb / 2**20, 1),
            "load_average_at_start": os.getloadavg(),
        },
        "python": platform.python_version(),
        "ours": f"{commit}{' (with uncommitted changes)' if dirty else ''}",
    }


async def environment(endpoints: Endpoints) -> dict[str, Any]:
    """Versions of everything measured and a description of the machine."""
    connection = await asyncpg.connect(endpoints.admin_database_url, timeout=30)
    try:
        postgres = await connection.fetchval("SHOW server_version")
        synchronous_commit = await connection.fetchval("SHOW synchronous_commit")
    finally:
        await connection.close()
    amqp = await connect(endpoints.amqp_url, "bench.versions")
    try:
        properties = amqp.transport.connection.server_properties  # type: ignore[union-attr]
        rabbitmq = properties.get("version", "?")
    finally:
        await amqp.close()
    return {
        **machine(),
        "postgres": postgres,
        "postgres_synchronous_commit": synchronous_commit,
        "rabbitmq": rabbitmq.decode() if isinstance(rabbitmq, bytes) else str(rabbitmq),
    }


async def run_ceilings(endpoints: Endpoints, sizes: Sizes) -> dict[str, Any]:
    log("ceilings: Postgres commits/s, RabbitMQ confirmed publishes/s")
    metrics: dict[str, float] = {}
    errors = []
    for measure in (ceilings.postgres_ceilings, ceilings.rabbitmq_ceilings):
        try:
            metrics |= await asyncio.wait_for(measure(endpoints, sizes.ceiling_seconds), 120)
        except Exception as error:
            log(f"ceilings: {measure.__name__} failed: {error!r}")
            errors.append(f"{measure.__name__}: {error!r}")
    metrics |= ceilings.serial_step_ceiling(metrics)
    return {"metrics": metrics, "errors": errors}


async def run_ours(
    endpoints: Endpoints, sizes: Sizes, workloads: list[str], log_dir: Path
) -> dict[str, Any]:
    deployment = OurDeployment(endpoints, log_dir)
    result: dict[str, Any] = {
        "status": "ok",
        "config": {
            "services": "orchestrator and activity worker as processes (deploy.processes)",
            "partitions": deployment.topology.partitions,
            "function_modules": FUNCTION_MODULES,
            "logs": str(log_dir),
        },
        "workloads": {},
    }
    log(f"ours: database {deployment.database}, namespace {deployment.topology.namespace}")
    try:
        await asyncio.wait_for(deployment.open(), 180)
        for name in [w for w in OUR_ORDER if w in workloads]:
            log(f"ours: {name}")
            started = time.monotonic()
            try:
                # A stuck broker or database must end the workload, not the whole run.
                outcome = await asyncio.wait_for(
                    ours.WORKLOADS[name](deployment, sizes), WORKLOAD_TIMEOUT
                )
                result["workloads"][name] = {
                    "metrics": outcome.metrics,
                    "checks": [
                        {"check": check, "ok": ok, "detail": detail}
                        for check, ok, detail in outcome.checks
                    ],
                    "seconds": round(time.monotonic() - started, 1),
                }
                log(f"ours: {name} {json.dumps(outcome.metrics)}")
            except Exception as error:
                log(f"ours: {name} failed: {error!r}")
                result["workloads"][name] = {
                    "error": f"{error!r}",
                    "traceback": traceback.format_exc(),
                    "checks": [{"check": "ran", "ok": False, "detail": repr(error)}],
                }
                if not all(s.running for s in deployment.group.services.values()):
                    log(deployment.group.logs())
                    await deployment.restart_services()
    except Exception as error:
        result["status"] = "failed"
        result["reason"] = f"{error!r}"
        result["traceback"] = traceback.format_exc()
        log(f"ours: failed: {error!r}")
    finally:
        try:
            await asyncio.wait_for(deployment.close(), 120)
        except Exception as error:
            log(f"ours: clean-up failed: {error!r}")
            result["cleanup_error"] = repr(error)
    return result


def run_peer(peer: str, sizes: Sizes, workloads: list[str], endpoints: Endpoints) -> dict[str, Any]:
    """Run a peer's driver as a process of its own (its runtime's threads and globals stay
    there) and read the JSON it writes."""
    log(f"{peer}: starting its driver")
    with tempfile.TemporaryDirectory(prefix=f"bench-{peer}-") as scratch:
        output = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            f"bench.peers.{peer}_bench",
            "--sizes",
            json.dumps(dataclasses.asdict(sizes)),
            "--only",
            ",".join(workloads),
            "--output",
            str(output),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "DF_BENCH_DATABASE_ADMIN_URL": endpoints.admin_database_url,
            "DF_AMQP_URL": endpoints.amqp_url,
        }
        try:
            # The driver's progress goes to our stderr as it happens.
            completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, timeout=1800)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": "the driver did not finish in 30 minutes"}
        if output.exists():
            result: dict[str, Any] = json.loads(output.read_text())
            return result
        return {
            "status": "failed",
            "reason": f"driver exited {completed.returncode} without a result (see its output)",
        }


def write_results_chart(results: dict[str, Any], output: Path) -> Path | None:
    """The ratios' chart beside the JSON (``<output>.png``); None, with the reason logged,
    when it cannot be drawn (matplotlib is one of the optional ``bench`` dependencies)."""
    chart = output.with_suffix(".png")
    title = (
        f"durable-rabbit {results['environment'].get('ours')}, {results['mode']} mode, "
        f"{results['started_at'][:16]} UTC: ours against each peer and the machine's ceiling"
    )
    try:
        return chart if write_chart(results["rows"], chart, title) else None
    except ImportError as error:
        log(f"no chart: {error} (`make bench` installs matplotlib, .[bench])")
        return None


def failed_checks(results: dict[str, Any]) -> list[str]:
    failures = []
    for system, result in results["systems"].items():
        for workload, data in result.get("workloads", {}).items():
            for check in data.get("checks", []):
                if not check["ok"]:
                    failures.append(f"{system} {workload}: {check['check']} ({check['detail']})")
    return failures


async def main_async(arguments: argparse.Namespace) -> int:
    sizes = sizes_for(arguments.mode, arguments.set)
    workloads = selected(arguments.only, WORKLOADS, "workloads")
    systems = selected(arguments.systems, SYSTEMS, "systems")
    endpoints = Endpoints.from_environment()
    started = datetime.now(UTC)
    log_dir = arguments.log_dir or Path(tempfile.mkdtemp(prefix="bench-logs-"))
    results: dict[str, Any] = {
        "started_at": started.isoformat(),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "mode": arguments.mode,
        "sizes": dataclasses.asdict(sizes),
        "workloads": workloads,
        "environment": await environment(endpoints),
        "systems": {},
    }
    if "ceilings" in workloads:
        results["ceilings"] = await run_ceilings(endpoints, sizes)
        log(f"ceilings: {json.dumps(results['ceilings']['metrics'])}")
    measured = [w for w in workloads if w != "ceilings"]
    if measured:
        for system in systems:
            if system == "ours":
                results["systems"]["ours"] = await run_ours(endpoints, sizes, measured, log_dir)
            else:
                results["systems"][system] = await asyncio.to_thread(
                    run_peer, system, sizes, measured, endpoints
                )
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["rows"] = build_rows(results, sizes.w3_fan_out)
    results["failed_checks"] = failed_checks(results)

    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    output = arguments.output or RESULTS_DIR / f"{stamp}.json"
    write_json(results, output)
    chart = write_results_chart(results, output)
    if arguments.output is None:
        write_json(results, RESULTS_DIR / "latest.json")
        (RESULTS_DIR / "latest.md").write_text(format_markdown(results["rows"]) + "\n")
        if chart is not None:
            shutil.copyfile(chart, RESULTS_DIR / "latest.png")
    if arguments.history or arguments.output is None:
        history.append(history.entry(results), arguments.history or history.LOCAL_HISTORY)

    print()
    print(format_table(results["rows"]))
    print()
    print("xpeer = how many times better ours is (>1: ours better); — = not measured")
    for system, result in results["systems"].items():
        versions = result.get("versions")
        status = result.get("status", "?")
        line = f"{system}: {status}"
        if result.get("reason"):
            line += f" — {result['reason']}"
        if versions:
            line += f" ({', '.join(f'{k} {v}' for k, v in versions.items())})"
        print(line)
        for workload, data in result.get("workloads", {}).items():
            if "error" in data:
                print(f"  {workload} failed: {data['error']}")
            if "skipped" in data:
                print(f"  {workload} not measured: {data['skipped']}")
    for failure in results["failed_checks"]:
        print(f"CHECK FAILED: {failure}")
    print(f"results: {output} ({(datetime.now(UTC) - started).total_seconds():.0f} s)")
    if chart is not None:
        print(f"chart: {chart}")
    return 1 if results["failed_checks"] else 0


def main() -> None:
    sys.exit(asyncio.run(main_async(parse_arguments())))


if __name__ == "__main__":
    main()
