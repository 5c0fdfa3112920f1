"""Time connection set-up: aiopgtls beside asyncpg and psycopg (libpq 18), in one run.

Each iteration opens a connection to a throwaway local PostgreSQL server, waits for
ReadyForQuery and closes it, sequentially on one asyncio event loop.  The clients take turns
in each round so that drift on the machine affects them alike.  Run:

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/connect.py --iterations 300
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import psycopg

import aiopgtls
from aiopgtls._certs import write_certificate_set
from aiopgtls._cluster import ClusterFactory, Role, ServerTLS

PASSWORD = "bench-secret"  # a throwaway server's role
HBA = ("host all scram all scram-sha-256", "host all all all trust")

Client = Callable[[], Awaitable[None]]


def clients(port: int, ca: Path) -> dict[str, Client]:
    """Return one connect-and-close coroutine per (client, case)."""
    base = {"host": "127.0.0.1", "port": port, "database": "postgres"}
    tls_context = ssl.create_default_context(cafile=str(ca))
    tls_context.check_hostname = False

    async def ours(user: str, sslmode: str, password: str | None = None) -> None:
        connection = await aiopgtls.connect(
            host="127.0.0.1",
            port=port,
            dbname="postgres",
            user=user,
            sslmode=sslmode,
            sslrootcert=str(ca),
            password=password,
        )
        await connection.aclose()

    async def theirs_asyncpg(user: str, use_tls: bool, password: str | None = None) -> None:
        connection = await asyncpg.connect(
            **base, user=user, password=password, ssl=tls_context if use_tls else False
        )
        await connection.close()

    async def theirs_psycopg(user: str, sslmode: str, password: str | None = None) -> None:
        connection = await psycopg.AsyncConnection.connect(
            host="127.0.0.1",
            port=port,
            dbname="postgres",
            user=user,
            sslmode=sslmode,
            sslrootcert=str(ca),
            password=password,
            gssencmode="disable",
        )
        await connection.close()

    return {
        "aiopgtls trust plain": lambda: ours("app", "disable"),
        "asyncpg trust plain": lambda: theirs_asyncpg("app", False),
        "psycopg trust plain": lambda: theirs_psycopg("app", "disable"),
        "aiopgtls trust TLS verify-ca": lambda: ours("app", "verify-ca"),
        "asyncpg trust TLS verify-ca": lambda: theirs_asyncpg("app", True),
        "psycopg trust TLS verify-ca": lambda: theirs_psycopg("app", "verify-ca"),
        "aiopgtls scram TLS verify-ca": lambda: ours("scram", "verify-ca", PASSWORD),
        "asyncpg scram TLS verify-ca": lambda: theirs_asyncpg("scram", True, PASSWORD),
        "psycopg scram TLS verify-ca": lambda: theirs_psycopg("scram", "verify-ca", PASSWORD),
    }


async def measure(cases: dict[str, Client], iterations: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for run in cases.values():  # warm-up: imports, first context build
        await run()
    for _ in range(iterations):
        for name, run in cases.items():
            started = time.perf_counter()
            await run()
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def table(timings: dict[str, list[float]]) -> str:
    lines = ["| case | median ms | p90 ms | mean ms |", "|---|---:|---:|---:|"]
    for name, values in timings.items():
        ordered = sorted(values)
        p90 = ordered[int(len(ordered) * 0.9) - 1]
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | {p90:.2f} | "
            f"{statistics.fmean(values):.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="rounds per case")
    args = parser.parse_args()
    warnings.simplefilter("ignore", aiopgtls.SecurityWarning)

    with ClusterFactory() as factory, tempfile.TemporaryDirectory() as folder:
        certs = write_certificate_set(Path(folder) / "certs")
        cluster = factory.create(
            "bench",
            HBA,
            tls=ServerTLS(certs.server_a.cert, certs.server_a.key),
            settings={"log_connections": "off", "max_connections": "50"},
        )
        cluster.start()
        cluster.create_role(Role("app"))
        cluster.create_role(Role("scram", PASSWORD))
        cases = clients(cluster.port, certs.ca_a)
        timings = asyncio.run(measure(cases, args.iterations))

    print(
        f"PostgreSQL {factory.version}, Python {sys.version.split()[0]}, "
        f"{ssl.OPENSSL_VERSION}, {args.iterations} iterations per case"
    )
    print(table(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
