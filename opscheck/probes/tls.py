"""The service's TLS certificates: every one the server presents, when each expires, and
whether a client accepts the chain.

Python 3.11's `ssl` gives only the peer's leaf certificate. The served chain (leaf and
intermediates, and a root if the server sends one) is read with pyOpenSSL's
`get_peer_cert_chain()`, the PyCA project's binding of OpenSSL that `cryptography` sits
beside: the certificates exactly as the server sent them in its handshake, without
verification, so an expired or soon-expiring intermediate is seen even when a client's
store would build another path. Verification is then done as a client does it, with the
`ssl` module and the system's (or `ca_bundle`'s) CAs.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from OpenSSL import SSL


@dataclass(frozen=True)
class ChainCert:
    """One certificate as served; `position` 0 is the leaf."""

    position: int
    role: str  # "leaf", "intermediate", or "root" (self-issued)
    subject: str
    issuer: str
    not_after: datetime
    days_left: float


@dataclass
class CertInfo:
    host: str
    port: int
    not_after: datetime | None = None  # the leaf's
    days_left: float | None = None  # the leaf's
    subject: str = ""  # the leaf's
    chain: list[ChainCert] = field(default_factory=list)  # every served certificate
    verify_error: str = ""  # why a client refuses it ("" = accepted)
    error: str = ""  # no certificate could be read at all

    @property
    def soonest(self) -> ChainCert | None:
        """The served certificate that expires first."""
        return min(self.chain, key=lambda c: c.not_after, default=None)


def certificate(url: str, timeout_s: float, ca_bundle: str = "") -> CertInfo:
    """Read the chain the server presents, then verify it as a client would."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    info = CertInfo(host, port)
    try:
        served = _served_chain(host, port, timeout_s)
    except (OSError, SSL.Error) as exc:
        info.error = f"cannot read the certificate of {host}:{port}: {_reason(exc)}"
        return info
    if not served:
        info.error = f"cannot read the certificate of {host}:{port}: the server sent none"
        return info
    now = datetime.now(UTC)
    info.chain = [_describe(n, cert, now) for n, cert in enumerate(served)]
    leaf = info.chain[0]
    info.not_after, info.days_left, info.subject = leaf.not_after, leaf.days_left, leaf.subject
    info.verify_error = _verify(host, port, timeout_s, ca_bundle)
    return info


def _describe(position: int, cert: x509.Certificate, now: datetime) -> ChainCert:
    role = "leaf" if position == 0 else "intermediate"
    if position and cert.subject == cert.issuer:
        role = "root"
    not_after = cert.not_valid_after_utc
    return ChainCert(
        position,
        role,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        not_after,
        (not_after - now).total_seconds() / 86400,
    )


def _served_chain(host: str, port: int, timeout_s: float) -> list[x509.Certificate]:
    """The certificates of the server's handshake, in the order sent, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        conn = SSL.Connection(context, sock)
        if not _is_ip(host):
            conn.set_tlsext_host_name(host.encode("idna"))
        conn.set_connect_state()
        while True:
            try:
                conn.do_handshake()
                break
            except (SSL.WantReadError, SSL.WantWriteError) as want:
                writing = isinstance(want, SSL.WantWriteError)
                if not _wait(sock, writing, deadline - time.monotonic()):
                    raise TimeoutError(
                        f"TLS handshake not complete within {timeout_s:g} s"
                    ) from None
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        with contextlib.suppress(SSL.Error):
            conn.shutdown()  # a courtesy close_notify; the chain is read already
    return list(chain)


def _wait(sock: socket.socket, writing: bool, left: float) -> bool:
    """Whether `sock` became ready to read (or write) within `left` seconds."""
    if left <= 0:
        return False
    readable, writable, _ = select.select(
        [] if writing else [sock], [sock] if writing else [], [], left
    )
    return bool(readable or writable)


def _verify(host: str, port: int, timeout_s: float, ca_bundle: str) -> str:
    """Why a client refuses the server's certificate, or "" when it accepts it."""
    try:
        context = ssl.create_default_context(cafile=ca_bundle or None)
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        return str(exc)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        return "; ".join(str(e[-1]) for e in exc.args[0] if e) or "TLS handshake failed"
    return str(exc) or type(exc).__name__
