"""The resolved connection parameters: enums, hosts and the frozen ``ConnectParams``.

``resolve_params()`` in ``_resolve`` builds these objects the way libpq 18 does; this module
only stores them and writes them back as a connection string or URI.  ``password`` and
``sslpassword`` never appear in a repr.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ._conninfo import make_conninfo

DEFAULT_PORT = 5432

SECRET_FIELDS = frozenset({"password", "sslpassword"})


class _ValueEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)


class SSLMode(_ValueEnum):
    """libpq's sslmode values, weakest first."""

    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"

    @property
    def requires_tls(self) -> bool:
        return self in (SSLMode.REQUIRE, SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL)

    @property
    def requires_verification(self) -> bool:
        return self in (SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL)


class ChannelBinding(_ValueEnum):
    DISABLE = "disable"
    PREFER = "prefer"
    REQUIRE = "require"


class SSLNegotiation(_ValueEnum):
    """The TLS start: after an SSLRequest (postgres) or with a ClientHello (direct, PG17+)."""

    POSTGRES = "postgres"
    DIRECT = "direct"


class SSLCertMode(_ValueEnum):
    """The client certificate policy: never sent, sent when requested, or required."""

    DISABLE = "disable"
    ALLOW = "allow"
    REQUIRE = "require"


class TargetSessionAttrs(_ValueEnum):
    """The kind of server that a multi-host connection accepts."""

    ANY = "any"
    READ_WRITE = "read-write"
    READ_ONLY = "read-only"
    PRIMARY = "primary"
    STANDBY = "standby"
    PREFER_STANDBY = "prefer-standby"


LOAD_BALANCE_HOSTS = ("disable", "random")


@dataclasses.dataclass(frozen=True, repr=False)
class HostSpec:
    """One entry of the host list.

    ``host`` is a host name, a Unix-socket directory (starting with "/", or "@" for Linux's
    abstract namespace) or "" when only ``hostaddr`` is given.  ``password`` is the password
    for this host: the explicit one, the password file's entry for it, or None.
    """

    host: str
    hostaddr: str | None = None
    port: int = DEFAULT_PORT
    password: str | None = None
    password_source: str | None = dataclasses.field(default=None, compare=False)

    @property
    def is_unix_socket(self) -> bool:
        """Whether the host names a Unix-domain socket directory, which never uses TLS."""
        return self.hostaddr is None and self.host.startswith(("/", "@"))

    @property
    def address(self) -> str:
        """The address to connect to: ``hostaddr`` when given, otherwise ``host``."""
        return self.hostaddr if self.hostaddr else self.host

    def __repr__(self) -> str:
        password = "<set>" if self.password else None
        return (
            f"HostSpec(host={self.host!r}, hostaddr={self.hostaddr!r}, port={self.port!r}, "
            f"password={password})"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class ConnectParams:
    """Validated connection parameters, resolved like libpq 18.

    File parameters are ``None`` when unset, which means libpq's default file under
    ``~/.postgresql``.  ``startup_parameters`` contains what the StartupMessage carries besides
    user, database and application_name.  ``settings`` is every keyword's resolved text, as
    libpq's ``PQconninfo()`` reports it, except the secrets; ``sources`` names where each
    keyword's value came from.  These two and ``service``, whose settings the other fields
    already hold, take no part in equality.
    """

    hosts: tuple[HostSpec, ...]
    user: str
    dbname: str
    sslmode: SSLMode = SSLMode.PREFER
    sslnegotiation: SSLNegotiation = SSLNegotiation.POSTGRES
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslpassword: str | None = None
    sslcrl: str | None = None
    sslcrldir: str | None = None
    sslsni: bool = True
    sslcertmode: SSLCertMode = SSLCertMode.ALLOW
    sslkeylogfile: str | None = None
    ssl_min_protocol_version: str | None = "TLSv1.2"
    ssl_max_protocol_version: str | None = None
    sslfactory: str | None = None
    sslfactoryarg: str | None = None
    connect_timeout: float | None = None
    channel_binding: ChannelBinding = ChannelBinding.PREFER
    application_name: str | None = None
    startup_parameters: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    target_session_attrs: TargetSessionAttrs = TargetSessionAttrs.ANY
    load_balance_hosts: str = "disable"
    keepalives: bool = True
    keepalives_idle: int | None = None
    keepalives_interval: int | None = None
    keepalives_count: int | None = None
    tcp_user_timeout: int | None = None
    service: str | None = dataclasses.field(default=None, compare=False)
    passfile: str | None = None
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, hash=False)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, hash=False)

    # -- the first host, for code that connects to one host ---------------------------

    @property
    def host(self) -> str:
        return self.hosts[0].host

    @property
    def hostaddr(self) -> str | None:
        return self.hosts[0].hostaddr

    @property
    def port(self) -> int:
        return self.hosts[0].port

    @property
    def password(self) -> str | None:
        return self.hosts[0].password

    @property
    def is_unix_socket(self) -> bool:
        return self.hosts[0].is_unix_socket

    @property
    def address(self) -> str:
        return self.hosts[0].address

    def for_host(self, index: int) -> ConnectParams:
        """Return a copy whose host list is only host ``index``, with that host's password."""
        host = self.hosts[index]
        sources = dict(self.sources)
        if host.password_source is not None:
            sources["password"] = host.password_source
        else:
            sources.pop("password", None)
        return dataclasses.replace(self, hosts=(host,), sources=sources)

    # -- writing the parameters back ----------------------------------------------------

    def to_conninfo(self, *, include_secrets: bool = True) -> str:
        """Return a keyword/value connection string that resolves to equal parameters.

        Every value that differs from libpq's built-in default is written, so resolving the
        string again gives equal parameters in any environment.  There are two limits.  A
        password read from the password file is not written, but the ``passfile`` is when it
        was given.  The server settings libpq takes from PGDATESTYLE, PGTZ and PGGEQO have no
        keyword.  ``include_secrets=False`` leaves out ``password`` and ``sslpassword``.
        """
        pairs = dict(_host_pairs(self))
        pairs["user"] = self.user
        pairs["dbname"] = self.dbname
        pairs.update(_option_pairs(self, include_secrets))
        return make_conninfo(pairs)

    def to_uri(self, *, include_secrets: bool = True) -> str:
        """Return a ``postgresql://`` URI that resolves to equal parameters.

        The same rules as ``to_conninfo()`` apply.  ``hostaddr`` goes into the query.
        """
        userinfo = _quote(self.user)
        options = _option_pairs(self, include_secrets)
        password = options.pop("password", None)
        if password:
            userinfo += ":" + _quote(password)
        netlocs = ",".join(_netloc(host) for host in self.hosts)
        query = dict(_host_pairs(self, with_hosts=False))
        query.update(options)
        text = f"postgresql://{userinfo}@{netlocs}/{_quote(self.dbname)}"
        if query:
            text += "?" + "&".join(f"{key}={_quote(value)}" for key, value in query.items())
        return text

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            if field.name in ("settings", "sources"):
                continue
            value = getattr(self, field.name)
            if field.name in SECRET_FIELDS:
                shown.append(f"{field.name}={'<set>' if value else None}")
            else:
                shown.append(f"{field.name}={value!r}")
        return f"ConnectParams({', '.join(shown)})"


def build_params(settings: Mapping[str, Any]) -> ConnectParams:
    """Validate ``settings`` (keyword to value) and fill in libpq's built-in defaults.

    Unlike ``resolve_params()`` this reads no environment variable, service file or
    password file.  Raises ConfigurationError naming the keyword, the value and the
    accepted values.
    """
    from ._resolve import resolve_without_files

    return resolve_without_files(settings)


# -- serialisation helpers --------------------------------------------------------------

# Keywords written from the typed fields, with the built-in default that is left out.
_TYPED_DEFAULTS: Mapping[str, str] = {
    "sslmode": "prefer",
    "sslnegotiation": "postgres",
    "sslcertmode": "allow",
    "sslsni": "1",
    "ssl_min_protocol_version": "TLSv1.2",
    "ssl_max_protocol_version": "",
    "channel_binding": "prefer",
    "target_session_attrs": "any",
    "load_balance_hosts": "disable",
    "keepalives": "1",
}

# Keywords without a typed field, copied from ``settings`` when they did not default.
_UNTYPED_KEYWORDS = (
    "sslcompression",
    "min_protocol_version",
    "max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
)

_OPTIONAL_TEXT_FIELDS = (
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslkeylogfile",
    "sslfactory",
    "sslfactoryarg",
)

_OPTIONAL_INT_FIELDS = ("keepalives_idle", "keepalives_interval", "keepalives_count")


def _typed_values(params: ConnectParams) -> dict[str, str]:
    values = {
        "sslmode": str(params.sslmode),
        "sslnegotiation": str(params.sslnegotiation),
        "sslcertmode": str(params.sslcertmode),
        "sslsni": "1" if params.sslsni else "0",
        "ssl_min_protocol_version": params.ssl_min_protocol_version or "",
        "ssl_max_protocol_version": params.ssl_max_protocol_version or "",
        "channel_binding": str(params.channel_binding),
        "target_session_attrs": str(params.target_session_attrs),
        "load_balance_hosts": params.load_balance_hosts,
        "keepalives": "1" if params.keepalives else "0",
    }
    return {key: value for key, value in values.items() if value != _TYPED_DEFAULTS[key]}


def _option_pairs(params: ConnectParams, include_secrets: bool) -> dict[str, str]:
    pairs = _typed_values(params)
    for name in _OPTIONAL_TEXT_FIELDS:
        value = getattr(params, name)
        if value is not None:
            pairs[name] = value
    for name in _OPTIONAL_INT_FIELDS:
        number = getattr(params, name)
        if number is not None:
            pairs[name] = str(number)
    if params.tcp_user_timeout is not None:
        pairs["tcp_user_timeout"] = str(params.tcp_user_timeout)
    if params.connect_timeout is not None:
        pairs["connect_timeout"] = str(int(params.connect_timeout))
    if params.application_name is not None:
        pairs["application_name"] = params.application_name
    for keyword in ("options", "client_encoding", "replication"):
        if keyword in params.startup_parameters:
            pairs[keyword] = params.startup_parameters[keyword]

    for keyword in _UNTYPED_KEYWORDS:
        value = params.settings.get(keyword)
        if value is not None and params.sources.get(keyword) != "default":
            pairs[keyword] = value
    if params.passfile is not None and params.sources.get("passfile") != "default":
        pairs["passfile"] = params.passfile

    if include_secrets:
        pairs.update(_secret_pairs(params))
    return pairs


def _secret_pairs(params: ConnectParams) -> dict[str, str]:
    pairs = {}
    explicit = {
        host.password
        for host in params.hosts
        if host.password is not None
        and not (host.password_source or "").startswith("password file")
    }
    if len(explicit) == 1:
        pairs["password"] = explicit.pop()
    if params.sslpassword is not None:
        pairs["sslpassword"] = params.sslpassword
    return pairs


def _host_pairs(params: ConnectParams, *, with_hosts: bool = True) -> dict[str, str]:
    pairs = {}
    hosts = params.hosts
    if with_hosts and any(host.host for host in hosts):
        pairs["host"] = ",".join(host.host for host in hosts)
    if any(host.hostaddr for host in hosts):
        pairs["hostaddr"] = ",".join(host.hostaddr or "" for host in hosts)
    ports = {host.port for host in hosts}
    if with_hosts:
        if len(ports) == 1:
            pairs["port"] = str(hosts[0].port)
        else:
            pairs["port"] = ",".join(str(host.port) for host in hosts)
    return pairs


def _netloc(host: HostSpec) -> str:
    if ":" in host.host:
        name = "[" + quote(host.host.encode("utf-8", "surrogateescape"), safe=":") + "]"
    else:
        name = _quote(host.host)
    return f"{name}:{host.port}"


def _quote(value: str) -> str:
    return quote(value.encode("utf-8", "surrogateescape"), safe="")
