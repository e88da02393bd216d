"""Weekly: no security update waits on the host (a simulated dist-upgrade)."""

import pytest


@pytest.mark.weekly
def test_security_updates_pending(upgrade, evidence):
    """시스템 패치 확인: a simulated upgrade installs no package from a security release."""
    security = upgrade.result.security
    evidence.record("updates pending", len(upgrade.result.pending), "packages")
    evidence.record("security updates pending", len(security), "packages", 0)
    for p in security:
        evidence.record(p.package, f"{p.installed or 'new'} -> {p.candidate}", limit=p.releases[0])
    if security:
        names = "; ".join(f"{p.package} {p.candidate} ({', '.join(p.releases)})" for p in security)
        evidence.breach(f"{len(security)} security updates pending, limit 0: {names}")
    evidence.verdict()
