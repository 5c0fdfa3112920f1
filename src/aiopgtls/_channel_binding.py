"""Channel binding data of type tls-server-end-point (RFC 5929, section 4.1).

The binding data is a hash of the server's DER-encoded leaf certificate.  The hash function
is the one the certificate's signature uses, except that MD5 and SHA-1 are replaced by
SHA-256.  libpq and the PostgreSQL server compute it the same way, from the digest that
OpenSSL reports for the signature algorithm (which covers RSA-PSS through its parameters).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import SignatureAlgorithmOID

from .errors import ChannelBindingUnavailable

CHANNEL_BINDING_TYPE = "tls-server-end-point"

# Signature algorithms without a separate hash function have no tls-server-end-point data.
_ALGORITHM_NAMES = {
    SignatureAlgorithmOID.ED25519: "Ed25519",
    SignatureAlgorithmOID.ED448: "Ed448",
}

# RFC 5929 section 4.1: these are too weak and must be replaced by SHA-256.
_UPGRADED_TO_SHA256 = ("md5", "sha1")


def tls_server_end_point(cert_der: bytes) -> bytes:
    """Compute the tls-server-end-point binding data of the DER leaf certificate ``cert_der``.

    Raises ChannelBindingUnavailable when the certificate cannot be parsed or its signature
    algorithm has no hash function (Ed25519, Ed448) or one that cryptography does not know.
    """
    certificate = _load(cert_der)
    algorithm = _signature_hash(certificate)
    if algorithm.name in _UPGRADED_TO_SHA256:
        algorithm = hashes.SHA256()
    return certificate.fingerprint(algorithm)


def _load(cert_der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise ChannelBindingUnavailable(
            f"could not parse the server certificate for channel binding: {exc}; "
            "use channel_binding=disable or prefer to connect without channel binding"
        ) from exc


def _signature_hash(certificate: x509.Certificate) -> hashes.HashAlgorithm:
    oid = certificate.signature_algorithm_oid
    name = _ALGORITHM_NAMES.get(oid, oid.dotted_string)
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise _unavailable(name, "is not supported by the cryptography package") from exc
    if algorithm is None:
        raise _unavailable(name, "has no hash function")
    return algorithm


def _unavailable(name: str, problem: str) -> ChannelBindingUnavailable:
    return ChannelBindingUnavailable(
        f"channel binding is not possible with this server certificate: its signature "
        f"algorithm {name} {problem}, so no {CHANNEL_BINDING_TYPE} data exists; give the "
        "server a certificate signed with RSA or ECDSA, or use channel_binding=prefer or "
        "disable",
        algorithm=name,
    )
