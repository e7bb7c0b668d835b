"""Comparing app versions, as orchestrator code that branches on ``context.version`` does.

if compare_versions(ctx.version, "2.0") >= 0:
    yield ctx.call_activity("compliance_check", proposal)
"""

from __future__ import annotations

import re

from contracts.limits import ValueRefusedError, check_short_string

MAX_VERSION_LENGTH = 100
"""The longest version, in characters: ``DF_APP_VERSION`` and a start's own."""

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


def check_version(version: str) -> None:
    """Raise ``ValueRefusedError`` unless ``version`` can be an instance's version: not
    empty (no version is ``None``), at most ``MAX_VERSION_LENGTH`` characters, storable."""
    what = "the version"
    if not version:
        raise ValueRefusedError(what, "it is empty (leave it out for none)")
    if len(version) > MAX_VERSION_LENGTH:
        raise ValueRefusedError(what, f"it is longer than {MAX_VERSION_LENGTH} characters")
    check_short_string(version, what)
