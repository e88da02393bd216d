"""Daily: the HTTPS certificate is valid and not about to expire."""

import pytest

from opscheck.probes.tls import certificate


@pytest.mark.daily
def test_tls_certificate_valid(cfg, evidence):
    """보안: the certificate verifies for the host and expires in more than tls_min_days."""
    if not cfg.service.base_url.lower().startswith("https://"):
        pytest.skip(f"the target is not HTTPS ({cfg.service.base_url.split('://')[0]})")
    info = certificate(cfg.service.base_url, cfg.service.timeout_s, cfg.service.ca_bundle)
    if info.error:
        pytest.fail(info.error, pytrace=False)
    evidence.record("certificate subject", info.subject)
    evidence.record("expires (UTC)", f"{info.not_after:%Y-%m-%d %H:%M}")
    evidence.at_least("days until expiry", info.days_left, "days", cfg.thresholds.tls_min_days)
    evidence.expect(
        "client verification",
        info.verify_error or "accepted",
        "accepted",
        not info.verify_error,
        f"a client refuses the certificate of {info.host}: {info.verify_error}",
    )
    evidence.verdict()
