"""``DF_AMQP_URL`` as a list of the nodes of one cluster: reading it, the order a connection
tries the nodes in, the jittered pauses, and keeping every node's password out of messages."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from durable.broker_nodes import heartbeat_of, jittered, node_urls, rotation
from durable.redaction import Redactor, hide_password, mask_url
from durable.settings import CommonSettings

NODES = "amqp://u:pw-one@10.0.0.1:5672/,amqp://u:pw-two@10.0.0.2:5672/, amqps://u:pw-three@h3/"


def test_a_list_gives_each_node_in_its_order_without_the_spaces_around_it():
    assert node_urls(NODES) == [
        "amqp://u:pw-one@10.0.0.1:5672/",
        "amqp://u:pw-two@10.0.0.2:5672/",
        "amqps://u:pw-three@h3/",
    ]


def test_a_single_url_is_a_list_of_one():
    assert node_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("", "no broker URL given"),
        ("amqp://a/,,amqp://b/", "item 2 of 3 ('') is empty"),
        ("amqp://a/,", "item 2 of 2 ('') is empty"),
        ("amqp://u:secret@a/,http://u:secret@b/", "item 2 of 2 ('http://***@b/') is not an amqp"),
        ("amqp:///vhost", "names no host"),
        ("amqp://u:secret@a:99999/", "cannot be read"),
        ("amqp://a/,amqp://b/?heartbeat=soon", "item 2 of 2 ('amqp://b/?heartbeat=soon') has a"),
    ],
)
def test_a_bad_list_is_refused_naming_the_item_and_what_is_wrong(setting, said):
    with pytest.raises(ValueError, match=re.escape(said)) as refused:
        node_urls(setting)
    assert "secret" not in str(refused.value)


def test_the_settings_refuse_a_bad_list_at_start_up_without_showing_its_passwords():
    with pytest.raises(ValidationError) as refused:
        CommonSettings(amqp_url="amqp://u:secret@a/,amqp://u:secret@b:port/")
    message = str(refused.value)
    assert "amqp_url" in message
    assert "item 2 of 2" in message
    assert "secret" not in message


def test_the_heartbeat_is_read_from_each_url_of_its_own():
    first, second = node_urls("amqp://a/?heartbeat=3,amqp://b/")
    assert heartbeat_of(first) == 3
    assert heartbeat_of(second) is None


def test_a_rotation_tries_every_node_once_from_where_it_starts():
    urls = ["a", "b", "c"]
    assert rotation(urls, start=0) == ["a", "b", "c"]
    assert rotation(urls, start=2) == ["c", "a", "b"]
    assert rotation(urls, start=4) == ["b", "c", "a"]


def test_rotations_start_at_every_node_so_processes_spread_over_the_cluster():
    urls = ["a", "b", "c"]
    starts = {rotation(urls)[0] for _ in range(300)}
    assert starts == {"a", "b", "c"}
    assert all(sorted(rotation(urls)) == urls for _ in range(20))


def test_a_jittered_pause_stays_within_half_and_one_and_a_half_times_its_mean():
    pauses = [jittered(2.0) for _ in range(500)]
    assert all(1.0 <= pause <= 3.0 for pause in pauses)
    assert len({round(pause, 3) for pause in pauses}) > 100  # not all alike


def test_mask_url_masks_the_userinfo_of_each_url_of_a_list():
    assert mask_url(NODES) == (
        "amqp://***@10.0.0.1:5672/,amqp://***@10.0.0.2:5672/, amqps://***@h3/"
    )


def test_messages_name_every_node_without_its_password():
    assert hide_password(NODES) == (
        "amqp://u:***@10.0.0.1:5672/,amqp://u:***@10.0.0.2:5672/, amqps://u:***@h3/"
    )


def test_the_settings_dump_and_the_log_redactor_hide_every_nodes_password():
    settings = CommonSettings(amqp_url=NODES)
    dump = repr(settings)
    assert "pw-" not in dump
    redactor = Redactor.from_settings(settings)
    assert redactor.redact("auth failed: pw-two, pw-three") == "auth failed: ***, ***"
