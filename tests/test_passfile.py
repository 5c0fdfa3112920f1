"""Password files: matching, escaping, permissions and per-host lookups, compared with libpq.

The parsing cases compare ``PQpass()`` after a failed attempt on a missing Unix socket.  The
server cases log in to the ``main`` test server as the SCRAM user with the password only in
the password file, once with libpq and once with the password that aiopgtls resolved.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import psycopg
import pytest

import aiopgtls
from aiopgtls._passfile import lookup_password
from aiopgtls._resolve import resolve_params, resolve_params_async
from aiopgtls.errors import SecurityWarning

from .conftest import PgServer
from .libpq_oracle import libpq_resolve, process_environment

NO_SOCKET = "/nonexistent/aiopgtls-socket"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


def write_passfile(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / ".pgpass"
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def environ_for(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PGSYSCONFDIR": str(home / "no-etc")}


def both_passwords(conninfo: str, home: Path) -> tuple[str | None, str | None]:
    """Return the password of the last host as libpq and as resolve_params() find it."""
    environ = environ_for(home)
    with process_environment(environ), warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        expected = libpq_resolve(conninfo)
        params = resolve_params(conninfo, {}, environ=environ)
    assert expected.accepted, expected.error
    return expected.password, params.hosts[-1].password


# (conninfo, password file text, file mode)
MATCH_CASES: list[tuple[str, str, int]] = [
    ("host=/var/run/postgresql user=u dbname=d", "localhost:5432:d:u:pw1\n", 0o600),
    ("host=/var/run/postgresql/ user=u dbname=d", "localhost:5432:d:u:pw1\n", 0o600),
    ("user=u dbname=d", "localhost:5432:d:u:default-host\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", f"localhost:5432:d:u:a\n{NO_SOCKET}:5432:d:u:b\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:a\\:b\\\\c:d\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "\\*:*:*:*:star\n*:*:*:*:any\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:crlf\r\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "#*:*:*:*:comment\n *:*:*:*:space\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:trailing\\", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*\n*:*:*:*:second\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:group\n", 0o640),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:readonly\n", 0o400),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:others\n", 0o604),
    (f"host={NO_SOCKET} user=u dbname=d password=''", "*:*:*:*:empty-explicit\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d password=given", "*:*:*:*:ignored\n", 0o600),
    (f"host={NO_SOCKET} port=' 5432' user=u dbname=d", f"{NO_SOCKET}: 5432:d:u:raw\n", 0o600),
    (f"host={NO_SOCKET} port=5432 user=u dbname=d", f"{NO_SOCKET}: 5432:d:u:raw\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", f"{NO_SOCKET.upper()}:5432:d:u:case\n", 0o600),
    (f"host={NO_SOCKET} user=u", f"{NO_SOCKET}:5432:u:u:dbname-default\n", 0o600),
    (f"host={NO_SOCKET},{NO_SOCKET}-b port=1,2 user=u dbname=d", f"{NO_SOCKET}-b:2:d:u:b\n", 0o600),
    (
        f"host={NO_SOCKET},{NO_SOCKET}-b port=1, user=u dbname=d",
        f"{NO_SOCKET}-b:5432:d:u:e\n",
        0o600,
    ),
    ("host=@aiopgtls-abstract-none user=u dbname=d", "@aiopgtls-abstract-none:*:*:*:at\n", 0o600),
    (f"host={NO_SOCKET} user=u:x dbname=d", f"{NO_SOCKET}:5432:d:u\\:x:escaped\n", 0o600),
    (f"host={NO_SOCKET} user=u dbname=d", "*:*:*:*:p\u00e9\u20ac\n", 0o600),
]


@pytest.mark.parametrize(("conninfo", "text", "mode"), MATCH_CASES)
def test_lookup_matches_libpq(home: Path, conninfo: str, text: str, mode: int) -> None:
    write_passfile(home, text, mode)

    expected, ours = both_passwords(conninfo, home)

    assert ours == expected


def test_cases_find_passwords(home: Path) -> None:
    found = []
    for conninfo, text, mode in MATCH_CASES:
        write_passfile(home, text, mode)
        found.append(both_passwords(conninfo, home)[0])

    assert any(password is not None for password in found)
    assert any(password is None for password in found)


def test_passfile_keyword_and_variable(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-pgpass"
    other.write_text("*:*:*:*:from-other\n")
    other.chmod(0o600)
    write_passfile(home, "*:*:*:*:from-home\n")

    by_keyword, ours = both_passwords(f"host={NO_SOCKET} passfile={other}", home)
    assert ours == by_keyword == "from-other"

    environ = {**environ_for(home), "PGPASSFILE": str(other)}
    params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ)
    assert params.password == "from-other"
    assert params.sources["password"] == f"password file ({other})"
    assert params.sources["passfile"] == "environment (PGPASSFILE)"


def test_group_access_warns_and_ignores(home: Path) -> None:
    path = write_passfile(home, "*:*:*:*:secret-value\n", 0o640)

    with pytest.warns(SecurityWarning, match="has group or world access") as caught:
        params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ_for(home))

    assert params.password is None
    assert str(path) in str(caught[0].message)
    assert "secret-value" not in str(caught[0].message)


def test_directory_warns_and_is_ignored(home: Path) -> None:
    (home / ".pgpass").mkdir()

    with pytest.warns(SecurityWarning, match="is not a plain file"):
        params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ_for(home))

    assert params.password is None


def test_missing_file_is_quiet(home: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ_for(home))

    assert params.password is None
    assert params.passfile == f"{home}/.pgpass"
    assert params.sources["passfile"] == "default"


def test_password_hidden_from_repr(home: Path) -> None:
    write_passfile(home, "*:*:*:*:hunter2-secret\n")

    params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ_for(home))

    assert params.password == "hunter2-secret"
    assert "hunter2" not in repr(params)
    assert "hunter2" not in repr(params.hosts)
    assert "hunter2" not in str(params.settings)


def test_per_host_passwords(home: Path) -> None:
    write_passfile(home, f"{NO_SOCKET}-a:1:*:*:first\n{NO_SOCKET}-b:2:*:*:second\n")
    conninfo = f"host={NO_SOCKET}-a,{NO_SOCKET}-b,{NO_SOCKET}-c port=1,2,3"

    params = resolve_params(conninfo, {}, environ=environ_for(home))

    assert [host.password for host in params.hosts] == ["first", "second", None]
    assert params.for_host(1).password == "second"
    assert params.for_host(1).hosts == (params.hosts[1],)
    assert params.for_host(1).sources["password"] == f"password file ({home}/.pgpass)"
    assert "password" not in params.for_host(2).sources


def test_hostaddr_is_looked_up_without_host(home: Path) -> None:
    write_passfile(home, "127.0.0.1:1:*:*:by-address\nlocalhost:1:*:*:by-name\n")

    without_host = resolve_params("hostaddr=127.0.0.1 port=1", {}, environ=environ_for(home))
    with_host = resolve_params(
        "host=localhost hostaddr=127.0.0.1 port=1", {}, environ=environ_for(home)
    )

    assert without_host.password == "by-address"
    assert with_host.password == "by-name"


def test_lookup_needs_user_and_dbname(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    path.write_text("*:*:*:*:any\n")
    path.chmod(0o600)

    found = lookup_password(
        str(path), host="h", port="", dbname="", user="u", default_socket_dir="/tmp"
    )

    assert found is None


# --- against a real server --------------------------------------------------------------------


def scram_passfile(home: Path, server: PgServer, first_host: str) -> None:
    right = server.password("scram")
    write_passfile(
        home,
        f"{first_host}:{server.port}:*:scram:not-the-password\n"
        f"{server.host}:{server.port}:*:scram:{right}\n",
    )


def test_libpq_logs_in_with_password_file(pg_main: PgServer, home: Path) -> None:
    scram_passfile(home, pg_main, NO_SOCKET)
    conninfo = (
        f"host={NO_SOCKET},{pg_main.host} port={pg_main.port} user=scram dbname=postgres "
        "sslmode=disable"
    )

    with process_environment(environ_for(home)), psycopg.connect(conninfo) as connection:
        libpq_password = connection.pgconn.password.decode()
    params = resolve_params(conninfo, {}, environ=environ_for(home))

    assert params.for_host(1).password == libpq_password == pg_main.password("scram")
    assert params.for_host(0).password == "not-the-password"


@pytest.mark.anyio
async def test_resolved_password_logs_in(pg_main: PgServer, home: Path) -> None:
    scram_passfile(home, pg_main, NO_SOCKET)
    conninfo = f"host={pg_main.host} port={pg_main.port} user=scram dbname=postgres"

    params = await resolve_params_async(conninfo, {}, environ=environ_for(home))
    connection = await aiopgtls.connect(
        host=params.host,
        port=params.port,
        user=params.user,
        dbname=params.dbname,
        sslmode="disable",
        password=params.password,
    )
    async with connection:
        assert connection.server_parameters["session_authorization"] == "scram"
