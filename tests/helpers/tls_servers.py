"""Servers of a test's own that speak only TLS, with certificates the test makes: a RabbitMQ
node (``RabbitCluster`` of one) with a TLS listener that asks for client certificates, and a
throw-away Postgres cluster with ``ssl = on`` that refuses unencrypted connections. The
machine's own servers and their settings are never touched; both are stopped and removed at
the end, whatever happened.

Certificates come from the ``openssl`` command: a CA, a server certificate for 127.0.0.1 and
``localhost`` signed by it, a client certificate, and a second CA that signed nothing (the
wrong one).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.helpers.pg_cluster import BINARIES, Node, _as_postgres, _free_port
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.rabbit_node import free_port


@dataclass(frozen=True)
class Certificates:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    @property
    def wrong_ca(self) -> str:
        return self.path("wrong-ca.pem")


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)


def _authority(directory: Path, name: str) -> None:
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-subj", f"/CN=durable-rabbit test {name}"),
        *("-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem")),
    )


def _signed(directory: Path, name: str, subject: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={subject}"),
        *("-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.csr")),
    )
    _openssl(
        *("x509", "-req", "-in", str(directory / f"{name}.csr"), "-days", "2"),
        *("-CA", str(directory / "ca.pem"), "-CAkey", str(directory / "ca.key")),
        *("-CAcreateserial", "-out", str(directory / f"{name}.pem")),
        *("-extfile", str(directory / f"{name}.ext")),
    )


@contextlib.contextmanager
def certificates() -> Iterator[Certificates]:
    """A CA, a server and a client certificate it signed, and a wrong CA, in a temporary
    directory readable by the servers' users."""
    directory = Path(tempfile.mkdtemp(prefix="df-tls-"))
    try:
        _authority(directory, "ca")
        _authority(directory, "wrong-ca")
        _signed(directory, "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _signed(directory, "client", "durable-rabbit test client", "extendedKeyUsage=clientAuth\n")
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)
        yield Certificates(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class TlsBroker:
    port: int
    certificates: Certificates

    def url(self, cafile: str | None = None, *, client_certificate: bool = True) -> str:
        """``amqps://`` to the node as guest, trusting ``cafile`` (the right CA by default)."""
        query = f"cafile={quote(cafile or self.certificates.ca)}"
        if client_certificate:
            query += f"&certfile={quote(self.certificates.path('client.pem'))}"
            query += f"&keyfile={quote(self.certificates.path('client.key'))}"
        return f"amqps://guest:guest@127.0.0.1:{self.port}/?{query}"


@contextlib.asynccontextmanager
async def tls_broker(certs: Certificates) -> AsyncIterator[TlsBroker]:
    """A RabbitMQ node whose only AMQP listener is TLS, requiring a client certificate."""
    port = free_port()
    config = [
        f"listeners.ssl.default = 127.0.0.1:{port}",
        f"ssl_options.cacertfile = {certs.ca}",
        f"ssl_options.certfile = {certs.path('server.pem')}",
        f"ssl_options.keyfile = {certs.path('server.key')}",
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
    ]
    async with RabbitCluster.started(nodes=1, config=config):
        yield TlsBroker(port, certs)


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    certificates: Certificates

    def url(
        self, database: str = "postgres", rootcert: str | None = None, sslmode: str = "verify-full"
    ) -> str:
        root = quote(rootcert or self.certificates.ca)
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
            f"?sslmode={sslmode}&sslrootcert={root}"
        )


def _build_postgres(root: Path, node: Node, certs: Certificates) -> None:
    shutil.chown(root, "postgres")
    root.chmod(0o700)
    _as_postgres(str(BINARIES / "initdb"), "-D", str(node.directory), "-U", "postgres", "-N")
    for name in ("server.pem", "server.key"):
        shutil.copy(certs.path(name), node.directory / name)
        shutil.chown(node.directory / name, "postgres")
        (node.directory / name).chmod(0o600)
    with (node.directory / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"port = {node.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\nfsync = off\n"
            "ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n"
        )
    (node.directory / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
    )
    node.start()


@contextlib.asynccontextmanager
async def tls_postgres(certs: Certificates) -> AsyncIterator[TlsPostgres]:
    """A Postgres cluster of its own, ``ssl = on``, taking TLS connections only."""
    root = Path(tempfile.mkdtemp(prefix="df-pg-tls-"))
    node = Node(root / "data", _free_port())
    try:
        _build_postgres(root, node, certs)
        yield TlsPostgres(node.port, certs)
    finally:
        if node.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                node.stop()
        shutil.rmtree(root, ignore_errors=True)
