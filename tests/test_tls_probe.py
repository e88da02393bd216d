"""The TLS probe reads every certificate the server sends, on real TLS servers (the
sandbox's uvicorn with its own CA chain), and never hangs on one that stays silent."""

from __future__ import annotations

import time
import tomllib

from opscheck.probes.tls import certificate
from tests.badserver import BadServer


def _target(sb) -> tuple[str, str]:
    service = tomllib.loads(sb.config.read_text())["service"]
    return service["base_url"], service["ca_bundle"]


def test_the_served_chain_is_leaf_then_intermediate(sandbox_factory):
    url, ca = _target(sandbox_factory(https=True))
    info = certificate(url, 5, ca)
    assert not info.error and not info.verify_error
    assert [(c.position, c.role) for c in info.chain] == [(0, "leaf"), (1, "intermediate")]
    assert info.chain[1].subject == "CN=opscheck sandbox intermediate CA,O=opscheck sandbox"
    assert info.chain[0].issuer == info.chain[1].subject
    assert 364 < info.days_left <= 365 and info.subject == info.chain[0].subject
    assert info.soonest is info.chain[0]


def test_an_intermediate_expiring_first_is_the_soonest(sandbox_factory):
    url, ca = _target(sandbox_factory("tls-intermediate-expiring"))
    info = certificate(url, 5, ca)
    assert not info.error and not info.verify_error
    assert 89 < info.days_left <= 90, "the leaf alone looks fine"
    assert info.soonest.role == "intermediate" and 2 < info.soonest.days_left <= 3


def test_a_silent_server_ends_within_the_timeout():
    with BadServer("silent") as srv:
        start = time.perf_counter()
        info = certificate(f"https://127.0.0.1:{srv.port}", 0.5)
        assert time.perf_counter() - start < 3
    assert info.error == (
        f"cannot read the certificate of 127.0.0.1:{srv.port}: "
        "TLS handshake not complete within 0.5 s"
    )


def test_a_plain_http_server_is_a_reason():
    with BadServer("healthy") as srv:
        info = certificate(f"https://127.0.0.1:{srv.port}", 2)
    assert info.error.startswith(f"cannot read the certificate of 127.0.0.1:{srv.port}: ")
    assert not info.chain
