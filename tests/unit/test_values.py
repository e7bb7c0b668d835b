"""to_json_value: what orchestrators and activities may pass, and clear errors otherwise."""

from __future__ import annotations

import dataclasses
import math

import pytest
from pydantic import BaseModel

from contracts.values import to_json_value


class Proposal(BaseModel):
    id: int
    title: str
    amount: float


@dataclasses.dataclass
class Reviewer:
    name: str
    levels: tuple[int, ...]


def test_plain_json_values_pass_through():
    value = {"a": [1, 2.5, "x", True, None], "b": {}}

    assert to_json_value(value, "the input") == value


def test_pydantic_models_become_their_json_form():
    proposal = Proposal(id=7, title="New roof", amount=1200.5)

    assert to_json_value(proposal, "the input") == {"id": 7, "title": "New roof", "amount": 1200.5}


def test_dataclasses_become_dicts_with_tuples_as_lists():
    reviewer = Reviewer(name="ann", levels=(1, 2))

    assert to_json_value(reviewer, "the input") == {"name": "ann", "levels": [1, 2]}


def test_nested_structures_are_converted_all_the_way_down():
    value = {"proposal": Proposal(id=1, title="t", amount=0), "chain": ({"r": Reviewer("bo", ())},)}

    assert to_json_value(value, "the input") == {
        "proposal": {"id": 1, "title": "t", "amount": 0.0},
        "chain": [{"r": {"name": "bo", "levels": []}}],
    }


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_raise_naming_what(number):
    with pytest.raises(TypeError, match=r"^the custom status is not JSON-serializable"):
        to_json_value({"score": number}, "the custom status")


def test_non_string_dictionary_keys_raise_naming_what():
    with pytest.raises(TypeError, match=r"the input of activity 'x'.*key 1 is not a string"):
        to_json_value({1: "one"}, "the input of activity 'x'")


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", Proposal])
def test_arbitrary_objects_raise_naming_what_and_the_type(value):
    with pytest.raises(TypeError, match=r"the orchestrator's output.*has no JSON representation"):
        to_json_value([value], "the orchestrator's output")


class Measurement(BaseModel):
    value: float


def test_a_pydantic_model_holding_a_non_finite_float_raises_naming_what():
    with pytest.raises(
        TypeError, match=r"^the input of activity 'record' is not JSON-serializable"
    ):
        to_json_value(Measurement(value=math.nan), "the input of activity 'record'")
