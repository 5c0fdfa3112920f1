"""Connection parameters: validation, defaults and the frozen parameter object.

Nothing here does I/O beyond reading the user name and home directory.  Validation follows
libpq 18 (``pqConnectOptions2()`` in fe-connect.c): values are compared case-sensitively
except the TLS protocol versions, and every invalid value is rejected before a socket opens.
"""

from __future__ import annotations

import dataclasses
import enum
import getpass
import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

DEFAULT_PORT = 5432


class SSLMode(str, enum.Enum):
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

    def __str__(self) -> str:
        return self.value


class ChannelBinding(str, enum.Enum):
    DISABLE = "disable"
    PREFER = "prefer"
    REQUIRE = "require"

    def __str__(self) -> str:
        return self.value


# Accepted spellings of the TLS versions, matched case-insensitively as libpq does
# (sslVerifyProtocolVersion() in fe-connect.c).
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

# The keywords connect() understands.  Every other keyword is rejected by name.
KEYWORDS = (
    "host",
    "hostaddr",
    "port",
    "user",
    "dbname",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "connect_timeout",
    "channel_binding",
    "application_name",
)

SECRET_KEYWORDS = frozenset({"password", "sslpassword"})


@dataclasses.dataclass(frozen=True)
class ConnectParams:
    """Validated connection parameters for one server.

    ``password`` and ``sslpassword`` are kept out of the repr.  File parameters are ``None``
    when unset, which means libpq's default file under ``~/.postgresql``.
    """

    host: str
    port: int
    user: str
    dbname: str
    hostaddr: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    sslmode: SSLMode = SSLMode.PREFER
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslpassword: str | None = dataclasses.field(default=None, repr=False)
    sslcrl: str | None = None
    sslcrldir: str | None = None
    sslsni: bool = True
    ssl_min_protocol_version: str | None = "TLSv1.2"
    ssl_max_protocol_version: str | None = None
    connect_timeout: float | None = None
    channel_binding: ChannelBinding = ChannelBinding.PREFER
    application_name: str | None = None

    @property
    def is_unix_socket(self) -> bool:
        """Whether the host names a Unix-domain socket directory, which never uses TLS."""
        return self.hostaddr is None and self.host.startswith("/")

    @property
    def address(self) -> str:
        """The address to connect to: ``hostaddr`` when given, otherwise ``host``."""
        return self.hostaddr if self.hostaddr else self.host

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in SECRET_KEYWORDS:
                shown.append(f"{field.name}={'<set>' if value else None}")
            else:
                shown.append(f"{field.name}={value!r}")
        return f"ConnectParams({', '.join(shown)})"


def _invalid(keyword: str, value: str, accepted: str) -> ConfigurationError:
    return ConfigurationError(
        f'invalid {keyword} value: "{value}"; use {accepted}', parameter=keyword, value=value
    )


def _choice(keyword: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _invalid(keyword, value, "one of " + ", ".join(choices))
    return value


def _parse_port(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _invalid("port", value, "an integer from 1 to 65535")
    return int(text)


def _parse_timeout(value: str) -> float | None:
    # libpq 17+ parses an integer number of seconds; zero or negative means no timeout.
    text = value.strip()
    try:
        seconds = int(text)
    except ValueError:
        raise _invalid("connect_timeout", value, "a whole number of seconds") from None
    return float(seconds) if seconds > 0 else None


def _parse_tls_version(keyword: str, value: str) -> str | None:
    if value == "":
        return None
    for version in TLS_VERSIONS:
        if value.lower() == version.lower():
            return version
    raise _invalid(keyword, value, "one of " + ", ".join(TLS_VERSIONS))


def _check_tls_range(minimum: str | None, maximum: str | None) -> None:
    if minimum is None or maximum is None:
        return
    if TLS_VERSIONS.index(minimum) > TLS_VERSIONS.index(maximum):
        raise ConfigurationError(
            f"invalid SSL protocol version range: ssl_min_protocol_version={minimum} is newer "
            f"than ssl_max_protocol_version={maximum}; lower the minimum or raise the maximum",
            parameter="ssl_min_protocol_version",
            value=minimum,
        )


def default_user() -> str:
    """Return the operating system user name, libpq's default for ``user``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise ConfigurationError(
            "could not determine the local user name; pass user= explicitly",
            parameter="user",
        ) from exc


def default_host() -> str:
    """Return libpq's default host: the usual Unix-domain socket directory."""
    # NOTE: libpq builds its default socket directory in at compile time; Debian's is
    # /var/run/postgresql and upstream's is /tmp.  We take the first one that exists.
    for directory in ("/var/run/postgresql", "/tmp"):
        if os.path.isdir(directory):
            return directory
    return "localhost"


def _text(keyword: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, os.PathLike)):
        raise ConfigurationError(
            f"invalid {keyword} value of type {type(value).__name__}; pass a string",
            parameter=keyword,
            value=None if keyword in SECRET_KEYWORDS else repr(value),
        )
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def build_params(settings: Mapping[str, Any]) -> ConnectParams:
    """Validate ``settings`` (keyword to value) and fill in libpq's defaults.

    Raises ConfigurationError naming the keyword, the value and the accepted values.
    """
    unknown = [key for key in settings if key not in KEYWORDS]
    if unknown:
        raise ConfigurationError(
            f'invalid connection option "{unknown[0]}"; supported options are '
            + ", ".join(KEYWORDS),
            parameter=unknown[0],
        )
    raw = {key: _text(key, value) for key, value in settings.items() if value is not None}

    sslmode = SSLMode(_choice("sslmode", raw.get("sslmode", "prefer"), _values(SSLMode)))
    channel_binding = ChannelBinding(
        _choice("channel_binding", raw.get("channel_binding", "prefer"), _values(ChannelBinding))
    )
    minimum = _parse_tls_version(
        "ssl_min_protocol_version", raw.get("ssl_min_protocol_version", "TLSv1.2")
    )
    maximum = _parse_tls_version(
        "ssl_max_protocol_version", raw.get("ssl_max_protocol_version", "")
    )
    _check_tls_range(minimum, maximum)

    host = raw.get("host", "")
    hostaddr = raw.get("hostaddr") or None
    if hostaddr is not None:
        _check_hostaddr(hostaddr)
    if not host and hostaddr is None:
        host = default_host()
    for keyword in ("host", "hostaddr", "port"):
        if "," in raw.get(keyword, ""):
            raise ConfigurationError(
                f'{keyword} lists are not supported yet: "{raw[keyword]}"; pass one value',
                parameter=keyword,
                value=raw[keyword],
            )

    user = raw.get("user") or default_user()
    return ConnectParams(
        host=host,
        hostaddr=hostaddr,
        port=_parse_port(raw["port"]) if raw.get("port") else DEFAULT_PORT,
        user=user,
        dbname=raw.get("dbname") or user,
        password=raw.get("password"),
        sslmode=sslmode,
        sslrootcert=raw.get("sslrootcert") or None,
        sslcert=raw.get("sslcert") or None,
        sslkey=raw.get("sslkey") or None,
        sslpassword=raw.get("sslpassword") or None,
        sslcrl=raw.get("sslcrl") or None,
        sslcrldir=raw.get("sslcrldir") or None,
        # libpq enables SNI only for a value that starts with "1".
        sslsni=raw.get("sslsni", "1").startswith("1"),
        ssl_min_protocol_version=minimum,
        ssl_max_protocol_version=maximum,
        connect_timeout=_parse_timeout(raw["connect_timeout"])
        if raw.get("connect_timeout")
        else None,
        channel_binding=channel_binding,
        application_name=raw.get("application_name"),
    )


def _values(enum_type: type[enum.Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in enum_type)


def _check_hostaddr(value: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _invalid("hostaddr", value, "a numeric IPv4 or IPv6 address") from None
