"""libpq 18's option table: keyword order, environment variables and built-in defaults.

The tables mirror ``PQconninfoOptions`` in fe-connect.c of libpq 18; tests compare them
with ``PQconndefaults()`` of the libpq that psycopg bundles.  Every function takes the
environment as a mapping so that callers and tests can resolve against any environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Every keyword in libpq's table order, then the aiopgtls extensions.
KEYWORD_ORDER: tuple[str, ...] = (
    "service",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslcertmode",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "require_auth",
    "min_protocol_version",
    "max_protocol_version",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "replication",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "sslkeylogfile",
    "sslfactory",
    "sslfactoryarg",
)

# The environment variable libpq reads for each keyword.  sslpassword, sslkeylogfile,
# replication, the keepalive settings, the SCRAM keys and the OAuth settings have none.
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "service": "PGSERVICE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "dbname": "PGDATABASE",
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "client_encoding": "PGCLIENTENCODING",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcertmode": "PGSSLCERTMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "min_protocol_version": "PGMINPROTOCOLVERSION",
    "max_protocol_version": "PGMAXPROTOCOLVERSION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}

# libpq's built-in ("compiled") defaults, applied to keywords still unset after the
# conninfo, the service file and the environment.  gssencmode is "disable" because aiopgtls
# never uses GSSAPI; libpq built with GSSAPI has "prefer" there.
BUILTIN_DEFAULTS: Mapping[str, str] = {
    "channel_binding": "prefer",
    "port": "5432",
    "options": "",
    "sslmode": "prefer",
    "sslnegotiation": "postgres",
    "sslcompression": "0",
    "sslsni": "1",
    "ssl_min_protocol_version": "TLSv1.2",
    "gssencmode": "disable",
    "krbsrvname": "postgres",
    "gssdelegation": "0",
    "target_session_attrs": "any",
    "load_balance_hosts": "disable",
}

# Deprecated: a value starting with "1" means sslmode=require when sslmode is unset.
REQUIRESSL_VARIABLE = "PGREQUIRESSL"

# Server settings that libpq sends in the startup packet from the environment, unless the
# value is "default" in any case (EnvironmentOptions in fe-connect.c).
STARTUP_ENVIRONMENT: Mapping[str, str] = {
    "PGDATESTYLE": "datestyle",
    "PGTZ": "timezone",
    "PGGEQO": "geqo",
}

SERVICE_FILE_VARIABLE = "PGSERVICEFILE"
SYSCONFDIR_VARIABLE = "PGSYSCONFDIR"

# NOTE: libpq builds SYSCONFDIR in at compile time.  Debian's libpq, and the one psycopg
# bundles, use /etc/postgresql-common; an upstream build uses /usr/local/pgsql/etc.  The first
# directory that exists is taken.
SYSCONFDIR_CANDIDATES = ("/etc/postgresql-common", "/usr/local/pgsql/etc")


def home_directory(environ: Mapping[str, str]) -> str | None:
    """Return the home directory as libpq's ``pqGetHomeDirectory()`` finds it.

    A non-empty ``HOME`` wins; otherwise the password database entry of the effective user.
    Returns None when neither is available, which makes libpq skip the files under it.
    """
    home = environ.get("HOME")
    if home:
        return home
    try:
        import pwd
    except ImportError:  # Windows: libpq uses %APPDATA% there, which is not supported.
        return None
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


def sysconfdir(environ: Mapping[str, str]) -> str:
    """Return the directory of the system-wide ``pg_service.conf``."""
    directory = environ.get(SYSCONFDIR_VARIABLE)
    if directory is not None:
        return directory
    for candidate in SYSCONFDIR_CANDIDATES:
        if os.path.isdir(candidate):
            return candidate
    return SYSCONFDIR_CANDIDATES[-1]


def environment_source(variable: str) -> str:
    """Return the source label of a value read from environment variable ``variable``."""
    return f"environment ({variable})"


def operating_system_user() -> str | None:
    """Return the name of the effective user, libpq's default ``user``, or None.

    libpq's ``pg_fe_getauthname()`` looks up the effective user ID in the password database
    and ignores USER and LOGNAME, and so does this function where ``pwd`` exists.
    """
    try:
        import pwd
    except ImportError:
        import getpass

        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return None
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def default_socket_dir() -> str | None:
    """Return the Unix-socket directory libpq uses when no host is given, or None."""
    # NOTE: libpq builds its default socket directory in at compile time; Debian's (and the
    # libpq psycopg bundles) is /var/run/postgresql and upstream's is /tmp.  We take the first
    # one that exists.
    if os.name != "posix":
        return None
    for directory in ("/var/run/postgresql", "/tmp"):
        if os.path.isdir(directory):
            return directory
    return None


# Codeset names from nl_langinfo(CODESET), normalised to upper case without "-" and "_",
# mapped to PostgreSQL encoding names (a subset of the table in src/port/chklocale.c).
_CODESET_ENCODINGS: Mapping[str, str] = {
    "UTF8": "UTF8",
    "ANSIX3.41968": "SQL_ASCII",
    "ASCII": "SQL_ASCII",
    "USASCII": "SQL_ASCII",
    "646": "SQL_ASCII",
    "ISO88591": "LATIN1",
    "ISO88592": "LATIN2",
    "ISO88595": "ISO_8859_5",
    "ISO88597": "ISO_8859_7",
    "ISO88599": "LATIN5",
    "ISO885915": "LATIN9",
    "KOI8R": "KOI8R",
    "KOI8U": "KOI8U",
    "CP1251": "WIN1251",
    "CP1252": "WIN1252",
    "EUCJP": "EUC_JP",
    "EUCKR": "EUC_KR",
    "GB18030": "GB18030",
    "GBK": "GBK",
    "BIG5": "BIG5",
    "SJIS": "SJIS",
    "SHIFTJIS": "SJIS",
}


def locale_client_encoding() -> str | None:
    """Return the PostgreSQL name of the locale's character set, for client_encoding=auto.

    libpq resolves "auto" from the LC_CTYPE locale of the process.  Returns None for a
    character set missing from the table, and libpq then sends no client_encoding.
    """
    # NOTE: the table covers the common codesets only, and libpq's table has more of them.
    try:
        import locale

        codeset = locale.nl_langinfo(locale.CODESET)
        ctype = locale.setlocale(locale.LC_CTYPE)
    except (AttributeError, ValueError, ImportError):
        return None
    if ctype in ("C", "POSIX"):
        return "SQL_ASCII"
    normalised = codeset.upper().replace("-", "").replace("_", "")
    return _CODESET_ENCODINGS.get(normalised)
