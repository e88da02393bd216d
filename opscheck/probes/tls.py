"""The service's TLS certificate: when it expires, and whether a client accepts it."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509


@dataclass
class CertInfo:
    host: str
    port: int
    not_after: datetime | None = None
    days_left: float | None = None
    subject: str = ""
    verify_error: str = ""  # why a client refuses it ("" = accepted)
    error: str = ""  # no certificate could be read at all


def certificate(url: str, timeout_s: float, ca_bundle: str = "") -> CertInfo:
    """Read the certificate the server presents, then verify it as a client would."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    info = CertInfo(host, port)
    try:
        pem = _fetch_pem(host, port, timeout_s)
    except (OSError, ssl.SSLError) as exc:
        info.error = f"cannot read the certificate of {host}:{port}: {exc}"
        return info
    cert = x509.load_pem_x509_certificate(pem.encode())
    info.not_after = cert.not_valid_after_utc
    info.days_left = (info.not_after - datetime.now(UTC)).total_seconds() / 86400
    info.subject = cert.subject.rfc4514_string()
    context = ssl.create_default_context(cafile=ca_bundle or None)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            pass
    except ssl.SSLCertVerificationError as exc:
        info.verify_error = exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        info.verify_error = str(exc)
    return info


def _fetch_pem(host: str, port: int, timeout_s: float) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout_s) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der)
