"""The throwaway servers behave as the suite expects, checked with psycopg (libpq 18)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from aiopgtls._certs import CertificateSet
from aiopgtls._cluster import PG_BIN_ENV, ClusterError, ClusterFactory, find_postgres_bin

if TYPE_CHECKING:
    from tests.conftest import PgServer

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


def test_bin_env_points_nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))

    with pytest.raises(ClusterError, match=PG_BIN_ENV) as caught:
        find_postgres_bin()
    assert str(tmp_path) in str(caught.value)


def test_bin_missing_version_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_BIN_ENV, raising=False)

    with pytest.raises(ClusterError, match="version 99 not found"):
        find_postgres_bin(99)


def _is_zombie(pid: int) -> bool:
    # A postmaster reparented to init can linger as a zombie until init reaps it.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"
