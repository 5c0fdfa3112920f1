"""Service files: lookup order, group parsing and precedence, compared with libpq 18."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiopgtls._params import SSLMode
from aiopgtls._resolve import resolve_params
from aiopgtls._service_file import find_service, read_service_file
from aiopgtls.errors import ConfigurationError

from .libpq_oracle import assert_same_resolution

NO_SOCKET = "/nonexistent/aiopgtls-socket"


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """An empty home directory and an empty system configuration directory."""
    home = tmp_path / "home"
    sysconf = tmp_path / "etc"
    home.mkdir()
    sysconf.mkdir()
    return {"home": home, "sysconf": sysconf, "tmp": tmp_path}


def base_environ(dirs: dict[str, Path]) -> dict[str, str]:
    return {"HOME": str(dirs["home"]), "PGSYSCONFDIR": str(dirs["sysconf"])}


# (service file text, conninfo, extra environment)
FILE_CASES: list[tuple[str, str, dict[str, str]]] = [
    (f"[a]\nhost={NO_SOCKET}\nport=7\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nport=7\nport=8\n[a]\nuser=second\n", "service=a", {}),
    (f"[a] trailing text\nhost={NO_SOCKET}\n", "service=a", {}),
    (f"[ab]\nhost=/nonexistent/ab\n[a]\nhost={NO_SOCKET}\n", "service=a", {}),
    (f"  [a]  \n  host={NO_SOCKET}  \n", "service=a", {}),
    (f"[a]\nhost = {NO_SOCKET}\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode= require\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\napplication_name= spaced  \n", "service=a", {}),
    (f"[a]\nrequiressl=1\nhost={NO_SOCKET}\n", "service=a", {}),
    ("[a]\nno equals sign\n", "service=a", {}),
    ("[a]\nservice=b\n", "service=a", {}),
    (f"[A]\nhost={NO_SOCKET}\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\n#comment\n\n;semicolon\n", "service=a", {}),
    (f"bogus line before\n[a]\nhost={NO_SOCKET}\n[b]\nbogus line after\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\r\nsslmode=require\r\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode=require\n", "service=a host=/nonexistent/x", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode=require\n", "service=a sslmode=disable", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode=require\n", "", {"PGSERVICE": "a"}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode=require\n", "", {"PGSERVICE": "a", "PGSSLMODE": "disable"}),
    (f"[a]\nhost={NO_SOCKET}\n", "", {"PGSERVICE": "a", "PGSSLMODE": "disable", "PGPORT": "9"}),
    (f"[a]\nhost={NO_SOCKET}\n", "service=a", {"PGSERVICE": "zz"}),
    (f"[a]\nhost={NO_SOCKET}\nsslrootcert=system\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslrootcert=system\nsslmode=require\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslrootcert=system\n", "service=a", {"PGSSLMODE": "require"}),
    (f"[a]\nhost={NO_SOCKET}\nsslpassword=key-secret\npassword=\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\npassword=from-service\n", "service=a", {"PGPASSWORD": "env"}),
    (f"[]\nhost={NO_SOCKET}\n", "service=''", {}),
    (f"[a]\nhost={NO_SOCKET}\n", "service=zz", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslfactory=pkg.mod:attr\n", "service=a", {}),
    (f"\ufeff[a]\nhost={NO_SOCKET}\n", "service=a", {}),
    (f"[a]\nhost={NO_SOCKET}\nsslmode=bogus\n", "service=a", {}),
]


@pytest.mark.parametrize(("text", "conninfo", "extra"), FILE_CASES)
def test_service_file_matches_libpq(
    dirs: dict[str, Path], text: str, conninfo: str, extra: dict[str, str]
) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text(text)
    environ = {**base_environ(dirs), "PGSERVICEFILE": str(path), **extra}

    assert_same_resolution(conninfo, environ)


def test_home_file_is_found(dirs: dict[str, Path]) -> None:
    (dirs["home"] / ".pg_service.conf").write_text(f"[a]\nhost={NO_SOCKET}\nport=7\n")
    environ = base_environ(dirs)
    assert_same_resolution("service=a", environ)

    params = resolve_params("service=a", {}, environ=environ)

    assert params.port == 7
    assert params.sources["port"] == f"service file ({dirs['home']}/.pg_service.conf, [a])"


def test_system_file_is_searched_after_user_file(dirs: dict[str, Path]) -> None:
    (dirs["home"] / ".pg_service.conf").write_text(f"[other]\nhost={NO_SOCKET}\n")
    (dirs["sysconf"] / "pg_service.conf").write_text(f"[a]\nhost={NO_SOCKET}\nport=8\n")
    environ = base_environ(dirs)
    assert_same_resolution("service=a", environ)

    params = resolve_params("service=a", {}, environ=environ)

    assert params.port == 8
    assert params.sources["port"] == f"service file ({dirs['sysconf']}/pg_service.conf, [a])"


def test_user_file_group_hides_system_group(dirs: dict[str, Path]) -> None:
    (dirs["home"] / ".pg_service.conf").write_text(f"[a]\nhost={NO_SOCKET}\n")
    (dirs["sysconf"] / "pg_service.conf").write_text("[a]\nport=8\n")
    environ = base_environ(dirs)
    assert_same_resolution("service=a", environ)

    params = resolve_params("service=a", {}, environ=environ)

    assert params.port == 5432


def test_missing_service_file_variable_is_an_error(dirs: dict[str, Path]) -> None:
    environ = {**base_environ(dirs), "PGSERVICEFILE": str(dirs["tmp"] / "missing.conf")}
    assert_same_resolution("service=a", environ)

    with pytest.raises(ConfigurationError, match=r'service file ".*missing\.conf" not found'):
        resolve_params("service=a", {}, environ=environ)


def test_unknown_service_names_the_files(dirs: dict[str, Path]) -> None:
    (dirs["home"] / ".pg_service.conf").write_text("[other]\nport=1\n")
    environ = base_environ(dirs)

    with pytest.raises(ConfigurationError) as caught:
        resolve_params("service=prod", {}, environ=environ)

    message = str(caught.value)
    assert 'definition of service "prod" not found' in message
    assert str(dirs["home"] / ".pg_service.conf") in message
    assert caught.value.parameter == "service"
    assert caught.value.value == "prod"


def test_syntax_error_names_file_and_line(dirs: dict[str, Path]) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text("[a]\nhost=x\nhost = y\n")
    environ = {**base_environ(dirs), "PGSERVICEFILE": str(path)}

    with pytest.raises(ConfigurationError) as caught:
        resolve_params("service=a", {}, environ=environ)

    assert f'service file "{path}", line 3' in str(caught.value)
    assert 'invalid connection option "host "' in str(caught.value)


def test_ldap_lines_are_rejected(dirs: dict[str, Path]) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text("[a]\nldap://ldap.example.test/dc=example?uniqueMember?one?(cn=a)\n")

    with pytest.raises(ConfigurationError, match="LDAP service lookups are not supported"):
        read_service_file(str(path), "a")


def test_service_values_fill_only_unset_keywords(dirs: dict[str, Path]) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text(f"[a]\nhost={NO_SOCKET}\nsslmode=require\napplication_name=svc\n")
    environ = {**base_environ(dirs), "PGSERVICEFILE": str(path), "PGAPPNAME": "env"}

    params = resolve_params("service=a", {"sslmode": "verify-ca"}, environ=environ)

    assert params.sslmode is SSLMode.VERIFY_CA
    assert params.application_name == "svc"
    assert params.sources["application_name"] == f"service file ({path}, [a])"
    assert params.service == "a"


def test_invalid_value_names_the_service_file(dirs: dict[str, Path]) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text("[a]\nsslmode=bogus\n")
    environ = {**base_environ(dirs), "PGSERVICEFILE": str(path)}

    with pytest.raises(ConfigurationError) as caught:
        resolve_params("service=a", {}, environ=environ)

    assert f"service file ({path}, [a])" in str(caught.value)
    assert caught.value.value == "bogus"


def test_group_is_first_occurrence(tmp_path: Path) -> None:
    path = tmp_path / "services.conf"
    path.write_text("[a]\nport=1\nport=2\n[b]\nport=3\n[a]\nport=4\n")

    entry = read_service_file(str(path), "a")

    assert entry is not None
    assert dict(entry.settings) == {"port": "1"}


def test_directory_counts_as_empty_file(tmp_path: Path) -> None:
    assert read_service_file(str(tmp_path), "a") is None


def test_find_service_reads_environment_mapping(dirs: dict[str, Path]) -> None:
    path = dirs["tmp"] / "services.conf"
    path.write_text("[a]\nport=1\n")

    entry = find_service("a", {**base_environ(dirs), "PGSERVICEFILE": str(path)})

    assert entry.path == str(path)
    assert entry.source == f"service file ({path}, [a])"
