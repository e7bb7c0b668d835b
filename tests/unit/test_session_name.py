"""The name an orchestrator member's database sessions carry (``application_name``), by which
the other members find them once it has lapsed: Postgres keeps 63 bytes of printable ASCII,
so a name that would not survive that intact is replaced by a digest."""

from __future__ import annotations

from durable.store.leases import session_name


def test_a_short_name_is_readable() -> None:
    assert session_name("prod", "host-12-ab12cd") == "durable orchestrator host-12-ab12cd@prod"


def test_a_long_or_non_ascii_name_becomes_a_digest_that_fits_and_tells_members_apart() -> None:
    long_member = "a-very-long-host-name.example.internal-123456-abcdef"
    names = {
        session_name("prod", long_member),
        session_name("prod", long_member + "x"),
        session_name("staging", long_member),
        session_name("prod", "hôte-1"),
    }
    assert len(names) == 4
    for name in names:
        assert name.startswith("durable orchestrator ")
        assert len(name.encode()) <= 63
        assert name.isascii()
    assert session_name("prod", long_member) == session_name("prod", long_member)
