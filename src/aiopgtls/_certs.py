"""Throwaway certificate authorities and certificates for the test suite and the demo.

Most certificates are generated with trustme, which is an optional dependency (the ``test``
and ``demo`` extras), so it is imported only when a certificate set is built.  The P-384
and Ed25519 chains, which trustme cannot make, are built with ``cryptography`` directly.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    import trustme

__all__ = ("SERVER_NAMES", "CertificateSet", "KeyPair", "write_certificate_set")

_SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# Names in the subjectAltName of every "good" server certificate: both loopback addresses,
# the name that resolves to them, and a DNS name that resolves nowhere (for tests that set
# ``hostaddr`` and verify against ``host``).
SERVER_NAMES = ("localhost", "127.0.0.1", "::1", "db.example.test")

OTHER_HOST_NAME = "other.example.test"

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate file (leaf first, then any intermediates) and its unencrypted key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertificateSet:
    """Paths of the PEM files written by :func:`write_certificate_set`.

    ``ca_a``, ``ca_b`` and ``ca_c`` are unrelated self-signed roots.  Each server key pair's
    certificate file contains the chain a server sends: the leaf, then any intermediates.

    ``server_rsa``, ``server_p384`` and ``server_ed25519`` differ in the signature algorithm
    of their certificate, which decides the channel binding hash: sha256WithRSAEncryption
    (issued by ``ca_rsa``), ecdsa-with-SHA384 on a P-384 key (``ca_p384``) and Ed25519, which
    has no separate hash function (``ca_ed25519``).
    """

    directory: Path
    ca_a: Path
    ca_b: Path
    ca_c: Path
    intermediate_c: Path
    server_a: KeyPair
    server_b: KeyPair
    server_other_host: KeyPair
    server_chain: KeyPair
    client: KeyPair
    client_user: str
    ca_rsa: Path
    server_rsa: KeyPair
    ca_p384: Path
    server_p384: KeyPair
    ca_ed25519: Path
    server_ed25519: KeyPair

    @property
    def wrong_root(self) -> Path:
        """A root file that does not contain the issuer of ``server_a`` (it is CA-B)."""
        return self.ca_b

    def files(self) -> list[Path]:
        """Return every file of the set: roots, intermediates, certificates and keys."""
        paths: list[Path] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, KeyPair):
                paths.extend((value.cert, value.key))
            elif isinstance(value, Path) and field.name != "directory":
                paths.append(value)
        return paths


def write_certificate_set(directory: Path, client_user: str = "certuser") -> CertificateSet:
    """Generate fresh CAs and certificates and write them as PEM files into ``directory``.

    ``client_user`` becomes the common name of the client certificate, which is what the
    server's ``cert`` authentication compares with the requested user name.  Keys are written
    with mode 0600, certificates with 0644.
    """
    try:
        import trustme
    except ImportError as exc:
        raise RuntimeError(
            "trustme is not installed, but it is needed to generate test certificates; "
            "install the 'test' or 'demo' extra, e.g. pip install 'aiopgtls[demo]'"
        ) from exc

    directory.mkdir(parents=True, exist_ok=True)

    ca_a = trustme.CA(organization_unit_name="aiopgtls test CA-A")
    ca_b = trustme.CA(organization_unit_name="aiopgtls test CA-B")
    ca_c = trustme.CA(organization_unit_name="aiopgtls test CA-C")
    intermediate_c = ca_c.create_child_ca()
    ca_rsa = trustme.CA(organization_unit_name="aiopgtls test CA-RSA", key_type=trustme.KeyType.RSA)
    ca_p384 = _Issuer.create("aiopgtls test CA-P384", ec.generate_private_key(ec.SECP384R1()))
    ca_ed25519 = _Issuer.create("aiopgtls test CA-Ed25519", ed25519.Ed25519PrivateKey.generate())

    return CertificateSet(
        directory=directory,
        ca_a=_write_ca(ca_a, directory / "ca-a.crt"),
        ca_b=_write_ca(ca_b, directory / "ca-b.crt"),
        ca_c=_write_ca(ca_c, directory / "ca-c.crt"),
        intermediate_c=_write_ca(intermediate_c, directory / "intermediate-c.crt"),
        server_a=_write_leaf(ca_a.issue_cert(*SERVER_NAMES), directory, "server-a"),
        server_b=_write_leaf(ca_b.issue_cert(*SERVER_NAMES), directory, "server-b"),
        server_other_host=_write_leaf(
            ca_a.issue_cert(OTHER_HOST_NAME), directory, "server-other-host"
        ),
        server_chain=_write_leaf(
            intermediate_c.issue_cert(*SERVER_NAMES[:3]), directory, "server-chain"
        ),
        client=_write_leaf(_issue_client_cert(ca_a, client_user), directory, "client"),
        client_user=client_user,
        ca_rsa=_write_ca(ca_rsa, directory / "ca-rsa.crt"),
        server_rsa=_write_leaf(
            ca_rsa.issue_cert(*SERVER_NAMES, key_type=trustme.KeyType.RSA), directory, "server-rsa"
        ),
        ca_p384=ca_p384.write(directory / "ca-p384.crt"),
        server_p384=ca_p384.write_leaf(
            ec.generate_private_key(ec.SECP384R1()), directory, "server-p384"
        ),
        ca_ed25519=ca_ed25519.write(directory / "ca-ed25519.crt"),
        server_ed25519=ca_ed25519.write_leaf(
            ed25519.Ed25519PrivateKey.generate(), directory, "server-ed25519"
        ),
    )


def _issue_client_cert(ca: trustme.CA, user: str) -> trustme.LeafCert:
    # trustme needs at least one subjectAltName entry for a well-formed certificate;
    # PostgreSQL's cert authentication reads only the common name.
    return ca.issue_cert(f"{user}@client.example.test", common_name=user)


def _write_ca(ca: trustme.CA, path: Path) -> Path:
    _write_file(path, ca.cert_pem.bytes(), PUBLIC_FILE_MODE)
    return path


def _write_leaf(leaf: trustme.LeafCert, directory: Path, stem: str) -> KeyPair:
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    _write_file(pair.cert, chain, PUBLIC_FILE_MODE)
    _write_file(pair.key, leaf.private_key_pem.bytes(), PRIVATE_FILE_MODE)
    return pair


@dataclass(frozen=True)
class _Issuer:
    """A self-signed root whose signatures use the hash that suits its key.

    ECDSA keys sign with the SHA-2 hash of the curve's size (SHA-384 for P-384), as TLS
    deployments usually do; Ed25519 signs without a separate hash function.
    """

    key: _SigningKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str, key: _SigningKey) -> _Issuer:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = _builder(name, name, key.public_key()).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
        return cls(key, builder.sign(key, _signature_hash(key)))

    def write(self, path: Path) -> Path:
        _write_file(
            path, self.certificate.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE
        )
        return path

    def write_leaf(self, leaf_key: _SigningKey, directory: Path, stem: str) -> KeyPair:
        """Issue a server certificate for SERVER_NAMES to ``leaf_key`` and write both."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAMES[0])])
        names = [_general_name(name) for name in SERVER_NAMES]
        builder = (
            _builder(subject, self.certificate.subject, leaf_key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )
        certificate = builder.sign(self.key, _signature_hash(self.key))

        pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
        _write_file(
            pair.cert, certificate.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE
        )
        key_pem = leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_file(pair.key, key_pem, PRIVATE_FILE_MODE)
        return pair


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdated a little, like trustme, so a client clock slightly behind still accepts it.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
    )


def _signature_hash(key: _SigningKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA384() if key.curve.key_size > 256 else hashes.SHA256()


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)
