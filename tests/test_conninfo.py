"""Differential tests of the connection-string parser against libpq 18 itself.

The oracle is ``psycopg.pq.Conninfo.parse()``, which calls libpq's ``PQconninfoParse()`` and
returns the raw bytes that libpq stores.  ``psycopg.conninfo.conninfo_to_dict()`` is not used
as the oracle because it decodes every value as strict UTF-8, so a URI holding ``%FF`` raises
UnicodeDecodeError there although libpq accepts it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import OperationalError, pq

from aiopgtls._conninfo import LIBPQ_KEYWORDS, make_conninfo, parse_conninfo
from aiopgtls.errors import ConfigurationError

Settings = dict[str, bytes]


def libpq_parse(text: str) -> Settings | None:
    """Return what libpq stores for ``text``, or None when libpq rejects it."""
    try:
        options = pq.Conninfo.parse(text.encode("utf-8"))
    except OperationalError:
        return None
    return {opt.keyword.decode(): opt.val for opt in options if opt.val is not None}


def our_parse(text: str) -> Settings | None:
    """Return what parse_conninfo() stores for ``text`` as libpq's bytes, or None on error."""
    try:
        parsed = parse_conninfo(text)
    except ConfigurationError:
        return None
    return {key: value.encode("utf-8", "surrogateescape") for key, value in parsed.items()}


def assert_same_as_libpq(text: str) -> None:
    expected = libpq_parse(text)
    actual = our_parse(text)
    assert actual == expected, f"libpq: {expected!r}, parse_conninfo: {actual!r}"


# --- strategies ---------------------------------------------------------------------------

# Every generated string leaves out NUL and the surrogates.  libpq receives a C string, so it
# silently stops at a NUL (parse_conninfo rejects NUL instead), and a lone surrogate has no
# UTF-8 encoding to hand to libpq at all.

# The six bytes that C's isspace() accepts, plus characters that Python's str.isspace()
# accepts but libpq does not: NEL, NO-BREAK SPACE and the ASCII file separator.
C_SPACES = " \t\n\r\x0b\x0c"
NOT_C_SPACES = "\x85\xa0\x1c"
VALUE_ALPHABET = "ab10Z" + C_SPACES + NOT_C_SPACES + "'\\=%@/:,?&#é€😀"

COMMON_KEYWORDS = ["host", "port", "user", "password", "dbname", "sslmode", "requiressl"]
UNKNOWN_KEYWORDS = ["bogus", "Host", "ssl", "", "sslmode2", "hôst"]
KEYWORD_POOL = COMMON_KEYWORDS * 4 + sorted(LIBPQ_KEYWORDS) + UNKNOWN_KEYWORDS

spaces = st.text(alphabet=C_SPACES, max_size=2)
value_text = st.text(alphabet=VALUE_ALPHABET, max_size=8)


def quote_properly(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def escape_unquoted(value: str) -> str:
    return "".join("\\" + char if char in C_SPACES + "'\\" else char for char in value)


value_forms = st.one_of(
    value_text,
    value_text.map(quote_properly),
    value_text.map(escape_unquoted),
    # Raw quotes and backslashes, sometimes with the closing quote left out.
    st.tuples(value_text, st.sampled_from(["'", ""])).map(lambda pair: "'" + pair[0] + pair[1]),
)

keyword_value_pair = st.tuples(
    spaces,
    st.sampled_from(KEYWORD_POOL),
    spaces,
    st.sampled_from(["=", "=", "=", "=", ""]),
    spaces,
    value_forms,
).map("".join)

keyword_value_strings = st.tuples(
    st.lists(keyword_value_pair, max_size=5).map(" ".join), spaces
).map("".join)

URI_PREFIXES = ["postgresql://", "postgres://"]

# Pieces of URI parts: plain text, valid percent escapes (upper and lower case, non-UTF-8
# bytes, an encoded space), the invalid ones, spaces and tabs.
CLEAN_TOKENS = ["a", "b7", "é", "-", ".", "\t", "%41", "%2f", "%2F", "%20", "%ff", "%e2%82%ac"]
BROKEN_TOKENS = ["%00", "%zz", "%4", "%", "%g1", " "]
STRUCTURE_TOKENS = [":", "@", "/", "?", "&", "=", ",", "[", "]", "'", "\\", "#", "  "]

# A part that libpq accepts: no inner space, but sometimes spaces at either end, which
# libpq 18 trims.
edge_space = st.sampled_from(["", "", " ", "  "])
clean_part = st.tuples(
    edge_space, st.lists(st.sampled_from(CLEAN_TOKENS), max_size=3).map("".join), edge_space
).map("".join)
part = st.lists(
    st.sampled_from(CLEAN_TOKENS * 2 + BROKEN_TOKENS + STRUCTURE_TOKENS), max_size=4
).map("".join)

# Values for ssl= and requiressl=, where libpq looks at the exact text.
FLAG_VALUES = ["true", "false", " true ", "TRUE", "tru%65", "1", "0", "10", "01", " 1", ""]
QUERY_KEYWORDS = [*COMMON_KEYWORDS, "ssl", "sslpassword", "u%73er", " user ", "user user", "%zz"]


def uri_strategy(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Build URIs whose parts come from ``text``, in every layout that libpq parses."""
    userinfo = st.one_of(
        st.just(""),
        st.tuples(text, st.just("@")).map("".join),
        st.tuples(text, st.just(":"), text, st.just("@")).map("".join),
    )
    ipv6_host = st.sampled_from(
        ["[::1]", "[2001:db8::1]", "[%3A%3A1]", "[ ::1 ]", "[::1", "[]", "[::1]x", "[::1]]"]
    )
    host = st.one_of(text, ipv6_host)
    port = st.one_of(st.sampled_from(["5432", "1", " 6432 ", "x", ""]), text)
    netloc = st.tuples(host, st.one_of(st.just(""), port.map(lambda p: ":" + p))).map("".join)
    netlocs = st.lists(netloc, min_size=1, max_size=3).map(",".join)
    path = st.one_of(st.just(""), st.just("/"), text.map(lambda p: "/" + p))

    value = st.one_of(text, st.sampled_from(FLAG_VALUES))
    param = st.one_of(
        st.tuples(
            st.sampled_from(QUERY_KEYWORDS + UNKNOWN_KEYWORDS),
            st.one_of(
                st.just(""),
                value.map(lambda v: "=" + v),
                st.tuples(value, value).map(lambda pair: f"={pair[0]}={pair[1]}"),
            ),
        ).map("".join),
        st.tuples(st.sampled_from(["ssl=", "requiressl="]), st.sampled_from(FLAG_VALUES)).map(
            "".join
        ),
    )
    query = st.one_of(
        st.just(""),
        st.tuples(st.lists(param, max_size=3).map("&".join), st.sampled_from(["", "&"])).map(
            lambda pair: "?" + pair[0] + pair[1]
        ),
    )
    return st.tuples(st.sampled_from(URI_PREFIXES), userinfo, netlocs, path, query).map("".join)


uri_strings = st.one_of(uri_strategy(clean_part), uri_strategy(part))

uri_noise = st.tuples(
    st.sampled_from(URI_PREFIXES),
    st.lists(st.sampled_from(CLEAN_TOKENS + BROKEN_TOKENS + STRUCTURE_TOKENS), max_size=12),
).map(lambda pair: pair[0] + "".join(pair[1]))

no_nul_or_surrogate = st.characters(exclude_categories=["Cs"], exclude_characters="\0")

DIFFERENTIAL = settings(max_examples=1000, derandomize=True, deadline=None)


# --- differential properties --------------------------------------------------------------


@DIFFERENTIAL
@given(keyword_value_strings)
def test_keyword_value_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


@settings(DIFFERENTIAL, max_examples=300)
@given(st.text(alphabet=VALUE_ALPHABET + "hostuserpd", max_size=30))
def test_keyword_value_noise_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


@settings(DIFFERENTIAL, max_examples=300)
@given(st.text(no_nul_or_surrogate, max_size=20))
def test_any_text_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


@settings(DIFFERENTIAL, max_examples=1500)
@given(uri_strings)
def test_uri_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


@settings(DIFFERENTIAL, max_examples=500)
@given(uri_noise)
def test_uri_noise_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


flag_settings = st.tuples(
    st.sampled_from(["requiressl=", "postgresql://h?requiressl=", "postgresql://h?ssl="]),
    st.one_of(st.sampled_from(FLAG_VALUES), st.text(alphabet="10tru%65 ", max_size=5)),
).map("".join)


@settings(DIFFERENTIAL, max_examples=200)
@given(flag_settings)
def test_flag_values_match_libpq(text: str) -> None:
    assert_same_as_libpq(text)


settings_dicts = st.dictionaries(
    st.sampled_from(sorted(LIBPQ_KEYWORDS)),
    st.one_of(value_text, st.text(no_nul_or_surrogate, max_size=8)),
    max_size=5,
)


@settings(DIFFERENTIAL, max_examples=400)
@given(settings_dicts)
def test_make_conninfo_round_trips(params: dict[str, str]) -> None:
    text = make_conninfo(params)

    assert parse_conninfo(text) == params
    assert libpq_parse(text) == {key: value.encode() for key, value in params.items()}


# --- corner cases, each checked against libpq -----------------------------------------------

CORNER_CASES = [
    "",
    "   ",
    "host=a port=5",
    "host = a\tport\n=\r5",
    "host= port=5",
    "host='a'port=5",
    "host='a b\\' c'",
    "host=a\\ b",
    "host=a\\",
    "host='a\\",
    "host=a host=b",
    "host=",
    "host='' port=''",
    "host=a\x0bb",
    "host=a\x85b",
    "host=a\xa0b",
    "requiressl=1",
    "requiressl=0",
    "requiressl=",
    "requiressl=10",
    "requiressl= 1",
    "postgresql:/",
    "POSTGRESQL://h",
    "postgresql://",
    "postgres://",
    "postgres:///",
    "postgresql://u@",
    "postgresql://@h",
    "postgresql://:@h",
    "postgresql://u:@h",
    "postgresql://:p@h",
    "postgresql://u:p:q@h",
    "postgresql://u@h@x",
    "postgresql://h?user=a@b",
    "postgresql://h?user=a/b@c",
    "postgresql://h:/",
    "postgresql://:5432/",
    "postgresql://a,b",
    "postgresql://,",
    "postgresql://a:1,b",
    "postgresql://a:1,b:2/db",
    "postgresql://[::1]:5,[::2]/db",
    "postgresql://[a/b]",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
    "postgresql://%2c",
    "postgresql://h/",
    "postgresql://h/%20",
    "postgresql://h/ ",
    "postgresql://h/db/x",
    "postgresql://h/#frag",
    "postgresql://h?",
    "postgresql://h?&",
    "postgresql://h?user=x&",
    "postgresql://h?user=x&&",
    "postgresql://h?=x",
    "postgresql://h?ssl=true",
    "postgresql://h?ssl=%74rue",
    "postgresql://h?ssl= true ",
    "postgresql://h?ssl=false",
    "postgresql://h?ssl=TRUE",
    "postgresql://h?requiressl=1x",
    "postgresql://h?requiressl=1",
    "postgresql://h?sslmode=",
    "postgresql://h?a%3D=1",
    "postgresql://h?user=%ff",
    "postgresql://h?user=%E2%82%AC",
    "postgresql://a b",
    "postgresql://a%zz b",
    "postgresql://a b%zz",
    "postgresql://a%00 b",
    "postgresql:// a ",
    "postgresql://a\tb",
    "postgresql://a \t",
    "postgresql://h?user=a \t",
    "postgresql://h?  user = x & port  = 5 ",
]


@pytest.mark.parametrize("text", CORNER_CASES)
def test_corner_case_matches_libpq(text: str) -> None:
    assert_same_as_libpq(text)


def test_oracle_is_libpq_18() -> None:
    assert pq.version() // 10000 == 18


def test_keywords_equal_libpq_defaults() -> None:
    libpq_keywords = {opt.keyword.decode() for opt in pq.Conninfo.get_defaults()}

    assert libpq_keywords == LIBPQ_KEYWORDS


# --- results ----------------------------------------------------------------------------------


def test_uri_parts_are_stored() -> None:
    parsed = parse_conninfo("postgres://al%40ice:pw@h1:5433,[::1]/db%2F1?sslmode=verify-full")

    assert parsed == {
        "user": "al@ice",
        "password": "pw",
        "host": "h1,::1",
        "port": "5433,",
        "dbname": "db/1",
        "sslmode": "verify-full",
    }


def test_empty_uri_parts_are_not_stored() -> None:
    assert parse_conninfo("postgresql://@/") == {}


def test_later_setting_wins() -> None:
    assert parse_conninfo("host=a port=1 host=b") == {"host": "b", "port": "1"}


def test_ssl_true_means_require() -> None:
    assert parse_conninfo("postgresql://h?ssl=true") == {"host": "h", "sslmode": "require"}


def test_non_utf8_bytes_survive() -> None:
    parsed = parse_conninfo("postgresql://h?user=%ff")

    assert parsed["user"].encode("utf-8", "surrogateescape") == b"\xff"
    assert parse_conninfo(make_conninfo(parsed)) == parsed


def test_make_conninfo_quotes_only_when_needed() -> None:
    text = make_conninfo({"host": "db.example.test", "password": "it's a \\ secret", "user": ""})

    assert text == "host=db.example.test password='it\\'s a \\\\ secret' user=''"


def test_make_conninfo_rejects_unknown_keyword() -> None:
    with pytest.raises(ConfigurationError, match='invalid connection option "hots"') as info:
        make_conninfo({"hots": "a"})

    assert info.value.parameter == "hots"
    assert 'Did you mean "host"?' in str(info.value)


# --- error messages -------------------------------------------------------------------------

# (connection string, fragment of the message, ConfigurationError.parameter, .value)
ERROR_CASES = [
    ("host", 'missing "=" after "host"', "host", None),
    ("host=a b", 'missing "=" after "b"', "b", None),
    ("host='a", 'unterminated quoted string in the value of "host"', "host", "'a"),
    ("hots=a", 'invalid connection option "hots". Did you mean "host"?', "hots", None),
    ("=a", 'invalid connection option ""', "", None),
    ("postgresql://h?hots=a", 'invalid URI query parameter "hots"', "hots", None),
    ("postgresql://h?ssl=false", 'invalid URI query parameter "ssl"', "ssl", None),
    (
        "postgresql://h?user",
        'missing key/value separator "=" in URI query parameter "user"',
        "user",
        None,
    ),
    (
        "postgresql://h?user=a=b",
        'extra key/value separator "=" in URI query parameter "user"',
        "user",
        None,
    ),
    ("postgresql://h%zz", 'invalid percent-encoded token in "h%zz"', "host", "h%zz"),
    ("postgresql://h%4", 'invalid percent-encoded token in "h%4"', "host", "h%4"),
    ("postgresql://h/db%", 'invalid percent-encoded token in "db%"', "dbname", "db%"),
    ("postgresql://h?u%zz=1", 'invalid percent-encoded token in "u%zz"', None, "u%zz"),
    ("postgresql://a%00b", 'forbidden value %00 in "a%00b"', "host", "a%00b"),
    ("postgresql://h:5 6", 'unexpected spaces in "5 6"', "port", "5 6"),
    ("postgresql://h?user=a b", 'unexpected spaces in "a b"', "user", "a b"),
    ("postgresql://[::1", 'missing "]" at the end of IPv6 host address "[::1"', "host", "[::1"),
    ("postgresql://[]/db", 'IPv6 host address "[]" in the URI is empty', "host", "[]"),
    ("postgresql://[::1]x", 'unexpected character "x" at position 19', "host", "[::1]"),
    ("host=a\0b", "NUL character at position 7", None, None),
]


@pytest.mark.parametrize(("text", "fragment", "parameter", "value"), ERROR_CASES)
def test_error_names_the_problem(
    text: str, fragment: str, parameter: str | None, value: str | None
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_conninfo(text)

    assert fragment in str(info.value)
    assert info.value.parameter == parameter
    assert info.value.value == value


@pytest.mark.parametrize("text", [case[0] for case in ERROR_CASES if "\0" not in case[0]])
def test_error_cases_are_rejected_by_libpq(text: str) -> None:
    assert libpq_parse(text) is None


def test_error_tells_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_conninfo("postgresql://a b")

    assert "Use percent-encoded spaces (%20) instead." in str(info.value)


def test_nul_is_truncated_by_libpq() -> None:
    # The reason parse_conninfo rejects NUL: libpq would silently drop everything after it.
    assert libpq_parse("host=a\0b") == {"host": b"a"}


# --- secrets stay out of errors -------------------------------------------------------------

SECRET = "hunter2"

SECRET_CASES = [
    ("password='hunter2", "password"),
    ("password=hunter2 two", "password"),
    ("password=x hunter2", "password"),
    ("password=x hunter2=y", "password"),
    ("sslpassword='hunter2", "sslpassword"),
    ("oauth_client_secret='hunter2", "oauth_client_secret"),
    ("postgresql://u:hunter2%zz@h", "password"),
    ("postgresql://u:hunter2%00@h", "password"),
    ("postgresql://u:hun ter2@h", "password"),
    ("postgresql://h?password=hunter2%zz", "password"),
    ("postgresql://h?sslpassword=hunter2 x", "sslpassword"),
    ("postgresql://h?scram_client_key=hunter2%", "scram_client_key"),
    ("postgresql://u:hunter2@[::1", "host"),
    ("postgresql://u:hunter2@[::1]x", "host"),
    ("postgresql://u:hunter2@[]", "host"),
]


@pytest.mark.parametrize(("text", "parameter"), SECRET_CASES)
def test_secret_is_hidden(text: str, parameter: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_conninfo(text)

    assert "hunter2" not in str(info.value)
    assert "ter2" not in str(info.value)
    assert info.value.value is None or "ter2" not in info.value.value
    assert info.value.parameter == parameter


def test_secret_cases_are_rejected_by_libpq() -> None:
    rejected = [text for text, _ in SECRET_CASES if libpq_parse(text) is None]

    assert rejected == [text for text, _ in SECRET_CASES]


def test_make_conninfo_hides_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_conninfo({"password": SECRET + "\0"})

    assert SECRET not in str(info.value)
    assert info.value.value is None
    assert info.value.parameter == "password"
