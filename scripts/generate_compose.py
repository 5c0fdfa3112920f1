#!/usr/bin/env python3
"""Generate docker-compose.yml and docker/ from the server setups in ``aiopgtls._setups``.

Usage: ``python scripts/generate_compose.py [--check]`` from the repository, with aiopgtls
importable (the project's virtualenv).  ``--check`` writes nothing and exits with status 1
when a generated file differs from the one on disk.

Each service runs the official ``postgres:<major>`` image in one setup of ``COMPOSE_SETUPS``
and publishes port 5432 on 127.0.0.1 only, at ``5400 + 10 * major + index`` (PostgreSQL 18
``main`` is 5581).  The TLS files come from ``./certs``, written by ``aiopgtls certs certs``.
``docker/start-postgres.sh`` copies them into the container before the image's entrypoint
runs, because PostgreSQL rejects a key file that the server's OS user does not own.

The services differ from the test fixtures' servers in two ways only.  They listen on every
container address, and their pg_hba.conf rules match every client address instead of the
loopback networks, because published ports reach the container from the Docker bridge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

from aiopgtls._cluster import BASE_SETTINGS
from aiopgtls._setups import COMPOSE_SETUPS, SETUPS, ServerSetup

POSTGRES_VERSIONS = (15, 16, 17, 18)
CONTAINER_PORT = 5432
FLOW_WIDTH = 96

COMPOSE_FILE = "docker-compose.yml"
START_SCRIPT = "docker/start-postgres.sh"

# Paths inside the container.
CERTS_MOUNT = "/aiopgtls/certs"
CONF_MOUNT = "/aiopgtls/conf"
TLS_COPY_DIR = "/aiopgtls/tls"
START_MOUNT = "/aiopgtls/start-postgres.sh"
INIT_MOUNT = "/docker-entrypoint-initdb.d/aiopgtls-init.sql"

# Settings of the test clusters that describe the server rather than its speed or its
# temporary folders; the compose services share them.
SHARED_SETTINGS = ("password_encryption", "log_connections", "ssl")

# NOTE: the compose services are not started by the test suite (Docker does not run on the
# project's CI machines); tests/test_compose.py checks only their configuration.

Yaml: TypeAlias = "str | int | Sequence[Yaml] | Mapping[str, Yaml]"


def host_port(version: int, setup_name: str) -> int:
    """Return the loopback port on which the service of ``setup_name`` is published."""
    return 5400 + 10 * version + COMPOSE_SETUPS.index(setup_name)


def service_name(version: int, setup_name: str) -> str:
    return f"pg{version}-{setup_name.replace('_', '-')}"


def server_settings(setup: ServerSetup) -> dict[str, str]:
    """Return the ``-c`` settings of a setup's service, in a stable order."""
    settings = {key: BASE_SETTINGS[key] for key in SHARED_SETTINGS}
    settings["listen_addresses"] = "*"
    settings["hba_file"] = f"{CONF_MOUNT}/pg_hba.conf"
    if setup.tls is None:
        settings["ssl"] = "off"
        return settings

    settings["ssl"] = "on"
    settings["ssl_cert_file"] = f"{TLS_COPY_DIR}/server.crt"
    settings["ssl_key_file"] = f"{TLS_COPY_DIR}/server.key"
    if setup.tls.client_ca is not None:
        settings["ssl_ca_file"] = f"{TLS_COPY_DIR}/ca.crt"
    settings["ssl_min_protocol_version"] = "TLSv1.2"
    return settings


def certificate_file_names(setup: ServerSetup) -> dict[str, str]:
    """Return the start script's variables naming the files it copies from ./certs.

    The names are the ones ``aiopgtls certs`` writes: each ``CertificateSet`` attribute
    ``server_a`` becomes ``server-a.crt`` and ``server-a.key``, ``ca_a`` becomes ``ca-a.crt``.
    """
    if setup.tls is None:
        return {}
    stem = setup.tls.server.replace("_", "-")
    names = {"AIOPGTLS_SERVER_CERT": f"{stem}.crt", "AIOPGTLS_SERVER_KEY": f"{stem}.key"}
    if setup.tls.client_ca is not None:
        names["AIOPGTLS_CLIENT_CA"] = f"{setup.tls.client_ca.replace('_', '-')}.crt"
    return names


def service(version: int, setup: ServerSetup) -> dict[str, Yaml]:
    # postgres reads "--name=value" like "-c name=value".
    command = ["postgres"] + [f"--{key}={value}" for key, value in server_settings(setup).items()]

    environment = {"POSTGRES_HOST_AUTH_METHOD": "trust", **certificate_file_names(setup)}
    conf_dir = f"./docker/{setup.name}"
    return {
        "image": f"postgres:{version}",
        "entrypoint": ["sh", START_MOUNT],
        "command": command,
        "environment": environment,
        "ports": [f"127.0.0.1:{host_port(version, setup.name)}:{CONTAINER_PORT}"],
        "volumes": [
            f"./{START_SCRIPT}:{START_MOUNT}:ro",
            f"./certs:{CERTS_MOUNT}:ro",
            f"{conf_dir}:{CONF_MOUNT}:ro",
            f"{conf_dir}/init.sql:{INIT_MOUNT}:ro",
        ],
        "labels": {"org.aiopgtls.setup": setup.name, "org.aiopgtls.postgres-version": str(version)},
        "healthcheck": {
            "test": ["CMD", "pg_isready", "-U", "postgres"],
            "interval": "2s",
            "timeout": "5s",
            "retries": 30,
        },
    }


def compose_document() -> dict[str, Yaml]:
    services: dict[str, Yaml] = {}
    for version in POSTGRES_VERSIONS:
        for name in COMPOSE_SETUPS:
            services[service_name(version, name)] = service(version, SETUPS[name])
    return {"name": "aiopgtls", "services": services}


def hba_file(setup: ServerSetup) -> str:
    # The first line serves the image's own set-up over the Unix socket, as in the fixtures.
    lines = ["local all all trust", *setup.hba_lines(networks=("all",))]
    return "\n".join(lines) + "\n"


def init_sql(setup: ServerSetup) -> str:
    statements = []
    for role in setup.roles:
        statement = f"SET password_encryption = '{role.password_encryption}';\n"
        statement += f'CREATE ROLE "{role.name}" LOGIN'
        if role.password is not None:
            statement += " PASSWORD '" + role.password.replace("'", "''") + "'"
        statements.append(statement + ";")
    for database, owner in setup.databases.items():
        statements.append(f'CREATE DATABASE "{database}" OWNER "{owner}";')
    header = f"-- Roles and databases of the {setup.name} setup (test passwords only).\n"
    return header + "\n".join(statements) + "\n"


START_SCRIPT_TEXT = f"""\
#!/bin/sh
# Entry point of the aiopgtls compose services (generated by scripts/generate_compose.py).
# It copies the TLS files named by AIOPGTLS_SERVER_CERT, AIOPGTLS_SERVER_KEY and
# AIOPGTLS_CLIENT_CA from the read-only {CERTS_MOUNT} mount into {TLS_COPY_DIR}, owned by the
# postgres user with the key at mode 0600, because PostgreSQL rejects a key file that another
# user owns or that others can read.  Then it runs the image's own entry point.
set -eu

mkdir -p {TLS_COPY_DIR}
if [ -n "${{AIOPGTLS_SERVER_CERT:-}}" ]; then
    for name in "$AIOPGTLS_SERVER_CERT" "$AIOPGTLS_SERVER_KEY" "${{AIOPGTLS_CLIENT_CA:-}}"; do
        if [ -n "$name" ] && [ ! -f "{CERTS_MOUNT}/$name" ]; then
            echo "start-postgres.sh: {CERTS_MOUNT}/$name not found; run 'aiopgtls certs certs'" \\
                "in the folder of docker-compose.yml first" >&2
            exit 1
        fi
    done
    cp "{CERTS_MOUNT}/$AIOPGTLS_SERVER_CERT" {TLS_COPY_DIR}/server.crt
    cp "{CERTS_MOUNT}/$AIOPGTLS_SERVER_KEY" {TLS_COPY_DIR}/server.key
    if [ -n "${{AIOPGTLS_CLIENT_CA:-}}" ]; then
        cp "{CERTS_MOUNT}/$AIOPGTLS_CLIENT_CA" {TLS_COPY_DIR}/ca.crt
    fi
    chmod 0600 {TLS_COPY_DIR}/server.key
fi
chown -R postgres:postgres {TLS_COPY_DIR}

exec docker-entrypoint.sh "$@"
"""


def render() -> dict[str, str]:
    """Return every generated file: path relative to the repository, then its text."""
    header = (
        "# Generated by scripts/generate_compose.py from src/aiopgtls/_setups.py; edit those\n"
        "# and run the script again.  Start with: aiopgtls certs certs && docker compose up\n"
        "# (see docs/docker.md).  Test passwords and throwaway certificates only.\n"
    )
    files = {COMPOSE_FILE: header + to_yaml(compose_document()), START_SCRIPT: START_SCRIPT_TEXT}
    for name in COMPOSE_SETUPS:
        files[f"docker/{name}/pg_hba.conf"] = hba_file(SETUPS[name])
        files[f"docker/{name}/init.sql"] = init_sql(SETUPS[name])
    return files


def to_yaml(value: Yaml, indent: int = 0) -> str:
    """Render mappings, lists, strings and integers as block-style YAML.

    Strings are written as JSON strings, which YAML reads as double-quoted scalars, so no
    value is ever taken for a number, a boolean or a null.
    """
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            flow = _flow_list(item)
            if isinstance(item, (str, int)):
                lines.append(f"{pad}{key}: {_scalar(item)}")
            elif flow is not None and len(pad) + len(key) + len(flow) < FLOW_WIDTH:
                lines.append(f"{pad}{key}: {flow}")
            else:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 1).rstrip("\n"))
    elif isinstance(value, (str, int)):
        lines.append(pad + _scalar(value))
    else:
        for item in value:
            if isinstance(item, (str, int)):
                lines.append(f"{pad}- {_scalar(item)}")
            else:
                nested = to_yaml(item, indent + 1).lstrip()
                lines.append(f"{pad}- {nested.rstrip()}")
    return "\n".join(lines) + "\n"


def _flow_list(value: Yaml) -> str | None:
    """Return a list of scalars as a YAML flow sequence, or None for anything else."""
    if isinstance(value, (str, int, Mapping)):
        return None
    if not all(isinstance(item, (str, int)) for item in value):
        return None
    return "[" + ", ".join(_scalar(item) for item in value) + "]"  # type: ignore[arg-type]


def _scalar(value: str | int) -> str:
    return str(value) if isinstance(value, int) else json.dumps(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docker-compose.yml and docker/.")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository folder to write into (default: this script's repository)",
    )
    args = parser.parse_args(argv)

    stale = []
    for relative, text in render().items():
        path = args.root / relative
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    if args.check and stale:
        print(
            f"generate_compose: out of date: {', '.join(stale)}; run "
            "python scripts/generate_compose.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
