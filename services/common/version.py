"""The installed package's version, for the CLIs' ``--version``."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer

DISTRIBUTION = "durable-rabbit"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{DISTRIBUTION} {package_version()}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
]
"""A ``--version`` option for a Typer app's callback."""
