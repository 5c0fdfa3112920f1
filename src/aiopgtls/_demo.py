"""``aiopgtls demo``: a throwaway server with test certificates, probed in every sslmode."""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ._certs import CertificateSet, write_certificate_set
from ._cluster import ClusterError, ClusterFactory, PostgresCluster, Role, ServerTLS
from ._connect import connect
from .errors import ConfigurationError, ConnectError, SecurityWarning

DEMO_PASSWORD = "demo-password"

HBA_LINES = (
    "hostssl all sslonly all trust",
    "host    all sslonly all reject",
    "host    all scram    all scram-sha-256",
    "host    all all      all trust",
)


@dataclass(frozen=True)
class Case:
    """One row of the demo table: a description and the conninfo settings it adds."""

    label: str
    settings: dict[str, str]


def _cases(certs: CertificateSet, missing_root: Path) -> list[Case]:
    right, wrong, absent = str(certs.ca_a), str(certs.ca_b), str(missing_root)
    return [
        Case("disable", {"sslmode": "disable", "sslrootcert": absent}),
        Case("allow", {"sslmode": "allow", "sslrootcert": absent}),
        Case(
            "allow, hostssl-only user",
            {"sslmode": "allow", "user": "sslonly", "sslrootcert": absent},
        ),
        Case("prefer, no root file", {"sslmode": "prefer", "sslrootcert": absent}),
        Case("prefer, wrong CA", {"sslmode": "prefer", "sslrootcert": wrong}),
        Case("require, no root file", {"sslmode": "require", "sslrootcert": absent}),
        Case("require, wrong CA", {"sslmode": "require", "sslrootcert": wrong}),
        Case("verify-ca, no root file", {"sslmode": "verify-ca", "sslrootcert": absent}),
        Case("verify-ca, right CA", {"sslmode": "verify-ca", "sslrootcert": right}),
        Case("verify-full, right CA", {"sslmode": "verify-full", "sslrootcert": right}),
        Case(
            "verify-full, other name",
            {
                "sslmode": "verify-full",
                "sslrootcert": right,
                "host": "db.other.test",
                "hostaddr": "127.0.0.1",
            },
        ),
        Case(
            "verify-full, SCRAM-PLUS",
            {
                "sslmode": "verify-full",
                "sslrootcert": right,
                "user": "scram",
                "password": DEMO_PASSWORD,
                "channel_binding": "require",
            },
        ),
    ]


def run_demo(*, as_json: bool = False, pg_bin: str | None = None) -> int:
    """Start a server, probe it in every sslmode, print a table and clean up."""
    try:
        factory = ClusterFactory(Path(pg_bin) if pg_bin else None)
    except ClusterError as exc:
        print(f"aiopgtls demo: {exc}", file=sys.stderr)
        return 2

    with factory, tempfile.TemporaryDirectory(prefix="aiopgtls-demo-") as folder:
        certs = write_certificate_set(Path(folder) / "certs")
        cluster = _start_server(factory, certs)
        print(
            f"Started PostgreSQL {factory.version} on localhost port {cluster.port} "
            f"(certificate for localhost from a throwaway CA).",
            file=sys.stderr,
        )
        base = {"host": "localhost", "port": str(cluster.port), "user": "app", "dbname": "postgres"}
        rows = anyio.run(_probe_all, base, _cases(certs, Path(folder) / "no-root.crt"))

    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows))
    return 0


def _start_server(factory: ClusterFactory, certs: CertificateSet) -> PostgresCluster:
    tls = ServerTLS(cert_file=certs.server_a.cert, key_file=certs.server_a.key)
    cluster = factory.create("demo", HBA_LINES, tls=tls)
    cluster.start()
    for role in (Role("app"), Role("sslonly"), Role("scram", password=DEMO_PASSWORD)):
        cluster.create_role(role)
    return cluster


async def _probe_all(base: dict[str, str], cases: list[Case]) -> list[dict[str, Any]]:
    return [await _probe_one(base, case) for case in cases]


async def _probe_one(base: dict[str, str], case: Case) -> dict[str, Any]:
    row: dict[str, Any] = {"case": case.label}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SecurityWarning)
        try:
            settings: dict[str, Any] = {**base, **case.settings}
            connection = await connect(**settings)
        except (ConnectError, ConfigurationError) as exc:
            row.update(
                outcome="failed",
                encrypted=False,
                verified="-",
                detail=f"{type(exc).__name__}: {_first_line(exc)}",
            )
            return row

    await connection.aclose()
    methods = " -> ".join(f"{a.method}:{a.outcome}" for a in connection.attempts)
    detail = methods + (" (SecurityWarning)" if caught else "")
    row.update(
        outcome="connected",
        encrypted=connection.encrypted,
        verified=str(connection.verified),
        detail=detail,
    )
    return row


def _first_line(exc: Exception) -> str:
    message = exc.message if isinstance(exc, ConnectError) else str(exc)
    return message.splitlines()[0]


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ("case", "outcome", "encrypted", "verified", "detail")
    cells = [[str(row[key]) for key in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])  # the last column is not padded
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(lines)
