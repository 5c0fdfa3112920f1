"""Shared fixtures: the anyio backends and throwaway PostgreSQL servers.

Servers start on first use and stop at the end of the session.  Each setup (defined in
``aiopgtls._setups``) is one server; ``pg_server_factory(setup, version)`` starts it for a
PostgreSQL major version and caches it for the session.

Two settings select the servers, each as a pytest option or an environment variable:

``--pg-versions`` / ``AIOPGTLS_PG_VERSIONS``
    Comma-separated major versions, for example ``15,18``.  Tests that take the
    ``pg_version`` fixture run once per version; every other server fixture uses the first
    one.  The default is the version in ``AIOPGTLS_PG_BIN`` when that is set, else 15.
``--tls-version`` / ``AIOPGTLS_TLS_VERSION``
    ``1.2`` or ``1.3`` pins every server's ``ssl_min_protocol_version`` and
    ``ssl_max_protocol_version`` to that TLS version; unset means TLS 1.2 and newer.

Tests about a feature of some versions (direct TLS on 17 and 18, say) ask the factory
for a version directly.  With ``--pg-versions`` set, such a test runs only for configured
versions and is skipped for the others, so each cell of the nox matrix tests its own
version.  Without it, the test runs whenever that version is installed, so a plain
``pytest`` covers every installed version.  A configured version whose binaries are missing
fails; ``python3 scripts/install_postgres.py`` installs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from aiopgtls._certs import CertificateSet, write_certificate_set
from aiopgtls._cluster import (
    PG_BIN_ENV,
    ClusterError,
    ClusterFactory,
    PostgresCluster,
    Role,
    find_postgres_bin,
    postgres_version,
)
from aiopgtls._setups import CLIENT_CERT_USER, SETUPS, TLS_PROTOCOL_VERSIONS

PG_VERSIONS_ENV = "AIOPGTLS_PG_VERSIONS"
TLS_VERSION_ENV = "AIOPGTLS_TLS_VERSION"
FALLBACK_PG_VERSION = 15
INSTALL_COMMAND = "python3 scripts/install_postgres.py"


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test once per backend."""
    backend: str = request.param
    return backend


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME at an empty folder and drop the PG* and SSL_CERT_* variables.

    Both libpq and aiopgtls read ``~/.postgresql``, ``~/.pgpass`` and those variables, so a
    test that compares them, or expects no default file, must not see the machine's own.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("PG") or name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            monkeypatch.delenv(name)
    return home


# --- which servers: PostgreSQL versions and the TLS version pin --------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aiopgtls", "aiopgtls test servers")
    group.addoption(
        "--pg-versions",
        default=os.environ.get(PG_VERSIONS_ENV, ""),
        help=f"comma-separated PostgreSQL major versions to test against (env {PG_VERSIONS_ENV}; "
        "default: the version in AIOPGTLS_PG_BIN, else 15)",
    )
    group.addoption(
        "--tls-version",
        default=os.environ.get(TLS_VERSION_ENV, ""),
        help=f"pin the servers to TLS 1.2 or 1.3 (env {TLS_VERSION_ENV}; default: no pin)",
    )


@dataclass(frozen=True)
class ServerConfig:
    """The configured PostgreSQL versions (the first is the default) and the TLS pin."""

    versions: tuple[int, ...]
    tls_version: str | None
    explicit: bool = False  # whether the versions were configured rather than defaulted

    @property
    def default_version(self) -> int:
        return self.versions[0]


_CONFIG_KEY = pytest.StashKey[ServerConfig]()


def pytest_configure(config: pytest.Config) -> None:
    versions_text = str(config.getoption("--pg-versions"))
    config.stash[_CONFIG_KEY] = ServerConfig(
        versions=_parse_versions(versions_text),
        tls_version=_parse_tls_version(str(config.getoption("--tls-version"))),
        explicit=bool(versions_text.strip()),
    )


def _parse_versions(text: str) -> tuple[int, ...]:
    if not text.strip():
        return (_default_version(),)

    versions: list[int] = []
    for part in text.split(","):
        if not part.strip().isdigit():
            raise pytest.UsageError(
                f"invalid PostgreSQL version {part.strip()!r} in --pg-versions / "
                f"{PG_VERSIONS_ENV}={text!r}; use comma-separated major versions such as 15,18"
            )
        if int(part) not in versions:
            versions.append(int(part))
    return tuple(versions)


def _default_version() -> int:
    configured = os.environ.get(PG_BIN_ENV)
    if not configured:
        return FALLBACK_PG_VERSION
    try:
        return postgres_version(Path(configured))
    except ClusterError as exc:
        raise pytest.UsageError(f"{PG_BIN_ENV}: {exc}") from exc


def _parse_tls_version(text: str) -> str | None:
    if not text.strip():
        return None
    if text.strip() not in TLS_PROTOCOL_VERSIONS:
        raise pytest.UsageError(
            f"invalid TLS version {text!r} in --tls-version / {TLS_VERSION_ENV}; use one of "
            f"{', '.join(TLS_PROTOCOL_VERSIONS)}, or leave it unset for no pin"
        )
    return text.strip()


def pytest_report_header(config: pytest.Config) -> str:
    server_config = config.stash[_CONFIG_KEY]
    versions = ", ".join(map(str, server_config.versions))
    pin = TLS_PROTOCOL_VERSIONS.get(server_config.tls_version or "", "TLS 1.2 and newer")
    scope = "" if server_config.explicit else " (and any installed version a test needs)"
    return f"aiopgtls servers: PostgreSQL {versions}{scope}; TLS {pin}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that takes ``pg_version`` once per configured PostgreSQL version."""
    if "pg_version" in metafunc.fixturenames:
        versions = metafunc.config.stash[_CONFIG_KEY].versions
        metafunc.parametrize("pg_version", versions, ids=[f"pg{v}" for v in versions])


@pytest.fixture(scope="session")
def server_config(request: pytest.FixtureRequest) -> ServerConfig:
    """The PostgreSQL versions and TLS pin that this run was configured with."""
    return request.config.stash[_CONFIG_KEY]


# --- running servers ---------------------------------------------------------------------------


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
    def __call__(self, setup: str, version: int | None = None) -> PgServer: ...


class _ServerPool:
    """Starts each (setup, version) server once per session and remembers start failures."""

    def __init__(self, certs: CertificateSet, config: ServerConfig) -> None:
        self._certs = certs
        self._config = config
        self._factories: dict[int, ClusterFactory] = {}
        self._servers: dict[tuple[str, int], PgServer] = {}
        self._failures: dict[tuple[str, int], str] = {}

    @property
    def servers(self) -> list[PgServer]:
        return list(self._servers.values())

    def get(self, setup: str, version: int | None = None) -> PgServer:
        """Return the running server of ``setup`` (default version: the first configured)."""
        if setup not in SETUPS:
            raise ValueError(f"unknown server setup {setup!r}; known setups: {sorted(SETUPS)}")
        if version is None:
            version = self._config.default_version
        self._skip_unless_installed(version)

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

    def _skip_unless_installed(self, version: int) -> None:
        if version in self._config.versions or version in self._factories:
            return
        if self._config.explicit:
            configured = ",".join(map(str, self._config.versions))
            pytest.skip(
                f"PostgreSQL {version} is not in --pg-versions / {PG_VERSIONS_ENV}={configured}"
            )
        try:
            find_postgres_bin(version)
        except ClusterError as exc:
            pytest.skip(
                f"PostgreSQL {version} is not installed ({exc}); install it with "
                f"{INSTALL_COMMAND} {version}"
            )

    def _start(self, setup_name: str, version: int) -> PgServer:
        setup = SETUPS[setup_name]
        tls = setup.server_tls(self._certs, self._config.tls_version)
        cluster = self.factory(version).create(setup_name, setup.hba_lines(), tls=tls)
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
    request: pytest.FixtureRequest, cert_set: CertificateSet, server_config: ServerConfig
) -> Iterator[ServerFactory]:
    """Return ``get(setup, version=None)``, which starts a setup's server on first use.

    ``version=None`` means the first configured version.
    """
    pool = _ServerPool(cert_set, server_config)
    request.config.stash[_POOL_KEY] = pool
    try:
        yield pool.get
    finally:
        pool.close()
        del request.config.stash[_POOL_KEY]


@pytest.fixture(scope="session")
def pg_cluster_factory(
    request: pytest.FixtureRequest, pg_server_factory: ServerFactory, server_config: ServerConfig
) -> ClusterFactory:
    """The session's ClusterFactory of the default version, for tests that build a server.

    Its clusters are stopped at session end; close them earlier with ``cluster.close()``.
    """
    return request.config.stash[_POOL_KEY].factory(server_config.default_version)


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
    servers: Sequence[PgServer] = [
        value for value in funcargs.values() if isinstance(value, PgServer)
    ]
    pool = item.config.stash.get(_POOL_KEY, None)
    if "pg_server_factory" in funcargs and pool is not None:
        servers = pool.servers

    for server in servers:
        title = f"postgres log: {server.setup} (PostgreSQL {server.version})"
        report.sections.append((title, server.log_tail()))
    return report
