"""A private certificate authority and a server certificate for the cloud's HTTPS endpoints.

Files in the directory given to ``ensure_certificates``:

* ``ca-key.pem`` (0600) and ``ca.pem`` — the CA, created once. Clients trust ``ca.pem`` (for
  example through ``REQUESTS_CA_BUNDLE``), so the key is never replaced; the certificate is
  re-issued from the same key only if it is missing, damaged or near its end.
* ``server-key.pem`` (0600) and ``server.pem`` — the server's key and certificate, signed by the
  CA for the requested hosts, replaced whenever they are missing, damaged, mismatched, issued by
  another CA, close to expiry or lacking a host.

Every write is atomic (temp file, fsync, rename, directory fsync). Callers are serialized by an
``flock`` on ``.lock`` in the directory, so concurrent processes never leave a key beside another
key's certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from snapferry.errors import InvalidInput
from snapferry.files import write_atomic

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
"""A certificate that expires within this long is replaced."""
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clients whose clocks run a little slow
_DNS_NAME = re.compile(
    r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)

Host = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA certificate (for clients) and the server's certificate and key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def ensure_certificates(
    directory: Path,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    clock: Callable[[], float] = time.time,
) -> TlsFiles:
    """Make sure directory holds a CA and a server certificate valid for every host; return them.

    hosts are DNS names (``*.`` wildcards allowed) or IP addresses; InvalidInput if there are
    none or one is neither, or if ``ca-key.pem`` exists but is unreadable (delete the CA files to
    start a new CA). Safe to repeat and to call from several processes at once; files that are
    still good are left untouched. clock gives the current Unix time.
    """
    names = _parse_hosts(hosts)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    with _locked(directory / ".lock"):
        ca_key, ca_cert = _ensure_ca(directory / "ca-key.pem", files.ca_cert, now)
        server_key = _load_key(files.server_key)
        server_cert = _load_cert(files.server_cert)
        if (
            server_key is None
            or server_cert is None
            or not _current(server_cert, server_key, ca_key, now)
            or not _covers(server_cert, names)
        ):
            # key first: a crash between the writes leaves a mismatch the next call repairs
            server_key = _new_key(files.server_key)
            cert = _issue_server(server_key, ca_key, ca_cert, names, now)
            write_atomic(
                files.server_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644
            )
    return files


def _ensure_ca(
    key_path: Path, cert_path: Path, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA key (created if missing, never replaced) and a current certificate for it."""
    key = _load_key(key_path)
    if key is None:
        if key_path.exists():
            raise InvalidInput(f"{key_path} does not hold a readable EC private key")
        key = _new_key(key_path)
    cert = _load_cert(cert_path)
    if cert is None or not _current(cert, key, key, now):
        cert = _issue_ca(key, now)
        write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return key, cert


def _issue_ca(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    # The name carries the key's id so CAs of different installations never share a subject.
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"snapferry CA {ski.digest[:6].hex()}")]
    )
    usage = _key_usage(key_cert_sign=True, crl_sign=True)
    return (
        _builder(name, name, key.public_key(), now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _issue_server(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: list[Host],
    now: datetime.datetime,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(names[0]))])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    lifetime = min(SERVER_LIFETIME, ca_cert.not_valid_after_utc - now)  # never outlive the CA
    return (
        _builder(subject, ca_cert.subject, key.public_key(), now, lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    lifetime: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _common_name(name: Host) -> str:
    text = str(name.value)
    return text if len(text) <= 64 else "snapferry"


def _current(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> bool:
    """True if cert is for key, signed by issuer_key, valid now and not due for renewal."""
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        return False
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc - RENEW_BEFORE:
        return False
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        issuer_key.public_key().verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm)
        )
    except InvalidSignature:
        return False
    return True


def _covers(cert: x509.Certificate, names: list[Host]) -> bool:
    """True if cert's SubjectAlternativeName lists every one of names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in san for name in names)


def _public_der(key: object) -> bytes | None:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _parse_hosts(hosts: Sequence[str]) -> list[Host]:
    """hosts as SAN entries, deduplicated, DNS names lowercased; InvalidInput if one is bad."""
    if isinstance(hosts, str) or not hosts:
        raise InvalidInput("give at least one host name or IP address, as a sequence")
    names: list[Host] = []
    for host in hosts:
        name: Host
        try:
            name = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            if (
                not isinstance(host, str)
                or len(host) > 253
                or not _DNS_NAME.fullmatch(host.lower())
            ):
                raise InvalidInput(f"{host!r} is neither a DNS name nor an IP address") from None
            name = x509.DNSName(host.lower())
        if name not in names:
            names.append(name)
    return names


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The EC private key at path, or None if the file is missing or holds none."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_cert(path: Path) -> x509.Certificate | None:
    """The certificate at path, or None if the file is missing or holds none."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _new_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A new P-256 key, written to path (mode 0600) before it is returned."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, mode=0o600)
    return key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on path (created if missing) for the duration."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
