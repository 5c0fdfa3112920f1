"""ConnectParams: validation, host lists, unsupported settings, secrets and serialisation."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg import OperationalError, pq

from aiopgtls._params import (
    ChannelBinding,
    ConnectParams,
    HostSpec,
    SSLCertMode,
    SSLMode,
    SSLNegotiation,
    TargetSessionAttrs,
    build_params,
)
from aiopgtls._resolve import resolve_params, resolve_params_async
from aiopgtls.errors import ConfigurationError

from .libpq_oracle import libpq_resolve, process_environment

NO_SOCKET = "/nonexistent/aiopgtls-socket"
ISOLATED = {"HOME": "/nonexistent/home", "PGSYSCONFDIR": "/nonexistent/etc"}


def resolve(conninfo: str = "", **keywords: object) -> ConnectParams:
    return resolve_params(conninfo, keywords, environ=ISOLATED)


def rejection(conninfo: str = "", **keywords: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        resolve(conninfo, **keywords)
    return caught.value


# --- host lists -------------------------------------------------------------------------------


def test_host_list_with_ports() -> None:
    params = resolve("host=a.example.test,/sock,@abstract port=1,2,")

    assert params.hosts == (
        HostSpec("a.example.test", None, 1),
        HostSpec("/sock", None, 2),
        HostSpec("@abstract", None, 5432),
    )
    assert [host.is_unix_socket for host in params.hosts] == [False, True, True]


def test_single_port_applies_to_all_hosts() -> None:
    params = resolve("host=a,b,c port=7")

    assert [host.port for host in params.hosts] == [7, 7, 7]


def test_hostaddr_decides_host_count() -> None:
    params = resolve("hostaddr=127.0.0.1,::1 host=,db.example.test")

    assert params.hosts == (
        HostSpec("", "127.0.0.1", 5432),
        HostSpec("db.example.test", "::1", 5432),
    )
    assert params.address == "127.0.0.1"
    assert params.hosts[1].address == "::1"
    assert not params.hosts[1].is_unix_socket


def test_empty_host_item_means_default_directory() -> None:
    params = resolve("host=a,")

    assert params.hosts[1].host.startswith("/")
    assert params.hosts[1].is_unix_socket


@pytest.mark.parametrize(
    ("conninfo", "fragment", "parameter"),
    [
        ("host=a,b hostaddr=127.0.0.1", "could not match 2 host names", "host"),
        (
            "host=a hostaddr=127.0.0.1,::1",
            "could not match 1 host names (host from conninfo)",
            "host",
        ),
        ("host=a,b port=1,2,3", "could not match 3 port numbers (port from conninfo) to 2", "port"),
        ("host=a,b,c port=1,2", "could not match 2 port numbers", "port"),
        ("hostaddr=127.0.0.1,localhost", 'invalid hostaddr value "localhost"', "hostaddr"),
        ("host=a port=0", 'invalid port value "0"', "port"),
        ("host=a port=65536", 'invalid port value "65536"', "port"),
        ("host=a port=x1", 'invalid integer port value "x1"', "port"),
    ],
)
def test_host_list_errors(conninfo: str, fragment: str, parameter: str) -> None:
    error = rejection(conninfo)

    assert fragment in str(error)
    assert error.parameter == parameter


@pytest.mark.parametrize(
    "conninfo",
    [f"host={NO_SOCKET},{NO_SOCKET} hostaddr=127.0.0.1", f"host={NO_SOCKET} port=1,2", "port=0"],
)
def test_host_list_errors_are_libpq_errors(conninfo: str) -> None:
    with process_environment({**ISOLATED, "PGHOST": NO_SOCKET}):
        assert not libpq_resolve(conninfo).accepted


def test_for_host_keeps_one_host() -> None:
    params = resolve("host=a,b port=1,2 password=pw")

    second = params.for_host(1)

    assert second.hosts == (HostSpec("b", None, 2, "pw"),)
    assert second.host == "b"
    assert second.port == 2
    assert second.password == "pw"
    assert second.sslmode is params.sslmode
    assert second.sources["password"] == "conninfo"


def test_hostaddr_accepts_what_getaddrinfo_accepts() -> None:
    params = resolve("hostaddr=127.1")

    assert params.hostaddr == "127.1"


# --- choices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [member.value for member in TargetSessionAttrs])
def test_target_session_attrs_values(value: str) -> None:
    params = resolve(f"target_session_attrs={value}")

    assert params.target_session_attrs is TargetSessionAttrs(value)


@pytest.mark.parametrize(
    ("conninfo", "parameter", "accepted"),
    [
        ("target_session_attrs=master", "target_session_attrs", "prefer-standby"),
        ("load_balance_hosts=Random", "load_balance_hosts", "disable, random"),
        ("sslmode=VERIFY-FULL", "sslmode", "verify-ca, verify-full"),
        ("sslnegotiation=tls", "sslnegotiation", "postgres, direct"),
        ("sslcertmode=never", "sslcertmode", "disable, allow, require"),
        ("channel_binding=on", "channel_binding", "disable, prefer, require"),
        ("gssencmode=on", "gssencmode", "disable, prefer, require"),
        ("ssl_min_protocol_version=SSLv3", "ssl_min_protocol_version", "TLSv1.3"),
        ("max_protocol_version=3.1", "max_protocol_version", "3.0, 3.2 or latest"),
        ("connect_timeout=1.5", "connect_timeout", "a whole number"),
        ("keepalives=yes", "keepalives", "a whole number"),
        ("keepalives_idle=9999999999", "keepalives_idle", "2147483647"),
        ("sslfactory=NotAModule", "sslfactory", "package.module:attribute"),
    ],
)
def test_invalid_value_names_value_and_choices(
    conninfo: str, parameter: str, accepted: str
) -> None:
    error = rejection(conninfo)

    assert error.parameter == parameter
    assert error.value == conninfo.split("=", 1)[1]
    assert f'"{error.value}"' in str(error)
    assert accepted in str(error)
    assert "(from conninfo)" in str(error)


def test_enums_and_defaults() -> None:
    params = resolve("host=h")

    assert params.sslmode is SSLMode.PREFER
    assert params.sslnegotiation is SSLNegotiation.POSTGRES
    assert params.sslcertmode is SSLCertMode.ALLOW
    assert params.channel_binding is ChannelBinding.PREFER
    assert params.target_session_attrs is TargetSessionAttrs.ANY
    assert params.load_balance_hosts == "disable"
    assert params.ssl_min_protocol_version == "TLSv1.2"
    assert params.keepalives is True
    assert params.connect_timeout is None


def test_direct_negotiation_needs_strong_sslmode() -> None:
    error = rejection("sslnegotiation=direct sslmode=prefer")

    assert 'weak sslmode "prefer" (from conninfo) may not be used with sslnegotiation=direct' in (
        str(error)
    )
    assert '(use "require", "verify-ca", or "verify-full")' in str(error)


def test_direct_negotiation_with_require() -> None:
    params = resolve("sslnegotiation=direct sslmode=require")

    assert params.sslnegotiation is SSLNegotiation.DIRECT


def test_system_roots_reject_explicit_weaker_mode() -> None:
    error = rejection("sslrootcert=system sslmode=verify-ca")

    assert 'weak sslmode "verify-ca" (from conninfo) may not be used with sslrootcert=system' in (
        str(error)
    )
    assert '(use "verify-full")' in str(error)


def test_tls_range_is_checked() -> None:
    error = rejection("ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=tlsv1.2")

    assert "invalid SSL protocol version range" in str(error)


def test_protocol_versions() -> None:
    params = resolve("max_protocol_version=latest min_protocol_version=3.0")
    assert params.settings["max_protocol_version"] == "latest"

    error = rejection("min_protocol_version=latest max_protocol_version=3.0")
    assert '"min_protocol_version" is greater than "max_protocol_version"' in str(error)


@pytest.mark.parametrize(
    ("text", "expected"), [("10", 10.0), (" 3 ", 3.0), ("0", None), ("-5", None)]
)
def test_connect_timeout_values(text: str, expected: float | None) -> None:
    assert resolve(f"connect_timeout='{text}'").connect_timeout == expected


def test_tcp_settings_are_parsed() -> None:
    params = resolve(
        "keepalives=0 keepalives_idle=30 keepalives_interval=-1 keepalives_count=+4 "
        "tcp_user_timeout=1000"
    )

    assert params.keepalives is False
    assert params.keepalives_idle == 30
    assert params.keepalives_interval == 0
    assert params.keepalives_count == 4
    assert params.tcp_user_timeout == 1000


def test_tcp_settings_are_checked_for_unix_sockets_too() -> None:
    # libpq parses keepalives only for TCP connections; aiopgtls checks it for every host.
    conninfo = f"host={NO_SOCKET} keepalives=abc"
    with process_environment(ISOLATED):
        assert libpq_resolve(conninfo).accepted

    assert rejection(conninfo).parameter == "keepalives"


# --- settings aiopgtls cannot honour ----------------------------------------------------------

UNSUPPORTED = [
    ("require_auth=scram-sha-256", "require_auth", "restricting the authentication methods"),
    ("requirepeer=postgres", "requirepeer", "operating system user of the server"),
    ("gssencmode=require", "gssencmode", "never uses GSSAPI encryption"),
    ("oauth_issuer=https://issuer.example.test", "oauth_issuer", "OAuth authentication"),
    ("oauth_client_id=x", "oauth_client_id", "OAuth authentication"),
    ("min_protocol_version=3.2", "min_protocol_version", "protocol version 3.0 only"),
]


@pytest.mark.parametrize(("conninfo", "parameter", "reason"), UNSUPPORTED)
def test_unsupported_setting_is_rejected(conninfo: str, parameter: str, reason: str) -> None:
    error = rejection(conninfo)

    assert error.parameter == parameter
    assert str(error).startswith(f"aiopgtls does not support {parameter}=")
    assert reason in str(error)


@pytest.mark.parametrize("keyword", ["scram_client_key", "scram_server_key", "oauth_client_secret"])
def test_unsupported_secret_is_not_shown(keyword: str) -> None:
    error = rejection(f"{keyword}=hunter2-value")

    assert error.parameter == keyword
    assert error.value is None
    assert "hunter2" not in str(error)
    assert "the value is not shown" in str(error)


@pytest.mark.parametrize(
    "conninfo",
    [
        "gssencmode=prefer",
        "krbsrvname=kerberos",
        "gsslib=gssapi",
        "gssdelegation=1",
        "sslcompression=1",
        "require_auth=",
        "requirepeer=",
        "max_protocol_version=3.2",
    ],
)
def test_harmless_settings_are_accepted(conninfo: str) -> None:
    keyword, value = conninfo.split("=")

    params = resolve(conninfo)

    assert params.settings[keyword] == value


def test_unsupported_from_environment_names_variable() -> None:
    environ = {**ISOLATED, "PGGSSENCMODE": "require"}

    with pytest.raises(ConfigurationError) as caught:
        resolve_params("", {}, environ=environ)

    assert "(from environment (PGGSSENCMODE))" in str(caught.value)


# --- startup parameters -----------------------------------------------------------------------


def test_startup_parameters() -> None:
    params = resolve("options='-c geqo=off' replication=database client_encoding=LATIN1")

    assert params.startup_parameters == {
        "replication": "database",
        "options": "-c geqo=off",
        "client_encoding": "LATIN1",
    }


def test_client_encoding_auto_matches_libpq() -> None:
    conninfo = f"host={NO_SOCKET} client_encoding=auto"
    with process_environment(ISOLATED):
        expected = libpq_resolve(conninfo).settings["client_encoding"]

    params = resolve(conninfo)

    assert params.startup_parameters["client_encoding"] == expected
    assert params.settings["client_encoding"] == expected


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("application_name=app fallback_application_name=fb", "app"),
        ("fallback_application_name=fb", "fb"),
        ("application_name='' fallback_application_name=fb", None),
        ("", None),
    ],
)
def test_application_name_fallback(conninfo: str, expected: str | None) -> None:
    assert resolve(conninfo).application_name == expected


# --- keyword arguments ------------------------------------------------------------------------


def test_keyword_argument_types(tmp_path: Path) -> None:
    params = resolve(
        port=6543, sslrootcert=tmp_path / "root.crt", sslsni=False, sslmode=SSLMode.REQUIRE
    )

    assert params.port == 6543
    assert params.sslrootcert == str(tmp_path / "root.crt")
    assert params.sslsni is False
    assert params.sslmode is SSLMode.REQUIRE
    assert params.sources["port"] == "keyword argument"


@pytest.mark.parametrize(
    ("keyword", "value"), [("connect_timeout", 2.5), ("port", True), ("host", b"h")]
)
def test_keyword_argument_bad_type(keyword: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_params(None, {keyword: value}, environ=ISOLATED)

    assert caught.value.parameter == keyword
    assert type(value).__name__ in str(caught.value)


def test_keyword_none_and_empty() -> None:
    assert resolve("sslmode=require", sslmode=None).sslmode is SSLMode.REQUIRE
    assert (
        resolve(
            "ssl_min_protocol_version=TLSv1.3", ssl_min_protocol_version=""
        ).ssl_min_protocol_version
        is None
    )


def test_unknown_keyword_argument() -> None:
    error = rejection(hots="a")

    assert error.parameter == "hots"
    assert 'Did you mean "host"?' in str(error)


def test_requiressl_is_no_keyword_argument() -> None:
    assert rejection(requiressl="1").parameter == "requiressl"


def test_extension_keywords() -> None:
    params = resolve("sslfactory=mypkg.tls:provider", sslfactoryarg="arg")
    uri = resolve("postgresql://h/db?sslfactory=mypkg.tls%3Aprovider")

    assert params.sslfactory == "mypkg.tls:provider"
    assert params.sslfactoryarg == "arg"
    assert uri.sslfactory == "mypkg.tls:provider"
    with pytest.raises(OperationalError):
        pq.Conninfo.parse(b"sslfactory=mypkg.tls:provider")


# --- secrets ----------------------------------------------------------------------------------


def test_repr_hides_secrets() -> None:
    params = resolve("password=hunter2-pw sslpassword=hunter2-key")

    text = repr(params)
    assert "hunter2" not in text
    assert "password=<set>" in text
    assert "sslpassword=<set>" in text
    assert "hunter2" not in str(params.settings)
    assert params.password == "hunter2-pw"
    assert params.sslpassword == "hunter2-key"


def test_errors_hide_secrets() -> None:
    error = rejection(password="hunter2\0")

    assert "hunter2" not in str(error)
    assert error.value is None


# --- build_params ------------------------------------------------------------------------------


def test_build_params_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGPASSWORD", "from-env")

    params = build_params({"host": "h", "user": "u"})

    assert params.sslmode is SSLMode.PREFER
    assert params.password is None
    assert params.dbname == "u"


def test_build_params_rejects_service() -> None:
    with pytest.raises(ConfigurationError, match="service needs resolve_params"):
        build_params({"service": "prod"})


def test_equality_ignores_sources() -> None:
    from_conninfo = resolve("host=h user=u")
    from_keywords = resolve(host="h", user="u")

    assert from_conninfo == from_keywords
    assert from_conninfo.sources["host"] != from_keywords.sources["host"]
    assert hash(from_conninfo) == hash(from_keywords)


def test_replace_keeps_working() -> None:
    params = resolve("host=h")

    changed = dataclasses.replace(params, sslpassword="other")

    assert changed.sslpassword == "other"
    assert changed.host == "h"


# --- async ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resolve_params_async() -> None:
    params = await resolve_params_async("host=h port=7", {"user": "u"}, environ=ISOLATED)

    assert params == resolve("host=h port=7", user="u")


# --- writing back -------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
    min_size=1,
    max_size=8,
)
HOST_NAME = TEXT.filter(lambda text: "," not in text)

explicit_settings = st.fixed_dictionaries(
    {"user": TEXT, "dbname": TEXT},
    optional={
        "host": st.lists(
            st.one_of(HOST_NAME, st.sampled_from(["/tmp/s d", "@abs", "::1", "db.example.test"])),
            min_size=1,
            max_size=3,
        ).map(",".join),
        "port": st.sampled_from(["1", "65535", "5432", ""]),
        "password": TEXT,
        "sslpassword": TEXT,
        "sslmode": st.sampled_from([member.value for member in SSLMode]),
        "sslrootcert": st.one_of(TEXT, st.just("system")),
        "sslcert": TEXT,
        "sslkey": TEXT,
        "sslcrl": TEXT,
        "sslcrldir": TEXT,
        "sslkeylogfile": TEXT,
        "sslsni": st.sampled_from(["0", "1", "yes"]),
        "sslcertmode": st.sampled_from([member.value for member in SSLCertMode]),
        "sslnegotiation": st.sampled_from([member.value for member in SSLNegotiation]),
        "ssl_min_protocol_version": st.sampled_from(["", "tlsv1", "TLSv1.2", "TLSv1.3"]),
        "ssl_max_protocol_version": st.sampled_from(["", "TLSv1.3"]),
        "channel_binding": st.sampled_from([member.value for member in ChannelBinding]),
        "connect_timeout": st.sampled_from(["0", "-1", "10"]),
        "application_name": st.one_of(TEXT, st.just("")),
        "fallback_application_name": TEXT,
        "options": TEXT,
        "client_encoding": st.sampled_from(["auto", "UTF8", "LATIN1"]),
        "replication": st.sampled_from(["database", "true"]),
        "target_session_attrs": st.sampled_from([member.value for member in TargetSessionAttrs]),
        "load_balance_hosts": st.sampled_from(["disable", "random"]),
        "keepalives": st.sampled_from(["0", "1", "7"]),
        "keepalives_idle": st.sampled_from(["-3", "0", "30"]),
        "tcp_user_timeout": st.sampled_from(["10"]),
        "gssencmode": st.sampled_from(["disable", "prefer"]),
        "max_protocol_version": st.sampled_from(["3.0", "latest"]),
        "passfile": st.just("/nonexistent/pgpass"),
        "sslfactory": st.just("mypkg.tls:provider"),
        "sslfactoryarg": TEXT,
    },
)


def resolve_or_skip(keywords: dict[str, str]) -> ConnectParams:
    try:
        return resolve_params(None, keywords, environ=ISOLATED)
    except ConfigurationError:
        assume(False)
        raise


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(explicit_settings)
def test_conninfo_round_trip(keywords: dict[str, str]) -> None:
    params = resolve_or_skip(keywords)

    again = resolve_params(params.to_conninfo(), {}, environ=ISOLATED)

    assert again == params
    assert again.password == params.password
    assert again.startup_parameters == params.startup_parameters


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(explicit_settings)
def test_uri_round_trip(keywords: dict[str, str]) -> None:
    params = resolve_or_skip(keywords)

    again = resolve_params(params.to_uri(), {}, environ=ISOLATED)

    assert again == params


def test_conninfo_is_valid_for_libpq() -> None:
    params = resolve("host=a,b port=1,2 user='x y' sslmode=verify-full sslrootcert=system")

    parsed = pq.Conninfo.parse(params.to_conninfo().encode())

    values = {option.keyword.decode(): option.val for option in parsed if option.val is not None}
    assert values["host"] == b"a,b"
    assert values["user"] == b"x y"
    assert values["sslmode"] == b"verify-full"


def test_conninfo_without_secrets() -> None:
    params = resolve("host=h password=hunter2 sslpassword=hunter2")

    assert "hunter2" in params.to_conninfo()
    assert "hunter2" not in params.to_conninfo(include_secrets=False)
    assert "hunter2" not in params.to_uri(include_secrets=False)


def test_uri_form() -> None:
    params = resolve("host=/tmp/sock,::1 port=5,6 user=al@ice dbname=d/b hostaddr=,::1")

    assert params.to_uri() == (
        "postgresql://al%40ice@%2Ftmp%2Fsock:5,[::1]:6/d%2Fb?hostaddr=%2C%3A%3A1"
    )


def test_round_trip_keeps_passfile_passwords_out(tmp_path: Path) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:*:from-file\n")
    passfile.chmod(0o600)
    params = resolve(f"host=h passfile={passfile}")

    text = params.to_conninfo()

    assert params.password == "from-file"
    assert "from-file" not in text
    assert resolve(text) == params
    assert os.fspath(passfile) in text
