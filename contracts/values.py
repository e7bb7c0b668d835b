"""Turning Python values into the JSON values messages and events carry.

Converting where a value is produced (``call_activity``, ``set_custom_status``, an activity's
``return``) means a value that cannot be stored fails there, with a message naming what was
being passed, instead of failing later in a service.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, JsonValue


def to_json_value(value: Any, what: str) -> JsonValue:
    """``value`` as plain JSON (dicts, lists, str, int, float, bool, None).

    Pydantic models and dataclasses are converted; anything else that JSON cannot hold raises
    ``TypeError`` naming ``what`` (e.g. "the input of activity 'SayHello'").
    """
    try:
        return _convert(value)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None


def _convert(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value!r} has no JSON representation")
        return value
    if isinstance(value, BaseModel):
        # Pydantic's JSON mode keeps NaN and infinity as floats; check what it produced.
        return _convert(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(dataclasses.asdict(value))
    if isinstance(value, list | tuple):
        return [_convert(item) for item in value]
    if isinstance(value, Mapping):
        result: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dictionary key {key!r} is not a string")
            result[key] = _convert(item)
        return result
    raise TypeError(f"a {type(value).__name__} value ({value!r:.80}) has no JSON representation")
