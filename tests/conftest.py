"""Shared fixtures: the anyio backends and throwaway PostgreSQL servers.

Servers start on first use and stop at the end of the session.  Each setup is one server;
``pg_server_factory(setup, version)`` starts it for a PostgreSQL major version (15 by
default) and caches it for the session.  Setups:

``ssl_off``
    ssl=off; every user is trusted on ``host`` lines.
``main``
    ssl=on with the CA-A certificate for localhost, 127.0.0.1, ::1 and db.example.test, and
    one user per pg_hba rule (see ``MAIN_HBA``).  Also has the database ``app``.
``other_ca``
    ssl=on with a certificate from the unrelated CA-B for the same names.
``other_host``
    ssl=on with a CA-A certificate for other.example.test only.
``chain``
    ssl=on with a leaf issued by an intermediate of CA-C; the server sends leaf and
    intermediate, clients trust only the CA-C root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from aiopgtls._certs import CertificateSet, write_certificate_set
from aiopgtls._cluster import ClusterError, ClusterFactory, PostgresCluster, Role, ServerTLS

DEFAULT_PG_VERSION = 15
LOOPBACK_NETWORKS = ("127.0.0.1/32", "::1/128")
CLIENT_CERT_USER = "certuser"


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test once per backend."""
    backend: str = request.param
    return backend


# --- server setups ---------------------------------------------------------------------------


def hba(connection_type: str, user: str, method: str) -> tuple[str, ...]:
    """Return pg_hba.conf lines for ``user`` from both loopback addresses."""
    return tuple(
        f"{connection_type} all {user} {network} {method}" for network in LOOPBACK_NETWORKS
    )


@dataclass(frozen=True)
class ServerSetup:
    """What one throwaway server is configured with; roles are created after start."""

    tls: Callable[[CertificateSet], ServerTLS] | None
    hba_lines: tuple[str, ...]
    roles: tuple[Role, ...] = ()
    databases: Mapping[str, str] = field(default_factory=dict)  # name -> owner


# First match wins, so each user's line decides alone whether it may connect, and how.
MAIN_HBA = (
    *hba("hostssl", "sslonly", "trust"),
    *hba("hostnossl", "nosslonly", "trust"),
    *hba("host", "scram", "scram-sha-256"),
    *hba("host", "md5user", "md5"),
    *hba("host", "pwuser", "password"),
    *hba("hostssl", CLIENT_CERT_USER, "cert"),
    # Any certificate from CA-A is accepted here, whatever its common name.
    *hba("hostssl", "verifyca", "trust clientcert=verify-ca"),
    *hba("host", "postgres", "trust"),
    *hba("host", "app", "trust"),
)

MAIN_ROLES = (
    Role("sslonly"),
    Role("nosslonly"),
    Role("scram", "scram-secret"),
    Role("md5user", "md5-secret", password_encryption="md5"),
    Role("pwuser", "plain-secret"),
    Role(CLIENT_CERT_USER),
    Role("verifyca"),
    Role("app"),
)

TRUST_ALL_HBA = hba("host", "all", "trust")

SETUPS: Mapping[str, ServerSetup] = {
    "ssl_off": ServerSetup(tls=None, hba_lines=TRUST_ALL_HBA, roles=(Role("app"),)),
    "main": ServerSetup(
        tls=lambda certs: ServerTLS(certs.server_a.cert, certs.server_a.key, certs.ca_a),
        hba_lines=MAIN_HBA,
        roles=MAIN_ROLES,
        databases={"app": "app"},
    ),
    "other_ca": ServerSetup(
        tls=lambda certs: ServerTLS(certs.server_b.cert, certs.server_b.key),
        hba_lines=TRUST_ALL_HBA,
    ),
    "other_host": ServerSetup(
        tls=lambda certs: ServerTLS(certs.server_other_host.cert, certs.server_other_host.key),
        hba_lines=TRUST_ALL_HBA,
    ),
    "chain": ServerSetup(
        tls=lambda certs: ServerTLS(certs.server_chain.cert, certs.server_chain.key),
        hba_lines=TRUST_ALL_HBA,
    ),
}


@dataclass(frozen=True)
class PgServer:
    """A running server as tests see it: where it listens, its users and its certificates."""

    setup: str
    version: int
    cluster: PostgresCluster
    certs: CertificateSet
    roles: Mapping[str, Role]
    host: str = "127.0.0.1"
    hostname: str = "localhost"

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def socket_dir(self) -> Path:
        return self.cluster.socket_dir

    @property
    def log_path(self) -> Path:
        return self.cluster.log_path

    def password(self, user: str) -> str:
        password = self.roles[user].password
        if password is None:
            raise KeyError(f"role {user!r} of setup {self.setup!r} has no password")
        return password

    def log_tail(self, lines: int = 40) -> str:
        return self.cluster.log_tail(lines)


class ServerFactory(Protocol):
    def __call__(self, setup: str, version: int = DEFAULT_PG_VERSION) -> PgServer: ...


class _ServerPool:
    """Starts each (setup, version) server once per session and remembers start failures."""

    def __init__(self, certs: CertificateSet) -> None:
        self._certs = certs
        self._factories: dict[int, ClusterFactory] = {}
        self._servers: dict[tuple[str, int], PgServer] = {}
        self._failures: dict[tuple[str, int], str] = {}

    @property
    def servers(self) -> list[PgServer]:
        return list(self._servers.values())

    def get(self, setup: str, version: int = DEFAULT_PG_VERSION) -> PgServer:
        if setup not in SETUPS:
            raise ValueError(f"unknown server setup {setup!r}; known setups: {sorted(SETUPS)}")

        key = (setup, version)
        if key not in self._servers and key not in self._failures:
            try:
                self._servers[key] = self._start(setup, version)
            except ClusterError as exc:
                self._failures[key] = f"PostgreSQL {version} server {setup!r}: {exc}"
        if key in self._failures:
            pytest.fail(self._failures[key], pytrace=False)
        return self._servers[key]

    def factory(self, version: int) -> ClusterFactory:
        if version not in self._factories:
            self._factories[version] = ClusterFactory(version=version)
        return self._factories[version]

    def close(self) -> None:
        for factory in self._factories.values():
            factory.close()

    def _start(self, setup_name: str, version: int) -> PgServer:
        setup = SETUPS[setup_name]
        tls = setup.tls(self._certs) if setup.tls is not None else None
        cluster = self.factory(version).create(setup_name, setup.hba_lines, tls=tls)
        cluster.start()
        try:
            for role in setup.roles:
                cluster.create_role(role)
            for database, owner in setup.databases.items():
                cluster.create_database(database, owner)
        except ClusterError as exc:
            message = f"{exc}\nLast lines of the server log:\n{cluster.log_tail()}"
            raise ClusterError(message) from exc

        roles = {role.name: role for role in setup.roles}
        return PgServer(setup_name, version, cluster, self._certs, roles)


_POOL_KEY = pytest.StashKey[_ServerPool]()


@pytest.fixture(scope="session")
def cert_set(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    """The CAs and certificates the servers use, for clients and fake servers alike."""
    return write_certificate_set(tmp_path_factory.mktemp("certs"), CLIENT_CERT_USER)


@pytest.fixture(scope="session")
def pg_server_factory(
    request: pytest.FixtureRequest, cert_set: CertificateSet
) -> Iterator[ServerFactory]:
    """Return ``get(setup, version=15)``, which starts a setup's server on first use."""
    pool = _ServerPool(cert_set)
    request.config.stash[_POOL_KEY] = pool
    try:
        yield pool.get
    finally:
        pool.close()
        del request.config.stash[_POOL_KEY]


@pytest.fixture(scope="session")
def pg_cluster_factory(
    request: pytest.FixtureRequest, pg_server_factory: ServerFactory
) -> ClusterFactory:
    """The session's PostgreSQL 15 ClusterFactory, for tests that build their own server.

    Its clusters are stopped at session end; close them earlier with ``cluster.close()``.
    """
    return request.config.stash[_POOL_KEY].factory(DEFAULT_PG_VERSION)


@pytest.fixture(scope="session")
def pg_ssl_off(pg_server_factory: ServerFactory) -> PgServer:
    return pg_server_factory("ssl_off")


@pytest.fixture(scope="session")
def pg_main(pg_server_factory: ServerFactory) -> PgServer:
    return pg_server_factory("main")


@pytest.fixture(scope="session")
def pg_other_ca(pg_server_factory: ServerFactory) -> PgServer:
    return pg_server_factory("other_ca")


@pytest.fixture(scope="session")
def pg_other_host(pg_server_factory: ServerFactory) -> PgServer:
    return pg_server_factory("other_host")


@pytest.fixture(scope="session")
def pg_chain(pg_server_factory: ServerFactory) -> PgServer:
    return pg_server_factory("chain")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Attach the server log tails to the report of a failed test that used a server."""
    report = yield
    if not report.failed or call.when != "call":
        return report

    funcargs: Mapping[str, Any] = getattr(item, "funcargs", {})
    servers = [value for value in funcargs.values() if isinstance(value, PgServer)]
    pool = item.config.stash.get(_POOL_KEY, None)
    if "pg_server_factory" in funcargs and pool is not None:
        servers = pool.servers

    for server in servers:
        title = f"postgres log: {server.setup} (PostgreSQL {server.version})"
        report.sections.append((title, server.log_tail()))
    return report
