"""Logged tracebacks: never a local variable, in either format, and bounded however deep the
stack (a ``RecursionError`` once wrote half a million lines and froze the client)."""

from __future__ import annotations

import json
import time

import pytest
import structlog

from services.client.settings import ClientSettings
from services.common.logging import configure_logging
from services.common.tracebacks import INNERMOST_FRAMES, OUTERMOST_FRAMES, format_exception

pytestmark = pytest.mark.usefixtures("restored_logging")

ACCESS_KEY = "access-key-5f4e3d2c1b0a99887766"
LOCAL_VALUE = "a-local-value-nobody-configured"


def authorize(presented_key: str) -> None:
    expected_value = LOCAL_VALUE  # noqa: F841 (a local the traceback must not show)
    raise PermissionError(f"refused {presented_key}")


def ping(depth: int) -> int:
    return pong(depth + 1)


def pong(depth: int) -> int:
    return ping(depth + 1)


def logged(log_format: str, capsys: pytest.CaptureFixture[str], call) -> str:  # type: ignore[no-untyped-def]
    configure_logging("client", ClientSettings(log_format=log_format, management_keys=ACCESS_KEY))
    try:
        call()
    except Exception:
        structlog.get_logger("test").exception("http.unexpected_error")
    err = capsys.readouterr().err
    if log_format == "json":
        return str(json.loads(err)["exception"])
    return err


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_logged_traceback_shows_no_local_variable_and_no_key(capsys, log_format):
    text = logged(log_format, capsys, lambda: authorize(ACCESS_KEY))

    assert "Traceback (most recent call last)" in text
    assert "in authorize" in text
    assert LOCAL_VALUE not in text
    assert "expected_value" not in text
    assert "presented_key =" not in text
    assert ACCESS_KEY not in text
    assert "PermissionError: refused ***" in text


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_recursion_error_writes_a_bounded_traceback_quickly(capsys, log_format):
    started = time.monotonic()
    text = logged(log_format, capsys, lambda: ping(0))
    elapsed = time.monotonic() - started

    assert "RecursionError" in text
    # Each frame renders as at most four lines (file, code, carets); plus the header.
    assert len(text.splitlines()) <= 4 * (OUTERMOST_FRAMES + INNERMOST_FRAMES) + 10
    assert "frames left out ...]" in text
    assert elapsed < 2.0, f"{elapsed:.2f} s to log one RecursionError"


def test_the_outermost_and_innermost_frames_are_kept_and_the_rest_counted():
    try:
        ping(0)
    except RecursionError as error:
        depth = len(_frames(error))
        text = format_exception((type(error), error, error.__traceback__))

    assert text.count("in ping") + text.count("in pong") == OUTERMOST_FRAMES + INNERMOST_FRAMES - 1
    assert f"[... {depth - OUTERMOST_FRAMES - INNERMOST_FRAMES} frames left out ...]" in text
    assert text.index("test_the_outermost_and_innermost") < text.index("frames left out")


def test_a_chained_exception_has_each_of_its_stacks_bounded():
    try:
        try:
            ping(0)
        except RecursionError as error:
            raise ValueError("could not parse the body") from error
    except ValueError as error:
        text = format_exception((type(error), error, error.__traceback__))

    assert text.count("frames left out") == 1
    assert "The above exception was the direct cause" in text
    assert text.rstrip().endswith("ValueError: could not parse the body")


def _frames(error: BaseException) -> list[object]:
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames
