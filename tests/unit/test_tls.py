"""The generated CA and server certificate carry real TLS handshakes, and are renewed, not churned."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from snapferry.cloud.tls import TlsFiles, ensure_certificates
from snapferry.errors import InvalidInput

DAY = 24 * 3600


def handshake(files: TlsFiles, hostname: str) -> bytes:
    """Serve one TLS connection on 127.0.0.1 and connect to it as hostname, trusting only the CA.

    Returns what the server sent; raises ssl.SSLCertVerificationError if the client refuses it.
    """
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.server_cert, files.server_key)
    client = ssl.create_default_context(cafile=str(files.ca_cert))
    assert client.check_hostname
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert len(client.get_ca_certs()) == 1

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            with listener.accept()[0] as conn:
                conn.settimeout(10)
                try:
                    with server.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello")
                except (ssl.SSLError, OSError):
                    pass  # the client refused us; the client side reports why

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            port = listener.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                return tls.recv(5)
        finally:
            thread.join(10)


def san(path: Path) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_a_client_trusting_only_the_ca_completes_a_handshake(tmp_path: Path, hostname: str) -> None:
    files = ensure_certificates(tmp_path / "tls")
    assert handshake(files, hostname) == b"hello"


def test_a_host_not_in_the_certificate_is_refused(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files, "example.com")


def test_another_installation_is_not_trusted(tmp_path: Path) -> None:
    ours = ensure_certificates(tmp_path / "ours")
    theirs = ensure_certificates(tmp_path / "theirs")
    mixed = TlsFiles(theirs.ca_cert, ours.server_cert, ours.server_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(mixed, "localhost")


def test_good_certificates_are_left_alone(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    before = {p: p.read_bytes() for p in tmp_path.joinpath("tls").glob("*.pem")}
    assert len(before) == 4
    assert ensure_certificates(tmp_path / "tls", ["LOCALHOST"]) == files
    assert {p: p.read_bytes() for p in before} == before


def test_a_new_host_gets_a_new_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    ca, ca_key = files.ca_cert.read_bytes(), (tmp_path / "tls" / "ca-key.pem").read_bytes()
    old_server = files.server_cert.read_bytes()

    ensure_certificates(tmp_path / "tls", ["localhost", "127.0.0.1", "snapferry.test", "::1"])

    assert files.ca_cert.read_bytes() == ca
    assert (tmp_path / "tls" / "ca-key.pem").read_bytes() == ca_key
    assert files.server_cert.read_bytes() != old_server
    assert x509.DNSName("snapferry.test") in san(files.server_cert)
    assert handshake(files, "snapferry.test") == b"hello"
    assert handshake(files, "127.0.0.1") == b"hello"


def test_a_server_certificate_near_expiry_or_missing_is_replaced(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    ca, first = files.ca_cert.read_bytes(), files.server_cert.read_bytes()

    ensure_certificates(tmp_path / "tls", clock=lambda: time.time() + 300 * DAY)
    assert files.server_cert.read_bytes() == first
    ensure_certificates(tmp_path / "tls", clock=lambda: time.time() + 340 * DAY)
    second = files.server_cert.read_bytes()
    assert second != first
    assert files.ca_cert.read_bytes() == ca

    files.server_cert.unlink()
    ensure_certificates(tmp_path / "tls")
    assert files.server_cert.read_bytes() not in (first, second)
    files.server_key.write_bytes(b"damaged")
    ensure_certificates(tmp_path / "tls")
    assert handshake(files, "localhost") == b"hello"
    assert files.ca_cert.read_bytes() == ca


def test_keys_are_private(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls")
    ensure_certificates(tmp_path / "tls", ["localhost", "127.0.0.2"])
    for key in (files.server_key, tmp_path / "tls" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert not list((tmp_path / "tls").glob(".tmp-*"))


@pytest.mark.parametrize(
    "hosts", [[], "localhost", ["bad host"], ["-x.example"], ["a..b"], ["x" * 254]]
)
def test_bad_hosts_raise(tmp_path: Path, hosts: list[str]) -> None:
    with pytest.raises(InvalidInput):
        ensure_certificates(tmp_path / "tls", hosts)
    assert not (tmp_path / "tls").exists()


def test_a_damaged_ca_key_is_reported_not_replaced(tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "tls")
    (tmp_path / "tls" / "ca-key.pem").write_bytes(b"damaged")
    with pytest.raises(InvalidInput, match=r"ca-key\.pem"):
        ensure_certificates(tmp_path / "tls")
    assert (tmp_path / "tls" / "ca-key.pem").read_bytes() == b"damaged"
