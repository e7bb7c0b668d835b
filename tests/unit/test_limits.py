"""What every value and id must be to enter: storable in Postgres jsonb and text columns,
sendable as AMQP short strings, within the nesting and size limits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import Envelope, EventRaised, FailureDetails, OrchestratorMessage
from contracts.limits import (
    STORED,
    Limits,
    ValueRefusedError,
    _Checker,
    check_instance_id,
    check_json_value,
    check_short_string,
)
from contracts.values import to_json_value

SMALL = Limits(max_depth=3, max_value_bytes=100)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=25
)


def compact_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


def storable_text(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def strings_of(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(s for item in value.values() for s in strings_of(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return [value] if isinstance(value, str) else []


def refusal(value: Any, limits: Limits = SMALL) -> str | None:
    try:
        check_json_value(value, "the input", limits)
    except ValueRefusedError as error:
        return str(error)
    return None


# --- what is refused, and how the refusal reads ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ok\x00", "it is a string holding U+0000, which Postgres cannot store"),
        ({"a": ["x", "y\x00"]}, "$.a[1] is a string holding U+0000"),
        ({"k\x00": 1}, "it has a key holding U+0000"),
        (["\ud800"], "$[0] is a string holding a lone surrogate"),
        ({"n": float("inf")}, "$.n is the number inf, which JSON cannot hold"),
        (float("nan"), "it is the number nan"),
        (10**5000, "it is an integer of more than 4300 digits"),
        # Fewer bits than a bit-length test caught, more digits than Python converts to text.
        ([-(10**4300)], "$[0] is an integer of more than 4300 digits"),
        (2**14300, "it is an integer of more than 4300 digits"),
        ({"odd key": {1, 2}}, "$['odd key'] is a set, which is not JSON data"),
        ([[[["deep"]]]], "$[0][0][0] nests deeper than 3 levels (DF_MAX_JSON_DEPTH)"),
        ("x" * 101, "its JSON text is 103 bytes, more than the limit of 100 (DF_MAX_VALUE_BYTES)"),
    ],
    ids=[
        "nul",
        "nested-nul",
        "nul-key",
        "surrogate",
        "infinity",
        "nan",
        "huge-integer",
        "4301-digits",
        "14301-bits",
        "set",
        "too-deep",
        "too-large",
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_naming_what_and_where(
    value: Any, problem: str
) -> None:
    message = refusal(value)
    assert message is not None
    assert message.startswith("the input cannot be stored: ")
    assert problem in message


def test_an_integer_of_4300_digits_is_taken_negative_or_not() -> None:
    largest = 10**4300 - 1

    assert refusal([largest, -largest], Limits()) is None


def test_a_value_at_the_limits_is_accepted() -> None:
    assert refusal([[["three levels"]]]) is None
    at_limit = "x" * 98  # 100 bytes with its quotes
    assert compact_size(at_limit) == 100
    assert refusal(at_limit) is None
    assert refusal({"é": "€" * 10, "n": [1, 2.5, None, True]}) is None


def test_a_deep_refusal_does_not_spell_out_every_level() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(100):
        inner.append([])
        inner = inner[0]
    message = refusal(deep, Limits())
    assert message is not None
    assert "$[0][0][0]…[0][0][0] nests deeper than 64 levels" in message


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_a_value_is_refused_exactly_when_a_layer_after_could_not_take_it(value: Any) -> None:
    expected_ok = (
        all(storable_text(text) for text in strings_of(value))
        and nesting(value) <= SMALL.max_depth
        and compact_size_or_none(value) is not None
        and compact_size_or_none(value) <= SMALL.max_value_bytes  # type: ignore[operator]
    )
    assert (refusal(value) is None) == expected_ok


def compact_size_or_none(value: Any) -> int | None:
    try:
        return compact_size(value)
    except UnicodeEncodeError:
        return None


@settings(max_examples=400, deadline=None)
@given(json_values.filter(lambda v: all(storable_text(t) for t in strings_of(v))))
def test_the_walk_measures_the_compact_json_text_exactly(value: Any) -> None:
    checker = _Checker("the input", Limits(max_depth=1000, max_value_bytes=10**9))
    checker.check(value)
    assert checker.size == compact_size(value)


# --- ids and names ---------------------------------------------------------------------------


def test_a_short_string_is_at_most_255_bytes_in_utf8() -> None:
    check_short_string("a" * 255, "the id")
    check_short_string("é" * 127, "the id")  # 254 bytes
    with pytest.raises(ValueRefusedError, match="256 bytes in UTF-8, more than the 255"):
        check_short_string("a" * 256, "the id")
    with pytest.raises(ValueRefusedError, match="256 bytes"):
        check_short_string("😀" * 64, "the id")
    with pytest.raises(ValueRefusedError, match="U\\+0000"):
        check_short_string("a\x00", "the id")
    with pytest.raises(ValueRefusedError, match="lone surrogate"):
        check_short_string("a\udc00", "the id")


@pytest.mark.parametrize(
    ("instance_id", "problem"),
    [
        ("", "it is empty"),
        ("@counter", "starts with @"),
        ("a/b", "/, \\, #, ? or a control character"),
        ("a\tb", "control character"),
        ("a" * 256, "more than the 255"),
    ],
)
def test_an_instance_id_follows_durable_functions_rules_within_amqp_limits(
    instance_id: str, problem: str
) -> None:
    with pytest.raises(ValueRefusedError, match=problem.replace("\\", "\\\\").replace("?", "\\?")):
        check_instance_id(instance_id)


# --- where values enter ----------------------------------------------------------------------


def test_orchestrator_code_values_are_refused_where_they_are_produced() -> None:
    with pytest.raises(ValueRefusedError, match=r"the custom status cannot be stored: .*U\+0000"):
        to_json_value({"note": "a\x00"}, "the custom status")
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueRefusedError, match="nests deeper than 64 levels"):
        to_json_value(cyclic, "the input of activity 'echo'")
    with pytest.raises(TypeError, match=r"the output is not JSON-serializable: .*key 1"):
        to_json_value({1: "x"}, "the output")


def _envelope(**fields: Any) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "instance_id": "order-1",
        "correlation_id": "order-1",
        "type": "EventRaised",
        "sent_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def _event(data: Any) -> dict[str, Any]:
    return {
        "event_type": "EventRaised",
        "timestamp": datetime.now(UTC).isoformat(),
        "name": "go",
        "input": data,
    }


def test_a_message_whose_value_cannot_be_stored_is_invalid() -> None:
    raw = json.dumps({"envelope": _envelope(), "body": _event({"note": "ok\x00"})})
    with pytest.raises(ValidationError, match=r"body\.EventRaised\.input"):
        OrchestratorMessage.model_validate_json(raw)


def test_a_message_whose_correlation_id_is_no_short_string_is_invalid() -> None:
    raw = json.dumps({"envelope": _envelope(correlation_id="c" * 300), "body": _event(None)})
    with pytest.raises(ValidationError, match="correlation_id cannot be stored: it is 300 bytes"):
        OrchestratorMessage.model_validate_json(raw)


def test_what_the_event_store_holds_still_loads() -> None:
    # Stored before the checks existed: the instance must load (and then fail with a clear
    # reason when it is written further), not be impossible to read.
    raw = json.dumps(_event("ok\x00"))
    with pytest.raises(ValidationError):
        EventRaised.model_validate_json(raw)
    assert EventRaised.model_validate_json(raw, context=STORED).input == "ok\x00"


def test_a_failure_is_recorded_whatever_its_message_holds() -> None:
    failure = FailureDetails(
        error_type="ValueError", message="bad \x00 byte \ud800", stack_trace="x" * 100_000
    )
    assert failure.message == "bad \\u0000 byte \\ud800"
    assert failure.stack_trace is not None
    assert len(failure.stack_trace) < 70_000
    assert "characters left out" in failure.stack_trace
    check_json_value(failure.model_dump(mode="json"), "the failure")


def test_envelope_ids_are_checked_once_for_all_four() -> None:
    with pytest.raises(ValidationError, match="type cannot be stored: it holds U\\+0000"):
        Envelope.model_validate(_envelope(type="Event\x00Raised"))
    Envelope.model_validate(_envelope(instance_id="é" * 127))


def test_a_message_property_is_cut_to_fit_a_short_string() -> None:
    from durable.broker import short_string

    assert short_string("order-1") == "order-1"
    assert short_string("c" * 300) == "c" * 255
    cut = short_string("é" * 200)
    assert cut == "é" * 127
    assert len(cut.encode()) <= 255
    assert short_string("a\udc00b") == "a?b"
