"""Weekly: no security update waits on the host (a simulated dist-upgrade)."""

import pytest

from opscheck.probes import ProbeError, packages


@pytest.fixture
def upgrade(cfg, state_dir):
    """What `apt-get -s dist-upgrade` would install; skips on a host without apt."""
    try:
        result = packages.simulate(cfg.packages.apt_config)
    except packages.Unsupported as exc:
        pytest.skip(str(exc))
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    packages.remember(state_dir, result.security, packages.now())
    return result


@pytest.mark.weekly
def test_security_updates_pending(upgrade, evidence):
    """시스템 패치 확인: a simulated upgrade installs no package from a security release."""
    security = upgrade.security
    evidence.record("updates pending", len(upgrade.pending), "packages")
    evidence.record("security updates pending", len(security), "packages", 0)
    for p in security:
        evidence.record(p.package, f"{p.installed or 'new'} -> {p.candidate}", limit=p.releases[0])
    if security:
        names = "; ".join(f"{p.package} {p.candidate} ({', '.join(p.releases)})" for p in security)
        evidence.breach(f"{len(security)} security updates pending, limit 0: {names}")
    evidence.verdict()
