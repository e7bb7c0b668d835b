"""What the SDK's broker code goes through that a process may count: a publisher
reconnecting, a cluster node that does not answer, messages dead-lettered.

The SDK is a leaf (ADR 25): it imports no service and no metrics library. The services count
these as Prometheus metrics by setting an observer (``services.common.metrics`` does when it
is imported); without one, nothing is counted. An observer is called on the event loop, where
the event happens, and must not raise or block.
"""

from __future__ import annotations


class BrokerObserver:
    """Told of broker events; this one ignores them (override what you count)."""

    def publisher_reconnecting(self) -> None:
        """A publish found its connection or channel gone and tries a fresh one."""

    def node_unreachable(self) -> None:
        """A node of the cluster did not answer a connection attempt."""

    def dead_lettered(self, queue: str, count: int) -> None:
        """``count`` messages of ``queue`` were confirmed in its dead-letter queue."""


_observer = BrokerObserver()


def observe_broker(observer: BrokerObserver) -> None:
    """Have ``observer`` told of this process's broker events from now on."""
    global _observer
    _observer = observer


def broker_observer() -> BrokerObserver:
    """The observer of this process's broker events."""
    return _observer
