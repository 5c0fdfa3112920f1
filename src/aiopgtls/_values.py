"""Parsers for single connection parameter values, with libpq 18's acceptance rules.

Every parser takes the value's source ("conninfo", "environment (PGPORT)" ...) so that its
error names where the invalid value came from.  Secret values never appear in a message.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from typing import NamedTuple

from ._conninfo import SECRET_KEYWORDS
from .errors import ConfigurationError

# The bytes C's isspace() accepts in the C locale, which is what strtol() skips.
C_SPACES = " \t\n\r\x0b\x0c"

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1

TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

SOURCE_CONNINFO = "conninfo"
SOURCE_KEYWORD = "keyword argument"
SOURCE_DEFAULT = "default"


class Setting(NamedTuple):
    """A keyword's text value and the place it came from, such as "environment (PGHOST)"."""

    value: str
    source: str


_DECIMAL = re.compile(r"[+-]?[0-9]+")
_DOTTED_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
# package.module:attribute, or the dotted form package.module.attribute (pgjdbc's class names
# are dotted too, and load_provider() names the aiopgtls replacement for them).
_FACTORY = re.compile(rf"{_DOTTED_NAME}(?::{_DOTTED_NAME})?")


def describe_source(source: str) -> str:
    """Return the " (from ...)" part of a message, naming where a value came from."""
    return f" (from {source})"


def invalid_value(
    keyword: str, value: str, accepted: str, source: str, *, problem: str = "invalid"
) -> ConfigurationError:
    """Build the error for a value that libpq would reject, hiding secret values."""
    if keyword in SECRET_KEYWORDS:
        return ConfigurationError(
            f"{problem} {keyword} value{describe_source(source)}; the value is not shown; "
            f"use {accepted}",
            parameter=keyword,
        )
    return ConfigurationError(
        f'{problem} {keyword} value "{value}"{describe_source(source)}; use {accepted}',
        parameter=keyword,
        value=value,
    )


def parse_choice(keyword: str, value: str, choices: Iterable[str], source: str) -> str:
    """Return ``value`` when it is one of ``choices``, compared case-sensitively as libpq does."""
    allowed = tuple(choices)
    if value not in allowed:
        raise invalid_value(keyword, value, "one of " + ", ".join(allowed), source)
    return value


def parse_int_param(keyword: str, value: str, source: str) -> int:
    """Parse an integer the way libpq's ``pqParseIntParam()`` does.

    That is ``strtol(value, 10)``: optional leading white space and sign, at least one digit,
    optional trailing white space, and a result that fits a C int.
    """
    text = value.strip(C_SPACES)
    if _DECIMAL.fullmatch(text) is None:
        raise invalid_value(keyword, value, "a whole number", source, problem="invalid integer")
    number = int(text)
    if not INT_MIN <= number <= INT_MAX:
        accepted = f"a whole number from {INT_MIN} to {INT_MAX}"
        raise invalid_value(keyword, value, accepted, source, problem="out-of-range integer")
    return number


def parse_port(value: str, source: str) -> int | None:
    """Parse one item of a port list.  An empty item means the default port (None)."""
    if value == "":
        return None
    number = parse_int_param("port", value, source)
    if not 1 <= number <= 65535:
        raise invalid_value("port", value, "a port number from 1 to 65535", source)
    return number


def parse_tls_version(keyword: str, value: str, source: str) -> str | None:
    """Return the canonical spelling of a TLS version, matched case-insensitively.

    An empty value means no bound, as in libpq's ``sslVerifyProtocolVersion()``.
    """
    if value == "":
        return None
    for version in TLS_VERSIONS:
        if value.lower() == version.lower():
            return version
    raise invalid_value(keyword, value, "one of " + ", ".join(TLS_VERSIONS), source)


def check_tls_range(minimum: str | None, maximum: str | None) -> None:
    """Reject a minimum TLS version newer than the maximum."""
    if minimum is None or maximum is None:
        return
    if TLS_VERSIONS.index(minimum) > TLS_VERSIONS.index(maximum):
        raise ConfigurationError(
            f"invalid SSL protocol version range: ssl_min_protocol_version={minimum} is newer "
            f"than ssl_max_protocol_version={maximum}; lower the minimum or raise the maximum",
            parameter="ssl_min_protocol_version",
            value=minimum,
        )


def check_hostaddr(value: str, source: str) -> None:
    """Reject a hostaddr item that is not a numeric address.

    libpq resolves hostaddr with ``getaddrinfo(AI_NUMERICHOST)``, which also accepts forms
    such as 127.1; the same call is used here, and it never queries DNS.
    """
    try:
        socket.getaddrinfo(value, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        raise invalid_value("hostaddr", value, "a numeric IPv4 or IPv6 address", source) from None


def parse_protocol_version(keyword: str, value: str, source: str) -> tuple[int, int]:
    """Parse min_protocol_version or max_protocol_version like libpq 18."""
    versions = {"3.0": (3, 0), "3.2": (3, 2), "latest": (3, 2)}
    if value not in versions:
        raise invalid_value(keyword, value, "3.0, 3.2 or latest", source)
    return versions[value]


def check_factory(keyword: str, value: str, source: str) -> None:
    """Reject an sslfactory that is not a dotted name, optionally with ``:attribute``."""
    module, _, attribute = value.partition(":")
    if _FACTORY.fullmatch(value) is None or (not attribute and "." not in module):
        accepted = (
            "the form package.module:attribute (or package.module.attribute), such as "
            "mypkg.tls:provider"
        )
        raise invalid_value(keyword, value, accepted, source)
