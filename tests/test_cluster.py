"""The throwaway servers behave as the suite expects, checked with psycopg (libpq 18)."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from cryptography import x509

from aiopgtls._certs import CertificateSet, write_certificate_set
from aiopgtls._cluster import (
    PG_BIN_ENV,
    ClusterError,
    ClusterFactory,
    find_postgres_bin,
    postgres_version,
)
from aiopgtls._setups import TLS_PROTOCOL_VERSIONS

if TYPE_CHECKING:
    from tests.conftest import PgServer, ServerConfig, ServerFactory

pytestmark = pytest.mark.server

SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def connect(server: PgServer, **options: Any) -> psycopg.Connection[Any]:
    params: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "dbname": "postgres",
        "user": "postgres",
        "connect_timeout": 10,
    }
    return psycopg.connect(**{**params, **options})


def session_facts(server: PgServer, **options: Any) -> tuple[str, bool]:
    """Connect, then return the session's user and whether it runs over TLS."""
    with connect(server, **options) as conn:
        user_row = conn.execute("SELECT current_user").fetchone()
        ssl_row = conn.execute(SSL_IN_USE).fetchone()
    assert user_row is not None
    assert ssl_row is not None
    return user_row[0], ssl_row[0]


# --- ssl_off ---------------------------------------------------------------------------------


def test_ssl_off_serves_plaintext(pg_ssl_off: PgServer) -> None:
    user, ssl = session_facts(pg_ssl_off, sslmode="prefer")

    assert user == "postgres"
    assert ssl is False


def test_ssl_off_rejects_require(pg_ssl_off: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="server does not support SSL"):
        connect(pg_ssl_off, sslmode="require")


def test_ssl_off_log_readable(pg_ssl_off: PgServer) -> None:
    assert pg_ssl_off.log_path.is_file()
    assert "ready to accept connections" in pg_ssl_off.log_tail(1000)


# --- main: one user per pg_hba rule ----------------------------------------------------------


@pytest.mark.parametrize(("sslmode", "expect_ssl"), [("disable", False), ("require", True)])
def test_main_superuser_both_ways(pg_main: PgServer, sslmode: str, expect_ssl: bool) -> None:
    user, ssl = session_facts(pg_main, sslmode=sslmode)

    assert user == "postgres"
    assert ssl is expect_ssl


def test_main_ipv6_loopback(pg_main: PgServer) -> None:
    _, ssl = session_facts(
        pg_main, host="::1", sslmode="verify-full", sslrootcert=str(pg_main.certs.ca_a)
    )

    assert ssl is True


def test_sslonly_rejected_without_tls(pg_main: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        connect(pg_main, user="sslonly", sslmode="disable")


def test_sslonly_accepted_over_tls(pg_main: PgServer) -> None:
    user, ssl = session_facts(pg_main, user="sslonly", sslmode="require")

    assert user == "sslonly"
    assert ssl is True


def test_nosslonly_prefer_lands_plaintext(pg_main: PgServer) -> None:
    user, ssl = session_facts(pg_main, user="nosslonly", sslmode="prefer")

    assert user == "nosslonly"
    assert ssl is False


@pytest.mark.parametrize("user", ["scram", "md5user", "pwuser"])
def test_password_users_log_in(pg_main: PgServer, user: str) -> None:
    logged_in, _ = session_facts(
        pg_main, user=user, password=pg_main.password(user), sslmode="require"
    )

    assert logged_in == user


def test_wrong_password_rejected(pg_main: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(pg_main, user="scram", password="not-" + pg_main.password("scram"))


@pytest.mark.parametrize(("user", "prefix"), [("scram", "SCRAM-SHA-256$"), ("md5user", "md5")])
def test_password_storage_format(pg_main: PgServer, user: str, prefix: str) -> None:
    stored = pg_main.cluster.run_sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'")

    assert stored.startswith(prefix)


def test_certuser_logs_in_with_client_cert(pg_main: PgServer) -> None:
    certs = pg_main.certs
    user, ssl = session_facts(
        pg_main,
        user=certs.client_user,
        sslmode="require",
        sslcert=str(certs.client.cert),
        sslkey=str(certs.client.key),
    )

    assert user == certs.client_user
    assert ssl is True


def test_certuser_rejected_without_client_cert(pg_main: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="requires a valid client certificate"):
        connect(pg_main, user=pg_main.certs.client_user, sslmode="require", sslcert="")


def test_verifyca_user_accepts_any_ca_a_cert(pg_main: PgServer) -> None:
    certs = pg_main.certs
    user, _ = session_facts(
        pg_main,
        user="verifyca",
        sslmode="require",
        sslcert=str(certs.client.cert),
        sslkey=str(certs.client.key),
    )

    assert user == "verifyca"


def test_app_database_exists(pg_main: PgServer) -> None:
    with connect(pg_main, user="app", dbname="app", sslmode="disable") as conn:
        row = conn.execute("SELECT current_database()").fetchone()

    assert row == ("app",)


# --- hostssl_only and client_cert ------------------------------------------------------------


def test_hostssl_only_rejects_plaintext(pg_server_factory: ServerFactory) -> None:
    server = pg_server_factory("hostssl_only")

    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(server, user="app", sslmode="disable")


def test_hostssl_only_scram_over_tls(pg_server_factory: ServerFactory) -> None:
    server = pg_server_factory("hostssl_only")

    user, ssl = session_facts(
        server, user="scram", password=server.password("scram"), sslmode="require"
    )

    assert user == "scram"
    assert ssl is True


def test_client_cert_setup_needs_cert(pg_server_factory: ServerFactory) -> None:
    server = pg_server_factory("client_cert")
    certs = server.certs

    with pytest.raises(psycopg.OperationalError, match="requires a valid client certificate"):
        connect(server, user=certs.client_user, sslmode="require", sslcert="")
    user, ssl = session_facts(
        server,
        user=certs.client_user,
        sslmode="verify-full",
        sslrootcert=str(certs.ca_a),
        sslcert=str(certs.client.cert),
        sslkey=str(certs.client.key),
    )

    assert user == certs.client_user
    assert ssl is True


# --- every configured PostgreSQL version ----------------------------------------------------


def test_server_runs_requested_version(pg_server_factory: ServerFactory, pg_version: int) -> None:
    server = pg_server_factory("main", pg_version)

    version_num = int(server.cluster.run_sql("SHOW server_version_num"))

    assert version_num // 10000 == pg_version
    assert server.cluster.run_sql("SHOW ssl_library") == "OpenSSL"


def test_server_tls_version_pin(
    pg_server_factory: ServerFactory, pg_version: int, server_config: ServerConfig
) -> None:
    server = pg_server_factory("main", pg_version)
    # With no pin, both sides support TLS 1.3 and negotiate it.
    expected = TLS_PROTOCOL_VERSIONS.get(server_config.tls_version or "1.3")

    with connect(server, sslmode="require") as conn:
        row = conn.execute(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()

    assert row == (expected,)


def test_client_outside_pin_fails(
    pg_server_factory: ServerFactory, pg_version: int, server_config: ServerConfig
) -> None:
    if server_config.tls_version is None:
        pytest.skip("the servers are not pinned to one TLS version (--tls-version)")
    server = pg_server_factory("main", pg_version)
    other = "TLSv1.3" if server_config.tls_version == "1.2" else "TLSv1.2"

    with pytest.raises(psycopg.OperationalError, match="SSL"):
        connect(
            server,
            sslmode="require",
            ssl_min_protocol_version=other,
            ssl_max_protocol_version=other,
        )


def test_bin_found_for_version(pg_version: int) -> None:
    bin_dir = find_postgres_bin(pg_version)

    assert postgres_version(bin_dir) == pg_version


# --- certificate verification across setups ---------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_full_main_with_ca_a(pg_main: PgServer, host: str) -> None:
    _, ssl = session_facts(
        pg_main, host=host, sslmode="verify-full", sslrootcert=str(pg_main.certs.ca_a)
    )

    assert ssl is True


def test_verify_full_other_ca_fails(pg_other_ca: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(pg_other_ca, sslmode="verify-full", sslrootcert=str(pg_other_ca.certs.ca_a))


def test_verify_full_other_host_fails(pg_other_host: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        connect(pg_other_host, sslmode="verify-full", sslrootcert=str(pg_other_host.certs.ca_a))


def test_verify_ca_other_host_succeeds(pg_other_host: PgServer) -> None:
    _, ssl = session_facts(
        pg_other_host, sslmode="verify-ca", sslrootcert=str(pg_other_host.certs.ca_a)
    )

    assert ssl is True


def test_verify_full_chain_with_root_only(pg_chain: PgServer) -> None:
    _, ssl = session_facts(pg_chain, sslmode="verify-full", sslrootcert=str(pg_chain.certs.ca_c))

    assert ssl is True


# --- library pieces ----------------------------------------------------------------------------


def test_certificate_keys_private(cert_set: CertificateSet) -> None:
    for key in (cert_set.client.key, cert_set.server_a.key, cert_set.server_chain.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


@pytest.mark.parametrize(
    ("attribute", "algorithm"),
    [
        ("server_rsa", "sha256WithRSAEncryption"),
        ("server_p384", "ecdsa-with-SHA384"),
        ("server_ed25519", "ed25519"),
    ],
)
def test_channel_binding_cert_algorithms(
    cert_set: CertificateSet, attribute: str, algorithm: str
) -> None:
    pair = getattr(cert_set, attribute)
    certificate = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert certificate.signature_algorithm_oid._name == algorithm
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600


def test_certificate_set_lists_files(tmp_path: Path) -> None:
    certs = write_certificate_set(tmp_path / "certs")

    files = certs.files()

    assert sorted(files) == sorted(certs.directory.iterdir())
    assert certs.server_ed25519.key in files


def test_chain_file_sends_intermediate(cert_set: CertificateSet) -> None:
    chain = cert_set.server_chain.cert.read_text()
    intermediate = cert_set.intermediate_c.read_text()

    assert chain.count("BEGIN CERTIFICATE") == 2
    assert chain.endswith(intermediate)


def test_cluster_close_leaves_nothing(pg_cluster_factory: ClusterFactory) -> None:
    cluster = pg_cluster_factory.create("lifecycle", ["host all all 127.0.0.1/32 trust"])
    with cluster:
        pid = int((cluster.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        assert cluster.run_sql("SELECT 1 + 1") == "2"

    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert not cluster.directory.exists()
    assert pg_cluster_factory.base_dir.exists()


def test_factory_close_removes_base(tmp_path: Path) -> None:
    with ClusterFactory(version=15, parent=tmp_path) as factory:
        assert factory.base_dir.parent == tmp_path

    assert not factory.base_dir.exists()


def test_factory_tool_path(pg_cluster_factory: ClusterFactory) -> None:
    assert pg_cluster_factory.tool_path("pg_ctl") == pg_cluster_factory.bin_dir / "pg_ctl"
    with pytest.raises(ClusterError, match="no_such_tool not found"):
        pg_cluster_factory.tool_path("no_such_tool")


def test_bin_env_points_nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))

    with pytest.raises(ClusterError, match=PG_BIN_ENV) as caught:
        find_postgres_bin()
    assert str(tmp_path) in str(caught.value)


def test_bin_missing_version_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_BIN_ENV, raising=False)

    with pytest.raises(ClusterError, match="version 99 not found"):
        find_postgres_bin(99)


# --- scripts/install_postgres.py -----------------------------------------------------------------


def load_installer() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "scripts" / "install_postgres.py"
    spec = importlib.util.spec_from_file_location("install_postgres", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installer_rejects_unpinned_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installer = load_installer()

    status = installer.main(["--cache", str(tmp_path), "99"])

    assert status == 1
    assert "no npm package version is pinned for PostgreSQL 99" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_installer_reads_openssl_version(tmp_path: Path) -> None:
    installer = load_installer()
    library = tmp_path / "libssl.so.1.1"
    library.write_bytes(b"\x00junk\x00OpenSSL 1.1.1w  11 Sep 2023\x00more")

    assert installer.openssl_version(library) == (1, 1, 1)
    assert installer.openssl_version(library) >= installer.MIN_OPENSSL
    library.write_bytes(b"no version here")
    assert installer.openssl_version(library) is None


def test_installer_makes_tree_readable(tmp_path: Path) -> None:
    installer = load_installer()
    folder = tmp_path / "tree"
    folder.mkdir(mode=0o700)
    program = folder / "initdb"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o700)
    data = folder / "postgres.bki"
    data.write_text("data")
    data.chmod(0o600)

    installer.make_world_readable(folder)

    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE(program.stat().st_mode) == 0o755
    assert stat.S_IMODE(data.stat().st_mode) == 0o644


def test_installer_keeps_cached_version(tmp_path: Path) -> None:
    installer = load_installer()
    target = tmp_path / "18"
    (target / "bin").mkdir(parents=True)
    for tool in installer.SERVER_TOOLS:
        (target / "bin" / tool).write_text("#!/bin/sh\n")
        (target / "bin" / tool).chmod(0o755)

    assert not installer.is_cached(target, installer.PINNED[18])
    (target / "package-version").write_text(installer.PINNED[18] + "\n")
    assert installer.is_cached(target, installer.PINNED[18])
    assert not installer.is_cached(target, "18.0.0-other")


@pytest.mark.parametrize("version", [16, 17, 18])
def test_installed_version_checks_pass(version: int) -> None:
    installer = load_installer()
    cache = Path(__file__).resolve().parent.parent / ".pgbin"
    system = installer.SYSTEM_ROOT / str(version) / "bin"
    cached = installer.is_cached(cache / str(version), installer.PINNED[version])
    if not cached and not installer.has_server_tools(system):
        pytest.skip(f"PostgreSQL {version} is not installed; run {installer.__file__} {version}")

    bin_dir = installer.install(version, cache)

    assert postgres_version(bin_dir) == version
    assert os.access(bin_dir / "postgres", os.X_OK)


def _is_zombie(pid: int) -> bool:
    # A postmaster reparented to init can linger as a zombie until init reaps it.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"
