"""The hosts a ``DF_DATABASE_URL`` names, which the pool tries one at a time
(``durable.store.hosts``)."""

from __future__ import annotations

import pytest

from durable.store.hosts import url_hosts


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("postgresql://u:p@db:5432/d", [("db", 5432)]),
        ("postgresql://u@db/d", [("db", None)]),
        (
            "postgresql://u:p%40ss@h1:5432,h2:5433/d?target_session_attrs=read-write",
            [("h1", 5432), ("h2", 5433)],
        ),
        ("postgresql://u@[::1]:5432,[fe80::2]/d", [("::1", 5432), ("fe80::2", None)]),
        ("postgresql:///d?host=/run/postgresql", []),
    ],
)
def test_the_hosts_of_a_url_in_order(url: str, hosts: list[tuple[str, int | None]]) -> None:
    assert url_hosts(url) == hosts
