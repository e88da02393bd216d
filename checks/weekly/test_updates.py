"""Weekly: no security update waits on any host (a simulated dist-upgrade on each)."""

import pytest

from opscheck.probes.host import where


@pytest.mark.weekly
def test_security_updates_pending(upgrade, ops_host, evidence):
    """시스템 패치 확인: a simulated upgrade installs no package from a security release."""
    security, at = upgrade.result.security, where(ops_host)
    evidence.record(f"{at}updates pending", len(upgrade.result.pending), "packages")
    evidence.record(f"{at}security updates pending", len(security), "packages", 0)
    for p in security:
        evidence.record(
            f"{at}{p.package}", f"{p.installed or 'new'} -> {p.candidate}", limit=p.releases[0]
        )
    if security:
        names = "; ".join(f"{p.package} {p.candidate} ({', '.join(p.releases)})" for p in security)
        evidence.breach(f"{at}{len(security)} security updates pending, limit 0: {names}")
    evidence.verdict()
