"""Parse libpq connection strings, keyword/value and URI, without I/O.

The grammar follows libpq 18's ``PQconninfoParse()`` (``conninfo_parse()``,
``conninfo_uri_parse_options()``, ``conninfo_uri_parse_params()`` and ``conninfo_uri_decode()``
in fe-connect.c): the result holds only what the string sets, with no defaults from the
environment or a service file.  A test compares this module with libpq itself.

Besides libpq's keywords the parser accepts ``AIOPGTLS_KEYWORDS``: ``sslfactory`` names a
context provider as ``package.module:attr`` and ``sslfactoryarg`` is a string handed to it,
after pgjdbc's keywords of the same names.  libpq rejects both, so a string that uses them
works only with aiopgtls.

libpq works on bytes, so the parser does too: the text is encoded as UTF-8 and each value is
decoded back with the ``surrogateescape`` error handler.  A percent-encoded byte sequence that
is not UTF-8 (such as ``%FF``) therefore survives as a lone surrogate, and
``value.encode("utf-8", "surrogateescape")`` returns the bytes that libpq stores.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from .errors import ConfigurationError

__all__ = (
    "AIOPGTLS_KEYWORDS",
    "KNOWN_KEYWORDS",
    "LIBPQ_KEYWORDS",
    "SECRET_KEYWORDS",
    "check_keyword",
    "check_value",
    "make_conninfo",
    "parse_conninfo",
)

# The PQconninfoOptions table of libpq 18 (fe-connect.c).  A test checks it against the
# keywords that PQconndefaults() of the libpq in use returns.
LIBPQ_KEYWORDS: frozenset[str] = frozenset(
    {
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
    }
)

# Extension keywords of aiopgtls, borrowed from pgjdbc.  libpq does not know them.
AIOPGTLS_KEYWORDS: frozenset[str] = frozenset({"sslfactory", "sslfactoryarg"})

KNOWN_KEYWORDS: frozenset[str] = LIBPQ_KEYWORDS | AIOPGTLS_KEYWORDS

# Values that never appear in a message or in ConfigurationError.value.  libpq marks the
# first three as password fields, and the SCRAM keys authenticate just as a password does.
SECRET_KEYWORDS: frozenset[str] = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)

_URI_PREFIXES = (b"postgresql://", b"postgres://")

# isspace() in the C locale and in glibc's UTF-8 locales, where no byte above 0x7F is a space.
# NOTE: libpq calls isspace() under the process locale, so in a single-byte locale it may also
# split at bytes above 0x7F such as 0xA0.  Only C.UTF-8 was compared with libpq.
_C_SPACES = frozenset(b" \t\n\r\x0b\x0c")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

_SPACE = ord(" ")
_EQUALS = ord("=")
_QUOTE = ord("'")
_BACKSLASH = ord("\\")
_PERCENT = ord("%")

_QUOTING_HINT = "put a value that contains spaces in single quotes"


def parse_conninfo(text: str) -> dict[str, str]:
    """Parse a libpq connection string into its keyword/value settings.

    A string that starts with ``postgresql://`` or ``postgres://`` is a URI.  Any other string
    is a list of ``keyword=value`` pairs.  A later setting of a keyword replaces an earlier
    one.  Raises ConfigurationError for every string that libpq rejects, except that the
    ``AIOPGTLS_KEYWORDS`` are accepted, and also for a NUL character, which libpq cannot
    receive because it reads C strings.
    """
    raw = _encode_text(text)
    for prefix in _URI_PREFIXES:
        if raw.startswith(prefix):
            settings = _parse_uri(raw, len(prefix))
            break
    else:
        settings = _parse_keyword_value(raw)
    return {keyword: _decode(value) for keyword, value in settings.items()}


def make_conninfo(params: Mapping[str, str]) -> str:
    """Build a keyword/value connection string that ``parse_conninfo()`` turns back into ``params``.

    A value is written bare when it is non-empty printable ASCII without spaces, quotes or
    backslashes.  Any other value is single-quoted, with ``'`` and ``\\`` escaped by a
    backslash.
    """
    pairs = []
    for keyword, value in params.items():
        check_keyword(keyword)
        check_value(keyword, value)
        pairs.append(f"{keyword}={_quote(value)}")
    return " ".join(pairs)


# --- shared helpers -----------------------------------------------------------------------


def _encode_text(text: str) -> bytes:
    nul = text.find("\0")
    if nul >= 0:
        raise ConfigurationError(
            f"connection string contains a NUL character at position {nul + 1}. "
            "libpq stops reading a connection string at the first NUL, so remove it."
        )
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(
            f"connection string contains an unpaired surrogate at position {exc.start + 1}, "
            "which has no UTF-8 encoding. Pass text that is valid Unicode."
        ) from None


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _is_secret(keyword: str) -> bool:
    return keyword in SECRET_KEYWORDS


def _error_value(keyword: str, raw: bytes) -> str | None:
    """Return the text to put into an error's ``value``: None for a secret keyword."""
    return None if _is_secret(keyword) else _decode(raw)


def _resolve_keyword(keyword: str, value: bytes) -> tuple[str, bytes]:
    """Apply libpq's ``requiressl`` alias: a value starting with "1" means sslmode=require."""
    if keyword == "requiressl":
        return "sslmode", b"require" if value.startswith(b"1") else b"prefer"
    return keyword, value


def _suggestion(keyword: str) -> str:
    matches = difflib.get_close_matches(keyword, sorted(KNOWN_KEYWORDS), n=1)
    if matches:
        return f'Did you mean "{matches[0]}"?'
    return "Use a libpq keyword such as host, port, dbname, user or sslmode."


def check_keyword(keyword: str) -> None:
    """Raise ConfigurationError, with a spelling suggestion, unless ``keyword`` is known."""
    if keyword not in KNOWN_KEYWORDS:
        raise ConfigurationError(
            f'invalid connection option "{keyword}". {_suggestion(keyword)}', parameter=keyword
        )


def check_value(keyword: str, value: str) -> None:
    """Raise ConfigurationError unless ``value`` is text that libpq can receive."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f'invalid value of type {type(value).__name__} for "{keyword}". Pass a string.',
            parameter=keyword,
        )
    if "\0" in value:
        raise ConfigurationError(
            f'the value of "{keyword}" contains a NUL character, which libpq cannot '
            "receive. Remove it.",
            parameter=keyword,
            value=None if _is_secret(keyword) else value,
        )
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f'the value of "{keyword}" contains an unpaired surrogate, which has no UTF-8 '
            "encoding. Pass text that is valid Unicode.",
            parameter=keyword,
        ) from None


def _quote(value: str) -> str:
    bare = value != "" and all("!" <= char <= "~" and char not in "'\\" for char in value)
    if bare:
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


# --- keyword/value strings ----------------------------------------------------------------


def _parse_keyword_value(raw: bytes) -> dict[str, bytes]:
    """Parse ``keyword = value`` pairs the way libpq's ``conninfo_parse()`` does."""
    settings: dict[str, bytes] = {}
    previous_secret: str | None = None
    pos = 0
    while pos < len(raw):
        if raw[pos] in _C_SPACES:
            pos += 1
            continue

        name, pos = _read_name(raw, pos)
        if pos >= len(raw) or raw[pos] != _EQUALS:
            raise _missing_equals(name, previous_secret)
        pos = _skip_spaces(raw, pos + 1)

        keyword = _decode(name)
        if pos < len(raw) and raw[pos] == _QUOTE:
            value, pos = _read_quoted(raw, pos + 1, keyword)
            quoted = True
        else:
            value, pos = _read_unquoted(raw, pos)
            quoted = False

        _store_pair(settings, keyword, value, previous_secret)
        previous_secret = keyword if _is_secret(keyword) and not quoted else None
    return settings


def _skip_spaces(raw: bytes, pos: int) -> int:
    while pos < len(raw) and raw[pos] in _C_SPACES:
        pos += 1
    return pos


def _read_name(raw: bytes, pos: int) -> tuple[bytes, int]:
    """Read a keyword up to "=" or a space, then skip the spaces after it."""
    start = pos
    while pos < len(raw) and raw[pos] != _EQUALS and raw[pos] not in _C_SPACES:
        pos += 1
    return raw[start:pos], _skip_spaces(raw, pos)


def _read_unquoted(raw: bytes, pos: int) -> tuple[bytes, int]:
    """Read a value up to the next space; a backslash takes the next byte literally."""
    value = bytearray()
    while pos < len(raw):
        byte = raw[pos]
        pos += 1
        if byte in _C_SPACES:
            break
        if byte == _BACKSLASH:
            # A trailing backslash escapes nothing and is dropped, as in libpq.
            if pos < len(raw):
                value.append(raw[pos])
                pos += 1
            continue
        value.append(byte)
    return bytes(value), pos


def _read_quoted(raw: bytes, pos: int, keyword: str) -> tuple[bytes, int]:
    """Read a single-quoted value that starts at ``pos``, just after the opening quote."""
    start = pos
    value = bytearray()
    while pos < len(raw):
        byte = raw[pos]
        pos += 1
        if byte == _QUOTE:
            return bytes(value), pos
        if byte == _BACKSLASH:
            if pos >= len(raw):
                break
            byte = raw[pos]
            pos += 1
        value.append(byte)
    raise ConfigurationError(
        f'unterminated quoted string in the value of "{keyword}" in the connection string. '
        "End the value with a single quote, and write a quote or a backslash inside it "
        "as \\' or \\\\.",
        parameter=keyword,
        value=_error_value(keyword, raw[start - 1 :]),
    )


def _store_pair(
    settings: dict[str, bytes], keyword: str, value: bytes, previous_secret: str | None
) -> None:
    keyword, value = _resolve_keyword(keyword, value)
    if keyword in KNOWN_KEYWORDS:
        settings[keyword] = value
        return

    if previous_secret is not None:
        # Text right after an unquoted secret is most likely the rest of that secret.
        raise ConfigurationError(
            f'invalid connection option after the value of "{previous_secret}". Its name is '
            f"not shown because it may be part of the {previous_secret}. "
            "Put a value that contains spaces in single quotes.",
            parameter=previous_secret,
        )
    raise ConfigurationError(
        f'invalid connection option "{keyword}". {_suggestion(keyword)}', parameter=keyword
    )


def _missing_equals(name: bytes, previous_secret: str | None) -> ConfigurationError:
    if previous_secret is not None:
        return ConfigurationError(
            f'missing "=" after the value of "{previous_secret}" in the connection string. '
            f"The text is not shown because it may be part of the {previous_secret}. "
            f"Write each setting as keyword=value and {_QUOTING_HINT}.",
            parameter=previous_secret,
        )
    text = _decode(name)
    return ConfigurationError(
        f'missing "=" after "{text}" in the connection string. '
        f"Write each setting as keyword=value and {_QUOTING_HINT}.",
        parameter=text,
    )


# --- URIs ---------------------------------------------------------------------------------


def _parse_uri(uri: bytes, start: int) -> dict[str, bytes]:
    """Parse ``scheme://[userinfo@][netloc[,netloc...]][/dbname][?query]`` like libpq 18.

    The parts are stored in libpq's order, so the first invalid part raises.
    """
    settings: dict[str, bytes] = {}
    pos = _parse_userinfo(uri, start, settings)
    pos = _parse_netlocs(uri, pos, settings)

    if pos < len(uri) and uri[pos] == ord("/"):
        query_start = uri.find(b"?", pos + 1)
        end = len(uri) if query_start < 0 else query_start
        # An empty path sets no dbname, so PGDATABASE can still apply.
        if end > pos + 1:
            settings["dbname"] = _percent_decode(uri[pos + 1 : end], "dbname")
        pos = end

    if pos < len(uri):
        _parse_query(uri[pos + 1 :], settings)
    return settings


def _parse_userinfo(uri: bytes, start: int, settings: dict[str, bytes]) -> int:
    """Store ``user[:password]`` when an "@" comes before the first "/", and skip past it.

    A "?" does not end the search, so libpq and this parser read ``h?user=a@b`` as the user
    ``h?user=a`` at host ``b``.
    """
    end = start
    while end < len(uri) and uri[end] not in b"@/":
        end += 1
    if end == len(uri) or uri[end] != ord("@"):
        return start

    user, colon, password = uri[start:end].partition(b":")
    # An empty raw part is not stored at all, but a part of spaces is stored as "".
    if user:
        settings["user"] = _percent_decode(user, "user")
    if colon and password:
        settings["password"] = _percent_decode(password, "password")
    return end + 1


def _parse_netlocs(uri: bytes, pos: int, settings: dict[str, bytes]) -> int:
    """Store the comma-separated hosts and ports, and return the position after them.

    libpq joins all hosts, and all ports, with commas before decoding.  A netloc without a
    port adds an empty item, so ``h1:5,h2`` gives ``port=5,``.
    """
    hosts: list[bytes] = []
    ports: list[bytes] = []
    while True:
        host, pos = _read_host(uri, pos)
        hosts.append(host)
        port = b""
        if pos < len(uri) and uri[pos] == ord(":"):
            port, pos = _read_until(uri, pos + 1, b"/?,")
        ports.append(port)
        if pos >= len(uri) or uri[pos] != ord(","):
            break
        pos += 1

    joined_hosts = b",".join(hosts)
    joined_ports = b",".join(ports)
    if joined_hosts:
        settings["host"] = _percent_decode(joined_hosts, "host")
    if joined_ports:
        settings["port"] = _percent_decode(joined_ports, "port")
    return pos


def _read_until(uri: bytes, pos: int, stops: bytes) -> tuple[bytes, int]:
    start = pos
    while pos < len(uri) and uri[pos] not in stops:
        pos += 1
    return uri[start:pos], pos


def _read_host(uri: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(uri) or uri[pos] != ord("["):
        return _read_until(uri, pos, b":/?,")

    close = uri.find(b"]", pos + 1)
    if close < 0:
        shown, _ = _read_until(uri, pos, b"/?")
        raise ConfigurationError(
            f'missing "]" at the end of IPv6 host address "{_decode(shown)}" in the URI. '
            'Close the address with "]".',
            parameter="host",
            value=_decode(shown),
        )
    if close == pos + 1:
        raise ConfigurationError(
            'IPv6 host address "[]" in the URI is empty. '
            "Put an address between the brackets, or leave the host out.",
            parameter="host",
            value="[]",
        )

    after = close + 1
    if after < len(uri) and uri[after] not in b":/?,":
        raise _unexpected_after_ipv6(uri, pos, after)
    return uri[pos + 1 : close], after


def _unexpected_after_ipv6(uri: bytes, pos: int, after: int) -> ConfigurationError:
    address = _decode(uri[pos:after])
    character = _decode(uri[after:])[0]
    position = len(_decode(uri[:after])) + 1
    return ConfigurationError(
        f'unexpected character "{character}" at position {position} in the URI, after IPv6 '
        f'host address "{address}". Follow the address with ":port", "/", "?", "," '
        "or the end of the URI.",
        parameter="host",
        value=address,
    )


def _parse_query(query: bytes, settings: dict[str, bytes]) -> None:
    """Store the ``keyword=value`` parameters separated by "&"."""
    for param in _split_params(query):
        name, equals, raw_value = param.partition(b"=")
        if not equals:
            raise ConfigurationError(
                f'missing key/value separator "=" in URI query parameter "{_decode(param)}". '
                "Write each query parameter as keyword=value.",
                parameter=_decode(param),
            )
        if b"=" in raw_value:
            raise ConfigurationError(
                f'extra key/value separator "=" in URI query parameter "{_decode(name)}". '
                'Write an "=" inside a value as %3D.',
                parameter=_decode(name),
            )

        keyword = _decode(_percent_decode(name, None))
        value = _percent_decode(raw_value, keyword)
        if keyword == "ssl" and value == b"true":
            # JDBC spells sslmode=require as ssl=true; libpq maps only this exact value.
            keyword, value = "sslmode", b"require"
        keyword, value = _resolve_keyword(keyword, value)
        if keyword not in KNOWN_KEYWORDS:
            raise ConfigurationError(
                f'invalid URI query parameter "{keyword}". {_suggestion(keyword)}',
                parameter=keyword,
            )
        settings[keyword] = value


def _split_params(query: bytes) -> list[bytes]:
    """Split the query at "&", dropping the empty parameter after one trailing "&".

    An empty parameter anywhere else stays, and libpq rejects it for its missing "=".
    """
    params = query.split(b"&")
    if params[-1] == b"":
        params.pop()
    return params


def _percent_decode(raw: bytes, keyword: str | None) -> bytes:
    """Decode one URI part as libpq 18's ``conninfo_uri_decode()`` does.

    ``keyword`` names the setting the part belongs to, or is None for a query parameter
    name.  It decides whether the text may appear in a message.  Spaces (only " ", not tabs) are
    trimmed from both ends, and a space left inside the part is an error.  An invalid
    percent token before the first inner space raises first.
    """
    pos = 0
    while pos < len(raw) and raw[pos] == _SPACE:
        pos += 1

    decoded = bytearray()
    while pos < len(raw) and raw[pos] != _SPACE:
        if raw[pos] != _PERCENT:
            decoded.append(raw[pos])
            pos += 1
            continue
        digits = raw[pos + 1 : pos + 3]
        if len(digits) < 2 or not all(digit in _HEX_DIGITS for digit in digits):
            raise _decode_error(raw, keyword, "invalid percent-encoded token")
        byte = int(digits, 16)
        if byte == 0:
            raise _decode_error(raw, keyword, "forbidden value %00")
        decoded.append(byte)
        pos += 3

    if raw[pos:].strip(b" "):
        raise _decode_error(raw, keyword, "unexpected spaces")
    return bytes(decoded)


_DECODE_HINTS = {
    "invalid percent-encoded token": 'Write a literal "%" as %25 and follow every other "%" '
    "with two hexadecimal digits.",
    "forbidden value %00": "A setting cannot contain a NUL byte, so remove the %00.",
    "unexpected spaces": "Use percent-encoded spaces (%20) instead.",
}


def _decode_error(raw: bytes, keyword: str | None, problem: str) -> ConfigurationError:
    hint = _DECODE_HINTS[problem]
    if keyword is not None and _is_secret(keyword):
        return ConfigurationError(
            f'{problem} in the value of "{keyword}" in the URI. The value is not shown. {hint}',
            parameter=keyword,
        )
    where = "a URI query parameter name" if keyword is None else f'the "{keyword}" part'
    return ConfigurationError(
        f'{problem} in "{_decode(raw)}" ({where} of the URI). {hint}',
        parameter=keyword,
        value=_decode(raw),
    )
