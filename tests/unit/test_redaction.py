"""Masking secrets in rendered log text: the configured keys and passwords however they are
spelt, and keys, passwords and userinfo in URLs and headers whoever configured them."""

from __future__ import annotations

import json

import pytest

from durable.redaction import MASK, Redactor, mask_url
from durable.settings import CommonSettings
from services.client.settings import ClientSettings

KEY = "Zx9-management_key+/=0123456789"
OLD_KEY = "rotated-management-key-abcdef"
START_KEY = "start-key-0123456789abcdef"
PASSWORD = "p@ss:w0rd/with#odd%chars"
ENCODED_PASSWORD = "p%40ss%3Aw0rd%2Fwith%23odd%25chars"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor.from_settings(
        ClientSettings(
            management_keys=f" {KEY} ,{OLD_KEY}",
            start_keys=START_KEY,
            database_url=f"postgresql://durable:{ENCODED_PASSWORD}@db:5432/durable",
            amqp_url="amqps://broker-user:broker-pass-42@mq:5671/",
        )
    )


@pytest.mark.parametrize("secret", [KEY, OLD_KEY, START_KEY, PASSWORD, ENCODED_PASSWORD])
def test_every_configured_secret_is_masked_wherever_it_stands(redactor, secret):
    text = f"error: could not use {secret} (see {secret!r})"

    assert redactor.redact(text) == f"error: could not use {MASK} (see '{MASK}')"


QUOTED = 'it\'s a "secret" \\ é'


@pytest.mark.parametrize(
    "spelling",
    [json.dumps(QUOTED)[1:-1], json.dumps(QUOTED, ensure_ascii=False)[1:-1], repr(QUOTED)[1:-1]],
    ids=["json", "json-unicode", "repr"],
)
def test_a_secret_is_masked_as_json_or_a_repr_spells_it(spelling):
    assert spelling != QUOTED
    assert Redactor([QUOTED]).redact(f"x {spelling} y") == f"x {MASK} y"


def test_a_percent_encoded_password_is_masked_in_either_case(redactor):
    assert redactor.redact(f"x {ENCODED_PASSWORD.lower()} y") == f"x {MASK} y"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "GET http://api/runtime/webhooks/durabletask/instances/i?code=any-key-at-all&x=1",
            "GET http://api/runtime/webhooks/durabletask/instances/i?code=***&x=1",
        ),
        (
            '{"statusQueryGetUri": "http://h/i?code=k3y=="}',
            '{"statusQueryGetUri": "http://h/i?code=***"}',
        ),
        ("query_string=b'code=some-key'", "query_string=b'code=***'"),
        ("(b'x-functions-key', b'some-key')", "(b'x-functions-key', b'***')"),
        ("{'X-Functions-Key': 'some-key'}", "{'X-Functions-Key': '***'}"),
        ('"x-functions-key": "some-key"', '"x-functions-key": "***"'),
        ("x-functions-key: some-key", "x-functions-key: ***"),
        ("connect to postgresql://u:pw@db/x failed", "connect to postgresql://***@db/x failed"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://***@127.0.0.1:5672/"),
    ],
)
def test_keys_in_query_strings_and_headers_and_url_userinfo_are_masked_whoever_set_them(
    text, masked
):
    assert Redactor().redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "status_code=500 error_code=E1 http://h/path?page=2 user@example.com",
        '{"event": "orchestration.ended", "status": "Completed", "code": "shipping"}',
    ],
)
def test_lines_without_secrets_are_left_as_they_are(redactor, text):
    assert redactor.redact(text) == text


def test_a_short_password_is_masked_in_its_url_but_not_in_free_text():
    redactor = Redactor.from_settings(CommonSettings(database_url="postgresql://u:abc@db/x"))

    assert redactor.redact("postgresql://u:abc@db/x abc") == "postgresql://***@db/x abc"


def test_where_one_secret_contains_another_the_whole_of_it_is_masked():
    redactor = Redactor(["secret-key", "secret-key-longer"])

    assert redactor.redact("secret-key-longer") == MASK


def test_settings_reprs_do_not_show_the_urls_passwords_or_the_keys():
    settings = ClientSettings(
        management_keys=KEY,
        database_url=f"postgresql://durable:{ENCODED_PASSWORD}@db:5432/durable",
        amqp_url="amqp://broker-user:broker-pass-42@mq:5672/",
    )

    for shown in (repr(settings), str(settings)):
        assert ENCODED_PASSWORD not in shown
        assert "broker-pass-42" not in shown
        assert KEY not in shown
        assert "postgresql://***@db:5432/durable" in shown
    assert settings.database_url.endswith(f":{ENCODED_PASSWORD}@db:5432/durable")


def test_mask_url_masks_only_the_userinfo():
    assert mask_url("amqp://u:p@h:5672/vhost?heartbeat=5") == "amqp://***@h:5672/vhost?heartbeat=5"
    assert mask_url("postgresql://h/db") == "postgresql://h/db"
