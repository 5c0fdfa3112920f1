"""Our ladder against libpq 18 (bundled in psycopg's binary wheel), on real servers.

For every configured PostgreSQL version (``--pg-versions``), server setup, sslmode, root
certificate file (absent, the right CA, a wrong CA) and host spelling, both clients connect in
the same run; their outcomes (connected, encrypted) must agree.  When ours connects, the
server's own view (pg_stat_ssl) must agree as well.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopgtls

from .conftest import PgServer, ServerFactory
from .libpq_oracle import libpq_outcome
from .pgquery import server_sees_ssl

pytestmark = pytest.mark.anyio

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
ROOTS = ("absent", "right", "wrong")
HOSTS = ("localhost", "127.0.0.1")

# (setup, user): each user of the main server stands for a pg_hba setup of its own.
SETUP_USERS = (
    ("ssl_off", "app"),
    ("main", "app"),
    ("main", "sslonly"),
    ("main", "nosslonly"),
    ("main", "certuser"),
    ("main", "scram"),
    ("other_ca", "postgres"),
    ("other_host", "postgres"),
    ("chain", "postgres"),
)


def root_files(server: PgServer) -> dict[str, Path]:
    certs = server.certs
    right = {"other_ca": certs.ca_b, "chain": certs.ca_c}.get(server.setup, certs.ca_a)
    wrong = certs.ca_a if right != certs.ca_a else certs.ca_b
    return {"right": right, "wrong": wrong}


def settings_for(
    server: PgServer, user: str, sslmode: str, root: str, host: str, home: Path
) -> dict[str, str]:
    settings = {
        "host": host,
        "port": str(server.port),
        "user": user,
        "dbname": "postgres",
        "sslmode": sslmode,
        "connect_timeout": "10",
    }
    if root != "absent":
        settings["sslrootcert"] = str(root_files(server)[root])
    if user in server.roles and server.roles[user].password:
        settings["password"] = server.password(user)
    if user == server.certs.client_user:
        settings["sslcert"] = str(server.certs.client.cert)
        settings["sslkey"] = str(server.certs.client.key)
    return settings


async def our_outcome(settings: dict[str, Any]) -> tuple[bool, bool]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", aiopgtls.SecurityWarning)
            connection = await aiopgtls.connect(**settings)
    except (aiopgtls.ConnectError, aiopgtls.ConfigurationError):
        return False, False
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)
        assert seen_by_server == connection.encrypted, settings
        return True, connection.encrypted


@pytest.mark.parametrize(("setup", "user"), SETUP_USERS, ids=[f"{s}-{u}" for s, u in SETUP_USERS])
async def test_outcomes_equal_libpq(
    setup: str, user: str, pg_version: int, pg_server_factory: ServerFactory, empty_home: Path
) -> None:
    server = pg_server_factory(setup, pg_version)
    disagreements = []
    outcomes = set()
    for sslmode in SSLMODES:
        for root in ROOTS:
            for host in HOSTS:
                settings = settings_for(server, user, sslmode, root, host, empty_home)
                theirs = await anyio.to_thread.run_sync(libpq_outcome, settings)
                ours = await our_outcome(settings)
                outcomes.add(theirs)
                if ours != theirs:
                    disagreements.append(
                        f"{sslmode:<11} root={root:<6} host={host:<9} "
                        f"libpq={theirs} aiopgtls={ours}"
                    )
    assert disagreements == [], "\n".join(disagreements)
    # The grid must exercise more than one outcome, or it compares nothing interesting.
    assert len(outcomes) > 1
