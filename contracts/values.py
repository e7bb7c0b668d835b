"""Turning Python values into the JSON values messages and events carry.

Converting where a value is produced (``call_activity``, ``set_custom_status``, an activity's
``return``) means a value that cannot be stored fails there, with a message naming what was
being passed, instead of failing later in a service: not only a value JSON cannot hold, but
one that a later layer could not store or send (``contracts.limits``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, JsonValue

from contracts.limits import ValueRefusedError, check_json_value, current


def to_json_value(value: Any, what: str) -> JsonValue:
    """``value`` as plain JSON (dicts, lists, str, int, float, bool, None).

    Pydantic models and dataclasses are converted; anything else that JSON cannot hold raises
    ``TypeError`` naming ``what`` (e.g. "the input of activity 'SayHello'"), and a value that
    could not be stored or sent (``contracts.limits.check_json_value``: U+0000 in a string,
    nesting or size over the limits, ...) raises ``ValueRefusedError``, a ``ValueError``.
    """
    max_depth = current().max_depth
    try:
        converted = _convert(value, max_depth)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None
    except _TooDeepError:
        # Refused while converting: a structure nested without end (or a cycle) would
        # otherwise exhaust the stack before the check below could refuse it.
        raise ValueRefusedError(
            what, f"it nests deeper than {max_depth} levels (DF_MAX_JSON_DEPTH)"
        ) from None
    check_json_value(converted, what)
    return converted


class _TooDeepError(Exception):
    pass


def _convert(value: Any, depth: int) -> JsonValue:
    if depth < 0:
        raise _TooDeepError
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value!r} has no JSON representation")
        return value
    if isinstance(value, BaseModel):
        # Pydantic's JSON mode keeps NaN and infinity as floats; check what it produced.
        return _convert(value.model_dump(mode="json"), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(dataclasses.asdict(value), depth)
    if isinstance(value, list | tuple):
        return [_convert(item, depth - 1) for item in value]
    if isinstance(value, Mapping):
        result: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dictionary key {key!r} is not a string")
            result[key] = _convert(item, depth - 1)
        return result
    raise TypeError(f"a {type(value).__name__} value ({value!r:.80}) has no JSON representation")
