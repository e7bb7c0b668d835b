"""Comparing app versions, as orchestrator code that branches on ``context.version`` does.

if compare_versions(ctx.version, "2.0") >= 0:
    yield ctx.call_activity("compliance_check", proposal)
"""

from __future__ import annotations

import re

_NUMERIC = re.compile(r"^\d+(\.\d+)*$")


def version_key(version: str | None) -> tuple[int, tuple[int, ...], str]:
    """How versions order: none (``None`` or empty) first, then dotted numbers numerically
    (``1.10`` after ``1.9``; ``2`` the same as ``2.0``), then any other text by its characters."""
    if not version:
        return (0, (), "")
    if _NUMERIC.match(version):
        numbers = [int(part) for part in version.split(".")]
        while len(numbers) > 1 and numbers[-1] == 0:
            numbers.pop()
        return (1, tuple(numbers), "")
    return (2, (), version)


def compare_versions(left: str | None, right: str | None) -> int:
    """-1, 0 or 1 as ``left`` is older than, the same as or newer than ``right``."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)
