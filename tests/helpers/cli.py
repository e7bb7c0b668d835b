"""Running the ``durable`` CLI as a subprocess against a test session's settings."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from deploy.processes import PROJECT_ROOT
from durable.settings import CommonSettings


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_runner(settings: CommonSettings) -> Callable[..., Awaitable[Result]]:
    """Run ``python -m services.client.cli ARGS`` with ``settings`` as the ``DF_*`` variables."""

    async def run(*args: str, **env: str) -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.client.cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(PROJECT_ROOT),
                "DF_DATABASE_URL": settings.database_url,
                "DF_AMQP_URL": settings.amqp_url,
                "DF_NAMESPACE": settings.namespace,
                "DF_PARTITIONS": str(settings.partitions),
                **env,
            },
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return Result(process.returncode, stdout.decode(), stderr.decode())

    return run


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
