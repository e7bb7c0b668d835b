"""Property-based tests (Hypothesis): arbitrary JSON values through the whole path of the
session's real services, as a start's input, an event's data, an activity's input and
result, a custom status and an output.

The property, for every value: either the boundary where it enters refuses it with a clear
error (HTTP 400 whose message names the value and the problem, or ``ValueRefusedError`` /
``TypeError`` from the Python client, or a Failed instance whose failure names them when
orchestrator or activity code made it) and nothing was created or sent; or it is taken and
comes back exactly, and the instance ends Completed within a deadline, never left Pending or
Running. Which values must be refused is the README's rules, restated in
``tests.helpers.properties``; "exactly" compares numbers by decimal value (Postgres ``jsonb``
writes ``1e23`` back as ``100000000000000000000000`` and ``-0.0`` as ``0``) and everything
else as identical: strings, key sets, the order of arrays (see that module).

Each example is a batch of values whose instances run at once and are checked together, so
per-instance latency does not add up; a failing batch shrinks to the value that fails.
Examples are derandomized, so CI runs the same ones every time. Run alone:
``pytest -m properties``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from contracts import OrchestrationStatus
from contracts.limits import ValueRefusedError
from durable.client import DurableClient
from tests.conftest import unique
from tests.helpers.http import PREFIX, poll_until_ended
from tests.helpers.properties import (
    DEADLINE_SECONDS,
    MAX_DEPTH,
    PROPERTY_SETTINGS,
    depth,
    json_text,
    json_values,
    read_json_text,
    run_batch,
    same_json,
    value_problems,
)

pytestmark = [pytest.mark.e2e, pytest.mark.properties]


batches = st.lists(json_values(), min_size=1, max_size=10)

JSON = {"Content-Type": "application/json"}

HTTP_WORDS = {
    # NaN, Infinity and lone surrogates cannot be written as JSON at all; JSON's parser
    # takes integers of up to 4,300 digits, as Python does.
    "not finite": ("Invalid JSON content",),
    "lone surrogate": ("Invalid JSON content",),
    "U+0000": ("holding U+0000",),
    "too deep": (f"nests deeper than {MAX_DEPTH} levels",),
    "too many digits": ("Invalid JSON content", "number out of range"),
}
PYTHON_WORDS = {
    "not finite": ("has no JSON representation",),
    "lone surrogate": ("holding a lone surrogate",),
    "U+0000": ("holding U+0000",),
    "too deep": (f"nests deeper than {MAX_DEPTH} levels",),
    "too many digits": ("more than 4300 digits",),
}


def label(value: Any) -> str:
    """The value as its JSON text (ASCII, so every character shows), cut short."""
    text = json_text(value)
    return f"the value {text[:2000]}{'…' if len(text) > 2000 else ''}"


def outcome(problems: set[str]) -> None:
    """Tell Hypothesis's statistics (``--hypothesis-show-statistics``) what became of a value."""
    event(f"refused: {', '.join(sorted(problems))}" if problems else "taken")


def names_a_problem(message: str, problems: set[str], words: dict[str, tuple[str, ...]]) -> bool:
    """Whether ``message`` names one of the value's ``problems`` (a value with several may be
    refused for any of them)."""
    return any(word in message for problem in problems for word in words[problem])


# --- start input, custom status, activity input and result, event data, output: HTTP ---------


@PROPERTY_SETTINGS
@given(values=batches)
async def test_any_value_sent_over_http_is_refused_with_400_or_comes_back_exactly(
    http: httpx.AsyncClient, client: DurableClient, values: list[Any]
) -> None:
    await run_batch([(label(value), value_over_http(http, client, value)) for value in values])


async def value_over_http(http: httpx.AsyncClient, client: DurableClient, value: Any) -> None:
    text = json_text(value)
    sent = read_json_text(text)
    problems = value_problems(sent)
    outcome(problems)
    instance_id = unique("prop-http-")
    start_url = f"{PREFIX}/orchestrators/round_trip/{instance_id}"

    started = await http.post(start_url, content=text, headers=JSON)

    if problems:
        assert started.status_code == 400, (text[:300], started.text[:300])
        message = started.json()["message"]
        assert "the input" in message, message
        assert names_a_problem(message, problems, HTTP_WORDS), (problems, message)
        assert await client.get_status(instance_id) is None
        await refused_as_event_data_over_http(http, text, problems)
        return
    assert started.status_code == 202, (text[:300], started.text[:300])
    raised = await http.post(
        f"{PREFIX}/instances/{instance_id}/raiseEvent/Value", content=text, headers=JSON
    )
    assert raised.status_code == 202, raised.text
    ended = (
        await poll_until_ended(http, started.json()["statusQueryGetUri"], DEADLINE_SECONDS)
    ).json()
    assert same_json(sent, ended["input"]), (sent, ended["input"])
    assert same_json(sent, ended["customStatus"]), (sent, ended["customStatus"])
    if depth(sent) == MAX_DEPTH:
        # The output holds the value one level down, one more than the limit allows.
        assert ended["runtimeStatus"] == "Failed", ended
        assert "the orchestrator's output cannot be stored" in ended["output"], ended["output"]
        return
    assert ended["runtimeStatus"] == "Completed", ended
    seen = {"input": sent, "activity": sent, "event": sent}
    assert same_json(seen, ended["output"]), (seen, ended["output"])


async def refused_as_event_data_over_http(
    http: httpx.AsyncClient, text: str, problems: set[str]
) -> None:
    """The value is refused as an event's data too; the instance waiting for it goes on."""
    started = await http.post(f"{PREFIX}/orchestrators/round_trip", json=None)
    assert started.status_code == 202, started.text
    event_url = f"{PREFIX}/instances/{started.json()['id']}/raiseEvent/Value"

    refused = await http.post(event_url, content=text, headers=JSON)

    assert refused.status_code == 400, (text[:300], refused.text[:300])
    message = refused.json()["message"]
    assert "the event's data" in message, message
    assert names_a_problem(message, problems, HTTP_WORDS), (problems, message)
    accepted = await http.post(event_url, content=b"null", headers=JSON)
    assert accepted.status_code == 202, accepted.text
    ended = (
        await poll_until_ended(http, started.json()["statusQueryGetUri"], DEADLINE_SECONDS)
    ).json()
    assert ended["runtimeStatus"] == "Completed", ended
    assert ended["output"] == {"input": None, "activity": None, "event": None}


# --- the same with the Python client -----------------------------------------------------------


@PROPERTY_SETTINGS
@given(values=batches)
async def test_any_value_given_to_the_python_client_is_refused_or_comes_back_exactly(
    client: DurableClient, values: list[Any]
) -> None:
    await run_batch(
        [(label(value), value_through_python_client(client, value)) for value in values]
    )


async def value_through_python_client(client: DurableClient, value: Any) -> None:
    problems = value_problems(value)
    outcome(problems)
    instance_id = unique("prop-python-")

    if problems:
        with pytest.raises((ValueRefusedError, TypeError)) as refused:
            await client.start_new("round_trip", instance_id, value)
        assert "the orchestration input" in str(refused.value)
        assert names_a_problem(str(refused.value), problems, PYTHON_WORDS), (
            problems,
            str(refused.value),
        )
        assert await client.get_status(instance_id) is None
        await refused_as_event_data_by_python_client(client, value, problems)
        return
    await client.start_new("round_trip", instance_id, value)
    await client.raise_event(instance_id, "Value", value)
    ended = await client.wait_for_completion(instance_id, timeout=DEADLINE_SECONDS)
    assert same_json(value, ended.input), (value, ended.input)
    assert same_json(value, ended.custom_status), (value, ended.custom_status)
    if depth(value) == MAX_DEPTH:
        assert ended.runtime_status is OrchestrationStatus.FAILED, ended
        assert ended.failure is not None
        assert "the orchestrator's output cannot be stored" in ended.failure.message
        return
    assert ended.runtime_status is OrchestrationStatus.COMPLETED, ended
    seen = {"input": value, "activity": value, "event": value}
    assert same_json(seen, ended.output), (seen, ended.output)


async def refused_as_event_data_by_python_client(
    client: DurableClient, value: Any, problems: set[str]
) -> None:
    instance_id = await client.start_new("round_trip", unique("prop-python-event-"), None)

    with pytest.raises((ValueRefusedError, TypeError)) as refused:
        await client.raise_event(instance_id, "Value", value)

    assert "the data of event 'Value'" in str(refused.value)
    assert names_a_problem(str(refused.value), problems, PYTHON_WORDS), str(refused.value)
    await client.raise_event(instance_id, "Value", None)
    ended = await client.wait_for_completion(instance_id, timeout=DEADLINE_SECONDS)
    assert ended.runtime_status is OrchestrationStatus.COMPLETED, ended
    assert ended.output == {"input": None, "activity": None, "event": None}


# --- values orchestrator and activity code make ------------------------------------------------

PLACES = {
    "custom status": "the custom status",
    "activity input": "the input of activity 'echo'",
    "activity result": "the output of activity 'decode_json'",
    "output": "the orchestrator's output",
}


@PROPERTY_SETTINGS
@given(
    made=st.lists(
        st.tuples(json_values(huge_integers=False), st.sampled_from(sorted(PLACES))),
        min_size=1,
        max_size=8,
    )
)
async def test_any_value_code_passes_on_fails_its_instance_naming_it_or_comes_back_exactly(
    http: httpx.AsyncClient, made: list[tuple[Any, str]]
) -> None:
    await run_batch(
        [(f"{label(value)} via {via}", value_made_by_code(http, value, via)) for value, via in made]
    )


async def value_made_by_code(http: httpx.AsyncClient, value: Any, via: str) -> None:
    """The code reads the value from JSON text with Python's ``json`` (which takes NaN, lone
    surrogates and U+0000), so it can be anything; it is refused where the code passes it on."""
    text = json_text(value)
    made = read_json_text(text)
    problems = value_problems(made)
    outcome(problems)

    started = await http.post(
        f"{PREFIX}/orchestrators/decoded_round_trip", json={"text": text, "via": via}
    )

    assert started.status_code == 202, started.text
    ended = (
        await poll_until_ended(http, started.json()["statusQueryGetUri"], DEADLINE_SECONDS)
    ).json()
    if problems:
        assert ended["runtimeStatus"] == "Failed", (made, ended)
        assert PLACES[via] in ended["output"], ended["output"]
        assert names_a_problem(ended["output"], problems, PYTHON_WORDS), (
            problems,
            ended["output"],
        )
        return
    assert ended["runtimeStatus"] == "Completed", (made, ended)
    assert same_json(made, ended["output"]), (made, ended["output"])
    if via == "custom status":
        assert same_json(made, ended["customStatus"]), (made, ended["customStatus"])
