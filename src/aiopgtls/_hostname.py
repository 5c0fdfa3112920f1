"""The verify-full host name check, with libpq's rules.

libpq 15 to 18 check the server certificate against the ``host`` parameter after the TLS
handshake (``pgtls_verify_peer_name_matches_certificate_guts()`` in fe-secure-openssl.c and
``pq_verify_peer_name_matches_certificate*()`` in fe-secure-common.c).  Their rules differ from
Python's ``ssl.match_hostname`` in several places, so this module reimplements them:

- the host is an IP address when ``inet_aton()`` accepts it (``127.1``, ``0x7f.0.0.1``) or
  ``inet_pton(AF_INET6)`` does, and a DNS name otherwise;
- every dNSName and iPAddress entry of subjectAltName is compared, in order, and a dNSName is
  compared even when the host is an IP address;
- the first subject common name is used only when no subjectAltName entry has the host's own
  type, so an IP host falls back to the common name even when dNSName entries exist;
- a wildcard is a leading ``*.`` that covers one label.

Names are taken from the certificate's DER bytes, as OpenSSL hands them to libpq, so an
embedded NUL or an iPAddress of odd length is handled exactly as in libpq.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

from cryptography import x509

from ._der import children, element_content
from .errors import HostnameMismatchError

__all__ = ("check_peer_name", "inet_aton", "is_ip_address")

# At most this many certificate names are listed in a mismatch message.
_MAX_LISTED_NAMES = 5

_HINT = (
    "connect with a host name that the certificate lists, reissue the certificate with this "
    "host name in its subjectAltName, or use sslmode=verify-ca to skip the host name check"
)

# DER identifiers and object identifiers (content bytes) used below.
_SEQUENCE = 0x30
_OID = 0x06
_VERSION = 0xA0  # [0] EXPLICIT in TBSCertificate
_EXTENSIONS = 0xA3  # [3] EXPLICIT in TBSCertificate
_DNS_NAME = 0x82  # GeneralName [2] IMPLICIT IA5String
_IP_ADDRESS = 0x87  # GeneralName [7] IMPLICIT OCTET STRING
_OID_SUBJECT_ALT_NAME = bytes((0x55, 0x1D, 0x11))  # 2.5.29.17
_OID_COMMON_NAME = bytes((0x55, 0x04, 0x03))  # 2.5.4.3

# Largest value of the last part of an inet_aton() address, by the number of parts before it.
_LAST_PART_MAX = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)
_C_SPACE = " \t\n\v\f\r"
_HEX_DIGITS = "0123456789abcdefABCDEF"


def inet_aton(text: str) -> bytes | None:
    """Parse ``text`` as glibc's ``inet_aton()`` does; return the 4 address bytes or None.

    The grammar is one to four parts separated by dots.  Each part is a C integer literal
    (``0x`` hexadecimal, leading ``0`` octal, else decimal), and the last part fills all
    remaining bytes, so ``127.1`` is 127.0.0.1.  Anything after ASCII white space is ignored,
    as glibc does.
    """
    parts: list[int] = []
    position = 0
    while True:
        parsed = _parse_c_integer(text, position)
        if parsed is None:
            return None
        value, position = parsed
        if position < len(text) and text[position] == ".":
            if len(parts) == 3 or value > 0xFF:
                return None
            parts.append(value)
            position += 1
            continue
        break

    if position < len(text) and text[position] not in _C_SPACE:
        return None
    if value > _LAST_PART_MAX[len(parts)]:
        return None
    prefix = bytes(parts)
    return prefix + value.to_bytes(4 - len(prefix), "big")


def _parse_c_integer(text: str, start: int) -> tuple[int, int] | None:
    """Parse an unsigned C literal at ``start`` like ``strtoul(..., 0)``; return (value, end).

    The part must start with an ASCII digit.  A ``0x`` with no hexadecimal digit after it is
    the number 0 followed by ``x``, as in C.  Values above 32 bits are rejected.
    """
    if start >= len(text) or not ("0" <= text[start] <= "9"):
        return None

    base, digits, position = 10, "0123456789", start
    if text[start] == "0":
        base, digits = 8, "01234567"
        prefix, first_hex_digit = text[start + 1 : start + 2], text[start + 2 : start + 3]
        if prefix in ("x", "X") and first_hex_digit and first_hex_digit in _HEX_DIGITS:
            base, digits, position = 16, _HEX_DIGITS, start + 2

    end = position
    while end < len(text) and text[end] in digits:
        end += 1
    value = int(text[position:end], base)
    if value > 0xFFFFFFFF:
        return None
    return value, end


def _inet_pton6(text: str) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError, UnicodeError):
        return None


def is_ip_address(host: str) -> bool:
    """Tell whether libpq treats ``host`` as an IP address in the verify-full check."""
    return inet_aton(host) is not None or _inet_pton6(host) is not None


@dataclasses.dataclass(frozen=True)
class _CertificateNames:
    """The names libpq compares, as raw bytes in certificate order.

    ``alt_names`` holds (DER identifier, content) pairs of the dNSName and iPAddress entries;
    ``common_name`` is the first subject CN.
    """

    alt_names: tuple[tuple[int, bytes], ...]
    common_name: bytes | None


@dataclasses.dataclass
class _Scan:
    """Result of the comparison: the names examined, in order, and whether one matched."""

    examined: list[str] = dataclasses.field(default_factory=list)
    matched: bool = False
    skipped_common_name: bytes | None = None


def check_peer_name(cert: x509.Certificate, host: str) -> None:
    """Raise HostnameMismatchError unless ``cert`` names ``host`` under libpq's rules.

    ``host`` is the ``host`` connection parameter, never ``hostaddr``.  The message names the
    certificate's names, the host and what to do.
    """
    if not host:
        raise HostnameMismatchError(
            "host name must be specified for a verified SSL connection; pass host= with the "
            "name the server certificate lists (hostaddr alone cannot be checked), or use "
            "sslmode=verify-ca"
        )

    names = _certificate_names(cert)
    host_bytes = host.encode("utf-8", "surrogateescape")
    host_is_ip = is_ip_address(host)
    scan = _Scan()
    same_type_seen = _scan_alt_names(names.alt_names, host, host_bytes, host_is_ip, scan)

    if scan.matched:
        return
    if same_type_seen:
        scan.skipped_common_name = names.common_name
    elif names.common_name is not None:
        scan.examined.append(_display_name(names.common_name))
        scan.matched = _name_matches(names.common_name, host_bytes)
        if scan.matched:
            return

    raise HostnameMismatchError(_mismatch_message(scan, host, host_bytes))


def _scan_alt_names(
    alt_names: tuple[tuple[int, bytes], ...],
    host: str,
    host_bytes: bytes,
    host_is_ip: bool,
    scan: _Scan,
) -> bool:
    """Compare subjectAltName entries until one matches; return whether one had the host's type.

    Raises HostnameMismatchError for an entry libpq rejects outright.  libpq ends the scan at
    the first match, so the entries after it are not checked for such errors either.
    """
    same_type_seen = False
    for identifier, content in alt_names:
        is_ip_entry = identifier == _IP_ADDRESS
        same_type_seen = same_type_seen or is_ip_entry == host_is_ip
        if is_ip_entry:
            scan.matched = _address_matches(content, host)
            scan.examined.append(_display_address(content))
        else:
            scan.examined.append(_display_name(content))
            scan.matched = _name_matches(content, host_bytes)
        if scan.matched:
            break
    return same_type_seen


def _name_matches(name: bytes, host: bytes) -> bool:
    """Compare a dNSName or common name with the host, ignoring ASCII case."""
    if b"\x00" in name:
        raise HostnameMismatchError(
            f"SSL certificate's name contains embedded null: {_display_name(name)}; such a "
            "certificate could pass for another host, so reissue it without the NUL byte"
        )
    # bytes.lower() folds ASCII letters only, like pg_strcasecmp() in the C locale.
    return name.lower() == host.lower() or _wildcard_matches(name, host)


def _wildcard_matches(pattern: bytes, host: bytes) -> bool:
    """Match a ``*.suffix`` pattern whose ``*`` stands for the host's first label.

    The rule, like libpq's ``wildcard_certificate_match()``, rejects a dot before the last
    character that ``*`` covers.  So ``*.example.com`` matches ``a.example.com``, not
    ``a.b.example.com`` or ``example.com``, but it does match ``a..example.com``.
    """
    if len(pattern) < 3 or not pattern.startswith(b"*."):
        return False
    if len(pattern) > len(host):
        return False

    covered = len(host) - len(pattern) + 1  # host[:covered] is what '*' stands for
    if host[covered:].lower() != pattern[1:].lower():
        return False
    return host.find(b".") >= covered - 1


def _address_matches(address: bytes, host: str) -> bool:
    """Compare an iPAddress entry with the host's address bytes; a non-IP host never matches."""
    if len(address) == 4:
        return inet_aton(host) == address
    if len(address) == 16:
        return _inet_pton6(host) == address
    raise HostnameMismatchError(
        f"certificate contains IP address with invalid length {len(address)}; subjectAltName "
        "iPAddress entries must be 4 bytes (IPv4) or 16 bytes (IPv6), so reissue the certificate"
    )


def _display_name(name: bytes) -> str:
    # libpq prints the raw bytes; UTF-8 covers the common case and escapes keep NUL visible.
    return name.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _display_address(address: bytes) -> str:
    """Format an iPAddress entry as libpq's ``pg_inet_net_ntop()`` does.

    That differs from Python's ``ipaddress`` only for IPv4-mapped addresses (``::ffff:1.2.3.4``)
    and for addresses whose first six groups are zero and seventh is not (``::1.2.3.4``), which
    libpq prints with a dotted IPv4 part.
    """
    if len(address) == 4:
        return str(ipaddress.IPv4Address(address))

    words = [int.from_bytes(address[i : i + 2], "big") for i in range(0, 16, 2)]
    leading_zeros = next((i for i, word in enumerate(words) if word), 8)
    if leading_zeros == 5 and words[5] == 0xFFFF:
        return f"::ffff:{ipaddress.IPv4Address(address[12:])}"
    if leading_zeros == 6:
        return f"::{ipaddress.IPv4Address(address[12:])}"
    return ipaddress.IPv6Address(address).compressed


def _mismatch_message(scan: _Scan, host: str, host_bytes: bytes) -> str:
    if not scan.examined:
        text = (
            "could not get server's host name from server certificate; the certificate has "
            "no subjectAltName dNSName or iPAddress entry and no common name"
        )
        return f"{text}; reissue it with host name {_quoted(host)} in its subjectAltName"

    first, others = scan.examined[0], len(scan.examined) - 1
    if others == 0:
        text = f"server certificate for {_quoted(first)} does not match host name {_quoted(host)}"
    else:
        noun = "name" if others == 1 else "names"
        text = (
            f"server certificate for {_quoted(first)} (and {others} other {noun}) does not "
            f"match host name {_quoted(host)}"
        )
        listed = ", ".join(_quoted(name) for name in scan.examined[:_MAX_LISTED_NAMES])
        more = len(scan.examined) - _MAX_LISTED_NAMES
        text += f"; the certificate names {listed}" + (f" and {more} more" if more > 0 else "")

    text += _skipped_common_name_note(scan.skipped_common_name, host_bytes)
    return f"{text}; {_HINT}"


def _skipped_common_name_note(common_name: bytes | None, host: bytes) -> str:
    """Explain a common name that would have matched but was ignored under libpq's rules."""
    if common_name is None or b"\x00" in common_name:
        return ""
    if not (common_name.lower() == host.lower() or _wildcard_matches(common_name, host)):
        return ""
    return (
        f"; the common name {_quoted(_display_name(common_name))} matches but is ignored "
        "because the certificate has subjectAltName entries of the host's type"
    )


def _quoted(text: str) -> str:
    return f'"{text}"'


# --- certificate names ------------------------------------------------------------------
# cryptography decodes names into str and raises ValueError for the whole extension when an
# iPAddress entry is not 4, 8, 16 or 32 bytes long.  So the raw entries libpq compares are read
# from the TBSCertificate instead.


def _certificate_names(cert: x509.Certificate) -> _CertificateNames:
    """Collect the subjectAltName entries and the first CN, as libpq receives them from OpenSSL.

    Raises HostnameMismatchError if the certificate's DER cannot be walked.
    """
    try:
        fields = children(element_content(cert.tbs_certificate_bytes, 0, _SEQUENCE))
        if fields and fields[0][0] == _VERSION:
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
        subject = fields[4]
        extensions = [content for identifier, content in fields if identifier == _EXTENSIONS]
        alt_names = _alt_names(extensions[0]) if extensions else ()
        return _CertificateNames(alt_names, _first_common_name(subject[1]))
    except (IndexError, ValueError) as exc:
        raise HostnameMismatchError(
            f"could not read the names in the server certificate: {exc}; reissue the certificate"
        ) from exc


def _alt_names(extensions_field: bytes) -> tuple[tuple[int, bytes], ...]:
    values: list[bytes] = []
    for _, extension in children(element_content(extensions_field, 0, _SEQUENCE)):
        parts = children(extension)
        if parts[0] == (_OID, _OID_SUBJECT_ALT_NAME):
            values.append(element_content(parts[-1][1], 0, _SEQUENCE))

    # OpenSSL's X509_get_ext_d2i() returns nothing when the extension occurs twice, so libpq
    # then behaves as if the certificate had no subjectAltName.
    if len(values) != 1:
        return ()
    return tuple(
        (identifier, content)
        for identifier, content in children(values[0])
        if identifier in (_DNS_NAME, _IP_ADDRESS)
    )


def _first_common_name(subject: bytes) -> bytes | None:
    for _, relative_name in children(subject):
        for _, attribute in children(relative_name):
            oid, value = children(attribute)[:2]
            if oid == (_OID, _OID_COMMON_NAME):
                return value[1]
    return None
