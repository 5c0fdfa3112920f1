"""Turn resolved keyword settings into a validated ``ConnectParams``.

This is the part of libpq's ``pqConnectOptions2()`` that needs no socket: the host list,
the user and database defaults, the password file lookup and the value checks.  aiopgtls
also checks up front what libpq checks only while connecting (port numbers, hostaddr,
connect_timeout, the keepalive settings), and rejects settings it cannot honour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ._environment import (
    KEYWORD_ORDER,
    STARTUP_ENVIRONMENT,
    default_socket_dir,
    environment_source,
    locale_client_encoding,
    operating_system_user,
)
from ._hosts import HostItem, build_hosts, split_host_list
from ._params import (
    LOAD_BALANCE_HOSTS,
    ChannelBinding,
    ConnectParams,
    HostSpec,
    SSLCertMode,
    SSLMode,
    SSLNegotiation,
    TargetSessionAttrs,
)
from ._passfile import default_passfile, lookup_password
from ._unsupported import check_unsupported
from ._values import (
    SOURCE_DEFAULT,
    Setting,
    check_factory,
    check_tls_range,
    parse_choice,
    parse_int_param,
    parse_protocol_version,
    parse_tls_version,
)
from .errors import ConfigurationError


def build(
    settings: dict[str, Setting], environ: Mapping[str, str], *, use_files: bool
) -> ConnectParams:
    """Validate ``settings`` and build the parameters.  ``settings`` gains derived values."""
    items = split_host_list(settings)
    _default_user_and_dbname(settings)
    typed = _validate(settings)
    hosts = build_hosts(items, settings)
    hosts = _with_passwords(hosts, items, settings, environ, use_files=use_files)
    _resolve_auto_encoding(settings)

    values = {keyword: setting.value for keyword, setting in settings.items()}
    startup, startup_sources = _startup_parameters(values, environ)
    sources = _ordered_sources(settings, startup_sources, hosts[0])
    if not any(item.host for item in items) and "host" not in sources:
        sources["host"] = SOURCE_DEFAULT
    public_settings = {
        keyword: values[keyword]
        for keyword in KEYWORD_ORDER
        if keyword in values and keyword not in ("password", "sslpassword")
    }
    return ConnectParams(
        hosts=hosts,
        user=values["user"],
        dbname=values["dbname"],
        application_name=_application_name(values),
        startup_parameters=startup,
        service=values.get("service"),
        passfile=values.get("passfile") or None,
        settings=public_settings,
        sources=sources,
        **typed,
    )


def _ordered_sources(
    settings: Mapping[str, Setting], startup_sources: Mapping[str, str], first_host: HostSpec
) -> dict[str, str]:
    """Return the source of every keyword and startup setting, in libpq's keyword order."""
    sources = {keyword: setting.source for keyword, setting in settings.items()}
    sources.update(startup_sources)
    if first_host.password_source is not None:
        sources["password"] = first_host.password_source
    return {
        keyword: sources[keyword]
        for keyword in (*KEYWORD_ORDER, *STARTUP_ENVIRONMENT.values())
        if keyword in sources
    }


def _default_user_and_dbname(settings: dict[str, Setting]) -> None:
    user = settings.get("user")
    if user is None or user.value == "":
        name = operating_system_user()
        if name is None:
            raise ConfigurationError(
                "could not determine the local user name; pass user= or set PGUSER",
                parameter="user",
            )
        settings["user"] = Setting(name, SOURCE_DEFAULT)

    dbname = settings.get("dbname")
    if dbname is None or dbname.value == "":
        settings["dbname"] = Setting(settings["user"].value, SOURCE_DEFAULT)


def _value(settings: Mapping[str, Setting], keyword: str) -> str | None:
    setting = settings.get(keyword)
    return None if setting is None else setting.value


def _source(settings: Mapping[str, Setting], keyword: str) -> str:
    setting = settings.get(keyword)
    return SOURCE_DEFAULT if setting is None else setting.source


def _validate(settings: dict[str, Setting]) -> dict[str, Any]:
    """Check every value and return the typed fields.

    The settings aiopgtls cannot honour are rejected first; libpq's own checks follow in
    the order of ``pqConnectOptions2()``.
    """
    check_unsupported(settings)
    typed: dict[str, Any] = {}

    typed["channel_binding"] = ChannelBinding(_choice(settings, "channel_binding", ChannelBinding))
    sslmode = SSLMode(_choice(settings, "sslmode", SSLMode))
    typed["sslmode"] = sslmode
    negotiation = SSLNegotiation(_choice(settings, "sslnegotiation", SSLNegotiation))
    typed["sslnegotiation"] = negotiation
    _check_direct(settings, sslmode, negotiation)
    _check_system_roots(settings, sslmode)
    typed.update(_tls_versions(settings))
    typed["sslcertmode"] = SSLCertMode(
        _choice(settings, "sslcertmode", SSLCertMode, default="allow")
    )
    _choice(settings, "gssencmode", ("disable", "prefer", "require"))
    typed["target_session_attrs"] = TargetSessionAttrs(
        _choice(settings, "target_session_attrs", TargetSessionAttrs)
    )
    typed["load_balance_hosts"] = _choice(settings, "load_balance_hosts", LOAD_BALANCE_HOSTS)
    _check_protocol_versions(settings)

    typed.update(_integers(settings))
    typed.update(_files_and_flags(settings))
    return typed


def _choice(
    settings: dict[str, Setting],
    keyword: str,
    choices: Iterable[object],
    *,
    default: str | None = None,
) -> str:
    """Return the validated value.  ``default`` fills a keyword that libpq leaves unset."""
    value = _value(settings, keyword)
    if value is None:
        assert default is not None, keyword
        settings[keyword] = Setting(default, SOURCE_DEFAULT)
        return default
    allowed = [str(choice) for choice in choices]
    return parse_choice(keyword, value, allowed, _source(settings, keyword))


def _check_direct(
    settings: Mapping[str, Setting], sslmode: SSLMode, negotiation: SSLNegotiation
) -> None:
    if negotiation is SSLNegotiation.DIRECT and not sslmode.requires_tls:
        raise ConfigurationError(
            f'weak sslmode "{sslmode}" (from {_source(settings, "sslmode")}) may not be used '
            'with sslnegotiation=direct (use "require", "verify-ca", or "verify-full"): direct '
            "TLS to a server older than PostgreSQL 17 would fall back to plaintext",
            parameter="sslmode",
            value=str(sslmode),
        )


def _check_system_roots(settings: Mapping[str, Setting], sslmode: SSLMode) -> None:
    if _value(settings, "sslrootcert") == "system" and sslmode is not SSLMode.VERIFY_FULL:
        raise ConfigurationError(
            f'weak sslmode "{sslmode}" (from {_source(settings, "sslmode")}) may not be used '
            'with sslrootcert=system (use "verify-full"): anyone can get a certificate that '
            "the system roots trust for a name they control, so the name must be checked",
            parameter="sslmode",
            value=str(sslmode),
        )


def _tls_versions(settings: Mapping[str, Setting]) -> dict[str, Any]:
    versions = {}
    for keyword in ("ssl_min_protocol_version", "ssl_max_protocol_version"):
        value = _value(settings, keyword) or ""
        versions[keyword] = parse_tls_version(keyword, value, _source(settings, keyword))
    check_tls_range(versions["ssl_min_protocol_version"], versions["ssl_max_protocol_version"])
    return versions


def _check_protocol_versions(settings: Mapping[str, Setting]) -> None:
    """Check min_protocol_version and max_protocol_version.  An empty value is invalid."""
    versions = {}
    for keyword in ("min_protocol_version", "max_protocol_version"):
        text = _value(settings, keyword)
        if text is not None:
            versions[keyword] = parse_protocol_version(keyword, text, _source(settings, keyword))

    minimum = versions.get("min_protocol_version", (3, 0))
    maximum = versions.get("max_protocol_version")
    if maximum is not None and minimum > maximum:
        raise ConfigurationError(
            '"min_protocol_version" is greater than "max_protocol_version"; lower the '
            "minimum or raise the maximum",
            parameter="min_protocol_version",
            value=_value(settings, "min_protocol_version"),
        )
    if minimum > (3, 0):
        raise ConfigurationError(
            f'aiopgtls does not support min_protocol_version="'
            f'{_value(settings, "min_protocol_version")}" (from '
            f"{_source(settings, 'min_protocol_version')}): it speaks protocol version 3.0 "
            "only; remove min_protocol_version or set it to 3.0",
            parameter="min_protocol_version",
            value=_value(settings, "min_protocol_version"),
        )


_TCP_INTEGERS = ("keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout")


def _integers(settings: Mapping[str, Setting]) -> dict[str, Any]:
    """Parse connect_timeout and the TCP settings, which libpq parses only when connecting."""
    typed: dict[str, Any] = {}
    timeout = _value(settings, "connect_timeout")
    if timeout is not None:
        seconds = parse_int_param("connect_timeout", timeout, _source(settings, "connect_timeout"))
        # libpq 17+ waits forever for zero or a negative value, and has no minimum.
        typed["connect_timeout"] = float(seconds) if seconds > 0 else None

    keepalives = _value(settings, "keepalives")
    if keepalives is not None:
        typed["keepalives"] = (
            parse_int_param("keepalives", keepalives, _source(settings, "keepalives")) != 0
        )
    for keyword in _TCP_INTEGERS:
        value = _value(settings, keyword)
        if value is not None:
            # libpq treats a negative value as zero, which keeps the operating system default.
            typed[keyword] = max(0, parse_int_param(keyword, value, _source(settings, keyword)))
    return typed


def _files_and_flags(settings: Mapping[str, Setting]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for keyword in ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "sslkeylogfile"):
        typed[keyword] = _value(settings, keyword) or None
    typed["sslpassword"] = _value(settings, "sslpassword") or None
    # libpq enables SNI only for a value that starts with "1".
    typed["sslsni"] = (_value(settings, "sslsni") or "").startswith("1")

    factory = _value(settings, "sslfactory")
    if factory:
        check_factory("sslfactory", factory, _source(settings, "sslfactory"))
    typed["sslfactory"] = factory or None
    typed["sslfactoryarg"] = _value(settings, "sslfactoryarg")
    return typed


def _with_passwords(
    hosts: tuple[HostSpec, ...],
    items: list[HostItem],
    settings: dict[str, Setting],
    environ: Mapping[str, str],
    *,
    use_files: bool,
) -> tuple[HostSpec, ...]:
    """Give every host the explicit password, or else its entry in the password file."""
    explicit = settings.get("password")
    if explicit is not None and explicit.value != "":
        return tuple(
            dataclasses.replace(host, password=explicit.value, password_source=explicit.source)
            for host in hosts
        )
    if not use_files:
        return hosts

    passfile = settings.get("passfile")
    if passfile is not None and passfile.value:
        path: str | None = passfile.value
    else:
        path = default_passfile(environ)
    if path is None:
        return hosts
    if passfile is None or not passfile.value:
        settings["passfile"] = Setting(path, SOURCE_DEFAULT)

    source = f"password file ({path})"
    socket_dir = default_socket_dir() or ""
    found = []
    for host, item in zip(hosts, items, strict=True):
        password = lookup_password(
            path,
            host=host.host or (host.hostaddr or ""),
            port=item.port,
            dbname=settings["dbname"].value,
            user=settings["user"].value,
            default_socket_dir=socket_dir,
        )
        # An empty password counts as none, as it does for libpq's authentication.
        if not password:
            found.append(host)
        else:
            found.append(dataclasses.replace(host, password=password, password_source=source))
    return tuple(found)


def _resolve_auto_encoding(settings: dict[str, Setting]) -> None:
    """Replace client_encoding=auto by the locale's encoding, or "" when it has no name."""
    encoding = settings.get("client_encoding")
    if encoding is not None and encoding.value == "auto":
        settings["client_encoding"] = Setting(locale_client_encoding() or "", encoding.source)


def _startup_parameters(
    values: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Return what libpq puts into the StartupMessage besides user, database and appname."""
    startup: dict[str, str] = {}
    sources: dict[str, str] = {}
    for keyword in ("replication", "options"):
        if values.get(keyword):
            startup[keyword] = values[keyword]

    if values.get("client_encoding"):
        startup["client_encoding"] = values["client_encoding"]

    for variable, name in STARTUP_ENVIRONMENT.items():
        value = environ.get(variable)
        if value is not None and value.lower() != "default":
            startup[name] = value
            sources[name] = environment_source(variable)
    return startup, sources


def _application_name(values: Mapping[str, str]) -> str | None:
    # An application_name that is set, even to "", hides the fallback, as in libpq.
    name = values.get("application_name")
    if name is None:
        name = values.get("fallback_application_name")
    return name or None
