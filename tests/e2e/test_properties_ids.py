"""Property-based tests (Hypothesis): arbitrary strings as instance ids (in the HTTP API's
URLs and given to the Python client), event names, and the instance ids orchestrator code
gives its sub-orchestrations, on the session's real services.

The property, for every string: either the boundary refuses it with a clear error (HTTP 400
whose message names the id or name and the problem, ``ValueRefusedError`` from the Python
client, or a Failed instance whose failure names the sub-orchestration's id) and nothing was
created or sent; or it is taken and the instance ends Completed within a deadline, reporting
the same id and data it was given. Which strings must be refused is the README's rules
(``tests.helpers.properties.id_problems``, ``name_problems``).

A URL cannot carry every string: a lone surrogate has no UTF-8 form to percent-encode, and
an empty segment is no segment; the HTTP tests leave those to the Python client's. Each
example is a batch of instances run at once, as in ``test_properties_values``. Run alone:
``pytest -m properties``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from contracts import OrchestrationStatus
from contracts.limits import ValueRefusedError
from durable.client import DurableClient, ExistingInstancePolicy
from tests.helpers.http import PREFIX, poll_until_ended
from tests.helpers.properties import (
    DEADLINE_SECONDS,
    PROPERTY_SETTINGS,
    any_text,
    id_problems,
    name_problems,
    run_batch,
)

pytestmark = [pytest.mark.e2e, pytest.mark.properties]


plain_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
"""Text of any characters but control characters and surrogates: ids as people write them."""

_URL_PIECES = st.sampled_from(["/", "\\", "#", "?", "@", ".", "..", "%", "%2F", "+", " ", "\x00"])
url_text = st.lists(
    plain_text | st.text(st.characters(), min_size=1, max_size=8) | _URL_PIECES,
    min_size=1,
    max_size=4,
).map("".join)
"""Any text a URL can carry (no lone surrogates, not empty), with the characters URLs treat
specially."""

long_text = st.text(
    st.characters(min_codepoint=0x800, exclude_categories=("Cs",)), min_size=60, max_size=90
)
"""Text of 180 to 360 UTF-8 bytes, around the 255 an id may have."""

url_ids = plain_text | plain_text | url_text | long_text
"""Instance ids and event names for a URL: half plain, the rest odd or long."""

WORDS = {
    "empty": ("it is empty",),
    "U+0000": ("U+0000",),
    "lone surrogate": ("lone surrogate",),
    "too long": ("more than the 255 allowed",),
    "starts with @": ("starts with @ (reserved for entities)",),
    # In a URL, a / is refused before any route reads the id or the name.
    "forbidden character": ("holds /, \\, #, ? or a control character", "escaped / (%2F)"),
    "escaped /": ("escaped / (%2F)",),
}


def names_a_problem(message: str, problems: set[str]) -> bool:
    """Whether ``message`` names one of ``problems`` (an id with several may be refused for
    any of them)."""
    return any(word in message for problem in problems for word in WORDS[problem])


def segment(text: str) -> str:
    """``text`` as one URL path segment: percent-encoded, dots too, so that ``.`` and
    ``..`` are not taken for a path's own steps."""
    return quote(text, safe="").replace(".", "%2E")


def code_points(text: str | None) -> list[int] | None:
    """A string as JSON that is always storable: orchestrator code rebuilds it."""
    return None if text is None else [ord(character) for character in text]


def child_id_problems(child_id: str | None) -> set[str]:
    if not child_id:
        return set()  # None or empty: the default, derived from the parent's id, must do
    return id_problems(child_id)


def label(instance_id: str, event_name: str, child_id: str | None) -> str:
    return f"instance id {instance_id!r}, event name {event_name!r}, child id {child_id!r}"


def distinct(examples: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
    """The examples of a batch whose instance id and child id are no earlier example's, so
    that the batch's instances do not meet (a child may still be given its parent's id)."""
    kept, seen = [], set()
    for instance_id, event_name, child_id in examples:
        ids = {instance_id} | ({child_id} if child_id is not None else set())
        if not ids & seen:
            kept.append((instance_id, event_name, child_id))
            seen |= ids
    return kept


# --- over HTTP ---------------------------------------------------------------------------------


child_ids = st.none() | plain_text | any_text | long_text
"""What orchestrator code passes as a sub-orchestration's instance id (None: the default)."""

http_examples = st.lists(st.tuples(url_ids, url_ids, child_ids), min_size=1, max_size=10)


@PROPERTY_SETTINGS
@given(examples=http_examples)
async def test_any_instance_id_and_event_name_in_a_url_is_refused_with_400_or_works(
    http: httpx.AsyncClient, client: DurableClient, examples: list[tuple[str, str, str | None]]
) -> None:
    await run_batch(
        [
            (label(*example), names_over_http(http, client, *example))
            for example in distinct(examples)
        ]
    )


async def names_over_http(
    http: httpx.AsyncClient,
    client: DurableClient,
    instance_id: str,
    event_name: str,
    child_id: str | None,
) -> None:
    problems = id_problems(instance_id)
    event("id refused" if problems else "id taken")
    spec = {"event": code_points(event_name), "child": code_points(child_id)}

    started = await http.post(
        f"{PREFIX}/orchestrators/named_round_trip/{segment(instance_id)}", json=spec
    )

    if problems:
        assert started.status_code == 400, started.text
        message = started.json()["message"]
        assert "instance id" in message, message
        assert names_a_problem(message, problems), (problems, message)
        if "\x00" not in instance_id:  # Postgres could not even hold it
            assert await client.get_status(instance_id) is None
        return
    assert started.status_code == 202, started.text
    async with ended_in_any_case(client, instance_id):
        assert started.json()["id"] == instance_id
        status_url = started.json()["statusQueryGetUri"]
        event_url = f"{PREFIX}/instances/{segment(instance_id)}/raiseEvent/{segment(event_name)}"

        raised = await http.post(event_url, json=code_points(event_name))

        name_refused = name_problems(event_name) | ({"escaped /"} if "/" in event_name else set())
        if name_refused:
            assert raised.status_code == 400, raised.text
            message = raised.json()["message"]
            assert names_a_problem(message, name_refused), (name_refused, message)
            terminated = await http.post(f"{PREFIX}/instances/{segment(instance_id)}/terminate")
            assert terminated.status_code == 202, terminated.text
            ended = (await poll_until_ended(http, status_url, DEADLINE_SECONDS)).json()
            assert ended["runtimeStatus"] == "Terminated", ended
            return
        assert raised.status_code == 202, raised.text
        ended = (await poll_until_ended(http, status_url, DEADLINE_SECONDS)).json()
        assert ended["instanceId"] == instance_id
        check_outcome(ended["runtimeStatus"], ended["output"], instance_id, event_name, child_id)


@asynccontextmanager
async def ended_in_any_case(client: DurableClient, instance_id: str) -> AsyncIterator[None]:
    """Terminate the instance if a check fails while it runs: Hypothesis runs a failing
    example again to report it, and the id must then be free to start again."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await client.terminate(instance_id, "its test failed")
        raise


def check_outcome(
    runtime_status: str, output: Any, instance_id: str, event_name: str, child_id: str | None
) -> None:
    """Completed with what the instance saw, or Failed naming its child's id."""
    child_problems = child_id_problems(child_id)
    if child_problems:
        assert runtime_status == "Failed", (runtime_status, output)
        assert "the instance id of sub-orchestration 'returns_input'" in output, output
        assert names_a_problem(output, child_problems), (child_problems, output)
    elif child_id == instance_id:
        assert runtime_status == "Failed", (runtime_status, output)
        assert f"instance {instance_id!r} is already running" in output, output
    else:
        assert runtime_status == "Completed", (runtime_status, output)
        data = code_points(event_name)
        assert output == {"instance_id": instance_id, "event": data, "child": data}


# --- with the Python client --------------------------------------------------------------------


python_texts = plain_text | plain_text | any_text | url_text | long_text
python_examples = st.lists(
    st.tuples(python_texts, python_texts, child_ids), min_size=1, max_size=10
)


@PROPERTY_SETTINGS
@given(examples=python_examples)
async def test_any_instance_id_and_event_name_given_to_the_python_client_is_refused_or_works(
    client: DurableClient, examples: list[tuple[str, str, str | None]]
) -> None:
    await run_batch(
        [
            (label(*example), names_through_python_client(client, *example))
            for example in distinct(examples)
        ]
    )


async def names_through_python_client(
    client: DurableClient, instance_id: str, event_name: str, child_id: str | None
) -> None:
    problems = id_problems(instance_id)
    event("id refused" if problems else "id taken")
    spec = {"event": code_points(event_name), "child": code_points(child_id)}
    replace = ExistingInstancePolicy.REPLACE_ENDED  # examples may repeat an id that has ended

    if problems:
        with pytest.raises(ValueRefusedError) as refused:
            await client.start_new("named_round_trip", instance_id, spec, if_exists=replace)
        assert str(refused.value).startswith("the instance id cannot be stored: ")
        assert names_a_problem(str(refused.value), problems), (problems, str(refused.value))
        if not problems & {"U+0000", "lone surrogate"}:  # else Postgres could not hold it
            assert await client.get_status(instance_id) is None
        return
    await client.start_new("named_round_trip", instance_id, spec, if_exists=replace)
    async with ended_in_any_case(client, instance_id):
        await named_instance_works(client, instance_id, event_name, child_id)


async def named_instance_works(
    client: DurableClient, instance_id: str, event_name: str, child_id: str | None
) -> None:
    if name_problems(event_name):
        with pytest.raises(ValueRefusedError) as refused:
            await client.raise_event(instance_id, event_name, code_points(event_name))
        assert str(refused.value).startswith("the event name cannot be stored: ")
        assert names_a_problem(str(refused.value), name_problems(event_name))
        await client.terminate(instance_id, "its event cannot be raised")
        ended = await client.wait_for_completion(instance_id, timeout=DEADLINE_SECONDS)
        assert ended.runtime_status is OrchestrationStatus.TERMINATED, ended
        return
    await client.raise_event(instance_id, event_name, code_points(event_name))
    ended = await client.wait_for_completion(instance_id, timeout=DEADLINE_SECONDS)
    assert ended.instance_id == instance_id
    output = ended.failure.message if ended.failure is not None else ended.output
    check_outcome(ended.runtime_status.value, output, instance_id, event_name, child_id)
