"""Monthly: no security update has waited longer than `security_update_max_age_days`, on
any host."""

import pytest

from opscheck.probes import packages
from opscheck.probes.host import where


@pytest.mark.monthly
def test_system_updates_applied(upgrade, ops_host, cfg, evidence):
    """보안 패치 적용 / 시스템 업데이트: every pending security update is younger than the
    limit (pending at least since its package list's Date, or since this suite first saw it)."""
    result, first_seen, now = upgrade.result, upgrade.first_seen, upgrade.now
    at = where(ops_host)
    limit = cfg.thresholds.security_update_max_age_days
    ages = sorted(
        ((packages.pending_days(p, first_seen, now), p) for p in result.security),
        key=lambda a: -a[0],
    )
    evidence.record(f"{at}security updates pending", len(ages), "packages")
    if not ages:
        evidence.record(f"{at}oldest pending security update", 0.0, "days", limit)
    for days, p in ages:
        evidence.at_most(f"{at}{p.package} {p.candidate} pending", round(days, 1), "days", limit)
    evidence.verdict()
