"""docker-compose.yml describes the same servers as the test fixtures.

Docker does not run on the project's machines, so nothing here starts a container.  The
checks compare the compose services with the fixture servers this suite starts: pg_hba.conf
rules (the compose services match every client address, the fixtures only loopback),
settings, TLS files, roles and databases.  Every file a service mounts must exist in the
repository or be written by ``aiopgtls certs``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from aiopgtls import _cli_certs
from aiopgtls._setups import COMPOSE_SETUPS, SETUPS

from .conftest import PgServer, ServerConfig, ServerFactory

yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extra) parses docker-compose.yml")

REPOSITORY = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPOSITORY / "docker-compose.yml"
VERSIONS = (15, 16, 17, 18)


def load_generator() -> ModuleType:
    path = REPOSITORY / "scripts" / "generate_compose.py"
    spec = importlib.util.spec_from_file_location("generate_compose", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def services() -> Mapping[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    found: Mapping[str, Any] = document["services"]
    return found


def settings_of(service: Mapping[str, Any]) -> dict[str, str]:
    """Return the ``--name=value`` settings of a service's postgres command."""
    command = service["command"]
    assert command[0] == "postgres"
    settings = {}
    for argument in command[1:]:
        match = re.fullmatch(r"--([a-z_]+)=(.*)", argument)
        assert match is not None, argument
        settings[match.group(1)] = match.group(2)
    return settings


def service_for(services: Mapping[str, Any], setup: str, version: int) -> Mapping[str, Any]:
    for service in services.values():
        labels = service["labels"]
        if labels == {"org.aiopgtls.setup": setup, "org.aiopgtls.postgres-version": str(version)}:
            found: Mapping[str, Any] = service
            return found
    raise AssertionError(f"no service for setup {setup!r} on PostgreSQL {version}")


def repository_file(service: Mapping[str, Any], container_path: str) -> Path:
    """Return the repository file mounted at ``container_path``, or the file within a mount."""
    for volume in service["volumes"]:
        source, target, _mode = volume.split(":")
        if container_path == target or container_path.startswith(target + "/"):
            path: Path = REPOSITORY / str(source) / container_path[len(target) :].lstrip("/")
            return path
    raise AssertionError(f"nothing is mounted at {container_path}")


def normalized_hba(text: str) -> list[str]:
    """Return pg_hba.conf lines with the address column replaced by ``all``, deduplicated.

    The fixtures write one line per loopback network; the compose file writes one line per
    rule that matches every address.
    """
    lines: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("host"):
            fields[3] = "all"
        normalized = " ".join(fields)
        if not lines or lines[-1] != normalized:
            lines.append(normalized)
    return lines


def parse_init_sql(text: str) -> tuple[dict[str, tuple[str, str | None]], dict[str, str]]:
    """Return the roles (name -> password encryption, password) and databases (-> owner)."""
    roles = {}
    pattern = (
        r"SET password_encryption = '([a-z0-9-]+)';\n"
        r"CREATE ROLE \"(\w+)\" LOGIN(?: PASSWORD '([^']*)')?;"
    )
    for encryption, name, password in re.findall(pattern, text):
        roles[name] = (encryption, password or None)
    databases = dict(re.findall(r'CREATE DATABASE "(\w+)" OWNER "(\w+)";', text))
    return roles, databases


# --- the file itself ---------------------------------------------------------------------------


def test_compose_parses_as_yaml(services: Mapping[str, Any]) -> None:
    assert len(services) == len(VERSIONS) * len(COMPOSE_SETUPS)


def test_generated_files_up_to_date() -> None:
    generator = load_generator()

    rendered: dict[str, str] = generator.render()
    stale = [path for path, text in rendered.items() if (REPOSITORY / path).read_text() != text]

    assert "docker-compose.yml" in rendered
    assert stale == [], "run: python scripts/generate_compose.py"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("setup", COMPOSE_SETUPS)
def test_service_per_version_and_setup(
    services: Mapping[str, Any], setup: str, version: int
) -> None:
    service = service_for(services, setup, version)

    assert service["image"] == f"postgres:{version}"
    assert settings_of(service)["hba_file"].startswith("/aiopgtls/conf/")


def test_ports_loopback_and_unique(services: Mapping[str, Any]) -> None:
    host_ports = []
    for service in services.values():
        for mapping in service["ports"]:
            address, host_port, container_port = mapping.split(":")
            assert address == "127.0.0.1", mapping
            assert container_port == "5432", mapping
            host_ports.append(int(host_port))

    assert len(host_ports) == len(set(host_ports)) == len(services)


def test_start_script_is_valid_shell() -> None:
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX sh on PATH to check docker/start-postgres.sh")
    result = subprocess.run(
        [shell, "-n", str(REPOSITORY / "docker" / "start-postgres.sh")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr


# --- the services match the fixture servers ------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("setup", COMPOSE_SETUPS)
def test_hba_matches_fixture(
    services: Mapping[str, Any], pg_server_factory: ServerFactory, setup: str
) -> None:
    server = pg_server_factory(setup)
    fixture_hba = (server.cluster.data_dir / "pg_hba.conf").read_text()

    for version in VERSIONS:
        service = service_for(services, setup, version)
        hba_path = repository_file(service, settings_of(service)["hba_file"])
        assert normalized_hba(hba_path.read_text()) == normalized_hba(fixture_hba), version


@pytest.mark.server
@pytest.mark.parametrize("setup", COMPOSE_SETUPS)
def test_settings_match_fixture(
    services: Mapping[str, Any],
    pg_server_factory: ServerFactory,
    server_config: ServerConfig,
    setup: str,
) -> None:
    server = pg_server_factory(setup)
    compared = ["ssl", "password_encryption", "log_connections"]
    if server_config.tls_version is None and SETUPS[setup].tls is not None:
        compared.append("ssl_min_protocol_version")  # a pinned run changes the fixture's

    for version in VERSIONS:
        settings = settings_of(service_for(services, setup, version))
        for name in compared:
            assert settings[name] == show(server, name), (version, name)
        fixture_has_ca = show(server, "ssl_ca_file") != ""
        assert ("ssl_ca_file" in settings) == fixture_has_ca, version


@pytest.mark.server
@pytest.mark.parametrize("setup", [name for name in COMPOSE_SETUPS if SETUPS[name].tls])
def test_tls_files_match_fixture(
    services: Mapping[str, Any], pg_server_factory: ServerFactory, setup: str
) -> None:
    server = pg_server_factory(setup)
    certs_dir = server.certs.directory
    expected = {
        "AIOPGTLS_SERVER_CERT": Path(show(server, "ssl_cert_file")).read_bytes(),
        "AIOPGTLS_SERVER_KEY": Path(show(server, "ssl_key_file")).read_bytes(),
    }
    if show(server, "ssl_ca_file"):
        expected["AIOPGTLS_CLIENT_CA"] = Path(show(server, "ssl_ca_file")).read_bytes()

    for version in VERSIONS:
        environment = service_for(services, setup, version)["environment"]
        named = {key: value for key, value in environment.items() if key.startswith("AIOPGTLS_")}
        assert named.keys() == expected.keys(), version
        for key, content in expected.items():
            assert (certs_dir / named[key]).read_bytes() == content, (version, key)


@pytest.mark.server
@pytest.mark.parametrize("setup", COMPOSE_SETUPS)
def test_roles_match_fixture(
    services: Mapping[str, Any], pg_server_factory: ServerFactory, setup: str
) -> None:
    server = pg_server_factory(setup)
    rows = server.cluster.run_sql(
        "SELECT rolname, coalesce(left(rolpassword, 3), '') FROM pg_authid "
        "WHERE rolcanlogin AND rolname <> 'postgres' ORDER BY 1"
    )
    fixture_roles = dict(line.split("|") for line in rows.splitlines())
    owners = server.cluster.run_sql(
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
        "WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1"
    )
    fixture_databases = dict(line.split("|") for line in owners.splitlines())

    for version in VERSIONS:
        service = service_for(services, setup, version)
        init_file = repository_file(service, "/docker-entrypoint-initdb.d/aiopgtls-init.sql")
        roles, databases = parse_init_sql(init_file.read_text())
        assert roles.keys() == fixture_roles.keys(), version
        assert databases == fixture_databases, version
        for name, (encryption, password) in roles.items():
            assert password == server.roles[name].password, (version, name)
            stored = {"SCR": "scram-sha-256", "md5": "md5", "": None}[fixture_roles[name]]
            assert stored == (encryption if password else None), (version, name)


def show(server: PgServer, setting: str) -> str:
    return server.cluster.run_sql(f"SHOW {setting}")


# --- every mounted file exists or is made by `aiopgtls certs` -------------------------------------


def run_certs_command(directory: Path) -> int:
    parser = argparse.ArgumentParser(prog="aiopgtls")
    _cli_certs.add_parser(parser.add_subparsers(dest="command", required=True))
    return _cli_certs.run(parser.parse_args(["certs", str(directory)]))


def test_mounted_files_exist_or_generated(
    services: Mapping[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs_dir = tmp_path / "certs"
    assert run_certs_command(certs_dir) == 0
    written = {Path(line).name for line in capsys.readouterr().out.splitlines()}

    for name, service in services.items():
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source == "./certs":
                continue
            assert (REPOSITORY / source).exists(), (name, source)
        named = {
            value for key, value in service["environment"].items() if key.startswith("AIOPGTLS_")
        }
        assert named <= written, name
        for file_name in named:
            assert (certs_dir / file_name).is_file(), (name, file_name)
            if file_name.endswith(".key"):
                assert (certs_dir / file_name).stat().st_mode & 0o077 == 0, file_name


def test_certs_command_reports_unwritable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    status = run_certs_command(blocker / "certs")

    assert status == _cli_certs.EXIT_FAILED
    assert str(blocker / "certs") in capsys.readouterr().err


def test_certs_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiopgtls", "certs", str(tmp_path / "certs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    written = sorted(Path(line).name for line in result.stdout.splitlines())
    assert written == sorted(path.name for path in (tmp_path / "certs").iterdir())
    assert "server-a.key" in written
