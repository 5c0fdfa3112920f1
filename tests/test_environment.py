"""Environment variables and defaults, compared with libpq 18 resolving the same settings.

Every case runs libpq (``PQconnectdb()`` through psycopg) and ``resolve_params()`` under the
same process environment, with HOME and PGSYSCONFDIR pointing at directories that do not
exist, and compares whether both accept the settings and what they resolve them to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import pq

from aiopgtls._conninfo import LIBPQ_KEYWORDS, make_conninfo
from aiopgtls._environment import (
    BUILTIN_DEFAULTS,
    ENVIRONMENT_VARIABLES,
    KEYWORD_ORDER,
    operating_system_user,
)
from aiopgtls._params import SSLMode
from aiopgtls._resolve import resolve_params
from aiopgtls.errors import ConfigurationError

from .libpq_oracle import assert_same_resolution, libpq_resolve, process_environment

NO_SOCKET = "/nonexistent/aiopgtls-socket"
ISOLATED = {"HOME": "/nonexistent/home", "PGSYSCONFDIR": "/nonexistent/etc"}


# --- the tables -------------------------------------------------------------------------------


def test_keyword_order_is_libpq_order() -> None:
    libpq_order = [option.keyword.decode() for option in pq.Conninfo.get_defaults()]

    assert [keyword for keyword in KEYWORD_ORDER if keyword in LIBPQ_KEYWORDS] == libpq_order


def test_environment_variables_equal_libpq() -> None:
    libpq_variables = {
        option.keyword.decode(): option.envvar.decode()
        for option in pq.Conninfo.get_defaults()
        if option.envvar is not None
    }

    assert dict(ENVIRONMENT_VARIABLES) == libpq_variables


def test_builtin_defaults_equal_libpq() -> None:
    libpq_defaults = {
        option.keyword.decode(): option.compiled.decode()
        for option in pq.Conninfo.get_defaults()
        if option.compiled is not None
    }

    assert dict(BUILTIN_DEFAULTS) == libpq_defaults


def test_default_user_is_effective_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    with process_environment(ISOLATED):
        defaults = {option.keyword.decode(): option.val for option in pq.Conninfo.get_defaults()}

    libpq_user = defaults["user"]
    assert libpq_user is not None
    assert operating_system_user() == libpq_user.decode()


# --- precedence cases -------------------------------------------------------------------------

PRECEDENCE_CASES: list[tuple[str, dict[str, str]]] = [
    (f"host={NO_SOCKET}", {}),
    ("", {"PGHOST": NO_SOCKET}),
    (f"host={NO_SOCKET}", {"PGHOST": "/nonexistent/other"}),
    ("host=''", {"PGHOST": NO_SOCKET}),
    (f"host={NO_SOCKET}", {"PGHOST": ""}),
    (f"host={NO_SOCKET}", {"PGPORT": "5433", "PGUSER": "alice", "PGDATABASE": "db"}),
    (f"host={NO_SOCKET} port=6000", {"PGPORT": "5433"}),
    (f"host={NO_SOCKET} user=''", {"PGUSER": "alice"}),
    (f"host={NO_SOCKET} dbname=''", {"PGDATABASE": "db", "PGUSER": "bob"}),
    (f"host={NO_SOCKET}", {"PGSSLMODE": ""}),
    (f"host={NO_SOCKET}", {"PGSSLMODE": "require", "PGREQUIRESSL": "0"}),
    (f"host={NO_SOCKET}", {"PGSSLMODE": "disable", "PGREQUIRESSL": "1"}),
    (f"host={NO_SOCKET}", {"PGREQUIRESSL": "1"}),
    (f"host={NO_SOCKET}", {"PGREQUIRESSL": "10"}),
    (f"host={NO_SOCKET}", {"PGREQUIRESSL": "0"}),
    (f"host={NO_SOCKET} sslmode=allow", {"PGREQUIRESSL": "1"}),
    (f"host={NO_SOCKET} requiressl=1", {"PGSSLMODE": "disable"}),
    (f"host={NO_SOCKET} sslrootcert=system", {}),
    (f"host={NO_SOCKET} sslrootcert=system", {"PGREQUIRESSL": "0"}),
    (f"host={NO_SOCKET} sslrootcert=system", {"PGREQUIRESSL": "1"}),
    (f"host={NO_SOCKET} sslrootcert=system", {"PGSSLMODE": "verify-ca"}),
    (f"host={NO_SOCKET} sslrootcert=system sslmode=prefer", {}),
    (f"host={NO_SOCKET}", {"PGSSLROOTCERT": "system"}),
    (f"host={NO_SOCKET}", {"PGSSLROOTCERT": "system", "PGSSLMODE": "verify-full"}),
    (f"host={NO_SOCKET} sslnegotiation=direct", {}),
    (f"host={NO_SOCKET}", {"PGSSLNEGOTIATION": "direct", "PGSSLMODE": "require"}),
    (f"host={NO_SOCKET}", {"PGSSLNEGOTIATION": "direct", "PGREQUIRESSL": "1"}),
    (f"host={NO_SOCKET}", {"PGSSLCERTMODE": "require"}),
    (f"host={NO_SOCKET}", {"PGSSLCERTMODE": "never"}),
    (f"host={NO_SOCKET}", {"PGTARGETSESSIONATTRS": "prefer-standby"}),
    (f"host={NO_SOCKET}", {"PGTARGETSESSIONATTRS": "master"}),
    (f"host={NO_SOCKET}", {"PGLOADBALANCEHOSTS": "random"}),
    (f"host={NO_SOCKET}", {"PGLOADBALANCEHOSTS": "Random"}),
    (f"host={NO_SOCKET}", {"PGCHANNELBINDING": "require"}),
    (f"host={NO_SOCKET}", {"PGSSLMINPROTOCOLVERSION": "tlsv1.3"}),
    (f"host={NO_SOCKET}", {"PGSSLMINPROTOCOLVERSION": ""}),
    (
        f"host={NO_SOCKET}",
        {"PGSSLMINPROTOCOLVERSION": "TLSv1.3", "PGSSLMAXPROTOCOLVERSION": "TLSv1.2"},
    ),
    (f"host={NO_SOCKET}", {"PGMAXPROTOCOLVERSION": "latest"}),
    (f"host={NO_SOCKET}", {"PGMAXPROTOCOLVERSION": ""}),
    (f"host={NO_SOCKET}", {"PGGSSENCMODE": "prefer"}),
    (f"host={NO_SOCKET}", {"PGCLIENTENCODING": "auto"}),
    (f"host={NO_SOCKET}", {"PGAPPNAME": "from-env", "PGOPTIONS": "-c geqo=off"}),
    (f"host={NO_SOCKET} fallback_application_name=fb", {}),
    (f"host={NO_SOCKET}", {"PGSSLCERT": "/x.crt", "PGSSLKEY": "/x.key", "PGSSLCRL": "/x.crl"}),
    (f"host={NO_SOCKET}", {"PGSSLCRLDIR": "/crl", "PGSSLSNI": "0", "PGSSLCOMPRESSION": "1"}),
    (f"host={NO_SOCKET}", {"PGKRBSRVNAME": "kerberos", "PGGSSLIB": "gssapi"}),
    (f"host={NO_SOCKET}", {"PGGSSDELEGATION": "1", "PGPASSFILE": "/nonexistent/pgpass"}),
    (f"host={NO_SOCKET}", {"PGPASSWORD": "from-env"}),
    ("", {"PGHOST": f"{NO_SOCKET},{NO_SOCKET}-b", "PGPORT": "1,2"}),
    ("", {"PGHOST": f"{NO_SOCKET},{NO_SOCKET}-b", "PGPORT": "1,2,3"}),
    ("", {"PGHOST": f"{NO_SOCKET},{NO_SOCKET}-b,", "PGPORT": "7"}),
    ("", {"PGHOST": f"{NO_SOCKET}", "PGPORT": "abc"}),
    ("", {"PGHOST": f"{NO_SOCKET}", "PGPORT": "0"}),
    ("", {"PGHOST": f"{NO_SOCKET}", "PGPORT": " 7 "}),
    (f"postgresql://{NO_SOCKET.replace('/', '%2F')}/db?ssl=true", {"PGSSLMODE": "disable"}),
]


@pytest.mark.parametrize(("conninfo", "environ"), PRECEDENCE_CASES)
def test_precedence_matches_libpq(conninfo: str, environ: dict[str, str]) -> None:
    assert_same_resolution(conninfo, {**ISOLATED, **environ})


def test_empty_variable_counts_as_set() -> None:
    environ = {**ISOLATED, "PGSSLMODE": ""}

    with pytest.raises(ConfigurationError) as caught:
        resolve_params(f"host={NO_SOCKET}", {}, environ=environ)

    assert caught.value.parameter == "sslmode"
    assert "environment (PGSSLMODE)" in str(caught.value)


def test_keyword_argument_beats_everything() -> None:
    environ = {**ISOLATED, "PGSSLMODE": "disable"}

    params = resolve_params("sslmode=allow", {"sslmode": "require"}, environ=environ)

    assert params.sslmode is SSLMode.REQUIRE
    assert params.sources["sslmode"] == "keyword argument"


def test_sources_name_each_place() -> None:
    environ = {**ISOLATED, "PGPORT": "5433", "PGREQUIRESSL": "1"}

    params = resolve_params(f"host={NO_SOCKET}", {"user": "alice"}, environ=environ)

    assert params.sources["host"] == "conninfo"
    assert params.sources["user"] == "keyword argument"
    assert params.sources["port"] == "environment (PGPORT)"
    assert params.sources["sslmode"] == "environment (PGREQUIRESSL)"
    assert params.sources["dbname"] == "default"
    assert params.sources["channel_binding"] == "default"


def test_system_roots_default_to_verify_full() -> None:
    params = resolve_params("sslrootcert=system", {}, environ=ISOLATED)

    assert params.sslmode is SSLMode.VERIFY_FULL
    assert params.sources["sslmode"] == "default"


def test_startup_variables_are_sent() -> None:
    environ = {**ISOLATED, "PGTZ": "UTC", "PGDATESTYLE": "DEFAULT", "PGGEQO": "off"}

    params = resolve_params(f"host={NO_SOCKET}", {}, environ=environ)

    assert params.startup_parameters == {"timezone": "UTC", "geqo": "off"}
    assert params.sources["timezone"] == "environment (PGTZ)"


def test_os_environ_is_the_default() -> None:
    with process_environment({**ISOLATED, "PGAPPNAME": "from-process"}):
        params = resolve_params(f"host={NO_SOCKET}", {})

    assert params.application_name == "from-process"
    assert params.sources["application_name"] == "environment (PGAPPNAME)"


# --- generated combinations -------------------------------------------------------------------

# Values per keyword, valid and invalid.  Left out: hostaddr (TCP), connect_timeout and the
# keepalive settings (libpq checks those only on a TCP connection, aiopgtls always), and the
# values aiopgtls rejects on purpose (see test_params.py).
VALUE_POOLS: Mapping[str, list[str]] = {
    "host": [NO_SOCKET, f"{NO_SOCKET},{NO_SOCKET}-b", ""],
    "port": ["5433", "", "1,2", "abc", " 7"],
    "user": ["alice", ""],
    "dbname": ["db", ""],
    "sslmode": ["disable", "require", "verify-ca", "verify-full", "Require", ""],
    "sslrootcert": ["system", "/nonexistent/root.crt", ""],
    "sslnegotiation": ["postgres", "direct", "bogus"],
    "channel_binding": ["disable", "require", "bogus"],
    "target_session_attrs": ["read-write", "standby", "master"],
    "load_balance_hosts": ["random", "bogus"],
    "ssl_min_protocol_version": ["tlsv1.3", "TLSv1.1", "SSLv3", ""],
    "ssl_max_protocol_version": ["TLSv1.2", "tlsv1.1", ""],
    "sslcertmode": ["disable", "require", "bogus"],
    "application_name": ["app", ""],
    "fallback_application_name": ["fb"],
    "client_encoding": ["auto", "LATIN1"],
    "gssencmode": ["disable", "prefer", "bogus"],
    "min_protocol_version": ["3.0", "", "2"],
    "max_protocol_version": ["3.0", "3.2", "latest", "3.1"],
    "sslsni": ["0"],
    "passfile": ["/nonexistent/pgpass"],
    "password": ["secret"],
}

conninfo_settings = st.dictionaries(
    st.sampled_from(sorted(VALUE_POOLS)), st.just(""), max_size=4
).flatmap(
    lambda keys: st.fixed_dictionaries({key: st.sampled_from(VALUE_POOLS[key]) for key in keys})
)
environment_settings = st.dictionaries(
    st.sampled_from(sorted(key for key in VALUE_POOLS if key in ENVIRONMENT_VARIABLES)),
    st.just(""),
    max_size=4,
).flatmap(
    lambda keys: st.fixed_dictionaries(
        {ENVIRONMENT_VARIABLES[key]: st.sampled_from(VALUE_POOLS[key]) for key in keys}
    )
)
requiressl: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}), st.sampled_from(["1", "0", ""]).map(lambda v: {"PGREQUIRESSL": v})
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(conninfo_settings, environment_settings, requiressl)
def test_combinations_match_libpq(
    conninfo: dict[str, str], environ: dict[str, str], flag: dict[str, str]
) -> None:
    if "host" not in conninfo and "PGHOST" not in environ:
        conninfo["host"] = NO_SOCKET
    assert_same_resolution(make_conninfo(conninfo), {**ISOLATED, **environ, **flag})


def test_combinations_cover_both_outcomes() -> None:
    accepted = []
    for conninfo, environ in PRECEDENCE_CASES:
        with process_environment({**ISOLATED, **environ}):
            accepted.append(libpq_resolve(conninfo).accepted)

    assert any(accepted)
    assert not all(accepted)


def test_process_environment_is_restored() -> None:
    before = {name: value for name, value in os.environ.items() if name.startswith("PG")}

    with process_environment({"PGHOST": "elsewhere"}):
        inside = os.environ["PGHOST"]
    after = {name: value for name, value in os.environ.items() if name.startswith("PG")}

    assert inside == "elsewhere"
    assert after == before
