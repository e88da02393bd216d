"""Daily: the HTTPS certificates are valid and none is about to expire."""

import pytest

from opscheck.evidence import fmt
from opscheck.probes.tls import certificate


@pytest.mark.daily
def test_tls_certificate_valid(cfg, evidence):
    """보안: a client accepts the chain and every served certificate (leaf, intermediates)
    expires in more than tls_min_days."""
    if not cfg.service.base_url.lower().startswith("https://"):
        pytest.skip(f"the target is not HTTPS ({cfg.service.base_url.split('://')[0]})")
    info = certificate(cfg.service.base_url, cfg.service.timeout_s, cfg.service.ca_bundle)
    if info.error:
        pytest.fail(info.error, pytrace=False)
    limit = cfg.thresholds.tls_min_days
    evidence.record("certificate subject", info.subject)
    evidence.record("expires (UTC)", f"{info.not_after:%Y-%m-%d %H:%M}")
    for cert in info.chain:
        name = f"{cert.role} #{cert.position} ({cert.subject}) days left"
        evidence.record(name, cert.days_left, "days", limit)
    first = info.soonest
    evidence.record("days until expiry", first.days_left, "days", limit)
    if first.days_left < limit:
        days = fmt(abs(first.days_left), "days")
        when = f"expires in {days}" if first.days_left >= 0 else f"expired {days} ago"
        evidence.breach(
            f"the {first.role} certificate {first.subject} {when} "
            f"({first.not_after:%Y-%m-%d %H:%M} UTC), minimum {limit} days (tls_min_days)"
        )
    evidence.expect(
        "client verification",
        info.verify_error or "accepted",
        "accepted",
        not info.verify_error,
        f"a client refuses the certificate of {info.host}: {info.verify_error}",
    )
    evidence.verdict()
