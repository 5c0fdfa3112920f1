"""libpq 18 as the oracle for parameter resolution, through psycopg's ``pq`` module.

``PQconnectdb()`` runs libpq's whole resolution (conninfo, service file, environment,
defaults, password file, checks) and then tries to connect.  The tests give it hosts that are
missing Unix-socket directories, so the attempt fails at once and without network traffic.
``PQconninfo()`` then shows what libpq resolved, and ``PQpass()`` shows the password of the
last host tried.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import psycopg
from psycopg import pq

from aiopgtls._conninfo import LIBPQ_KEYWORDS, SECRET_KEYWORDS
from aiopgtls._params import ConnectParams
from aiopgtls._resolve import resolve_params
from aiopgtls.errors import ConfigurationError

# The whole error of one attempt on a Unix socket where no server listens.
_SOCKET_FAILURE = re.compile(
    r'connection to server on socket "[^"]*" failed: '
    r"(?:No such file or directory|Connection refused)\s*"
    r"Is the server running locally and accepting connections on that socket\?\s*"
)

# Variables that decide how libpq resolves parameters, besides the PG* ones.
_OTHER_VARIABLES = ("HOME",)


@dataclass(frozen=True)
class LibpqResult:
    """What libpq resolved: whether it accepted the settings, and the resolved values."""

    accepted: bool
    error: str
    settings: Mapping[str, str]
    password: str | None


def libpq_resolve(conninfo: str) -> LibpqResult:
    """Resolve ``conninfo`` with libpq under the current process environment."""
    pgconn = pq.PGconn.connect(conninfo.encode("utf-8", "surrogateescape"))
    try:
        error = pgconn.error_message.decode("utf-8", "replace")
        settings = {
            option.keyword.decode(): option.val.decode("utf-8", "surrogateescape")
            for option in pgconn.info
            if option.val is not None and option.keyword.decode() not in SECRET_KEYWORDS
        }
        password = pgconn.password.decode("utf-8", "surrogateescape") or None
    finally:
        pgconn.finish()
    accepted = _SOCKET_FAILURE.sub("", error).strip() == ""
    return LibpqResult(accepted, error.strip(), settings, password)


@contextlib.contextmanager
def process_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Run the block with every PG* variable and HOME replaced by ``values``."""
    saved = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("PG") or name in _OTHER_VARIABLES
    }
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in [n for n in os.environ if n.startswith("PG") or n in _OTHER_VARIABLES]:
            del os.environ[name]
        os.environ.update(saved)


def assert_same_resolution(conninfo: str, environ: Mapping[str, str]) -> None:
    """Resolve ``conninfo`` under ``environ`` with libpq and with aiopgtls, and compare.

    Both must accept or both reject.  When both accept, every non-secret keyword and the
    password of the last host must be equal.
    """
    with process_environment(environ):
        expected = libpq_resolve(conninfo)
        params: ConnectParams | None = None
        try:
            params = resolve_params(conninfo, {}, environ=environ)
        except ConfigurationError as exc:
            error = str(exc)

    if params is None:
        assert not expected.accepted, f"libpq accepted it, aiopgtls raised: {error}"
        return
    assert expected.accepted, f"aiopgtls accepted it, libpq said: {expected.error}"
    ours = {key: value for key, value in params.settings.items() if key in LIBPQ_KEYWORDS}
    assert ours == dict(expected.settings)
    assert params.hosts[-1].password == expected.password


def libpq_outcome(settings: Mapping[str, object]) -> tuple[bool, bool]:
    """Connect with psycopg (libpq 18) and return (connected, encrypted)."""
    try:
        connection = psycopg.connect(**settings)  # type: ignore[arg-type]
    except psycopg.OperationalError:
        return False, False
    with connection:
        return True, bool(connection.pgconn.ssl_in_use)
