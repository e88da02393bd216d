"""Daily: last night's backup ran (RPO 24 h)."""

import pytest

from opscheck.probes import backups


@pytest.mark.daily
@pytest.mark.critical
def test_backup_fresh(cfg, evidence):
    """자동 백업 정상 실행 확인: the newest backup of each kind is younger than the RPO."""
    inv = backups.scan(cfg.paths.backup_dir, backups.zone(cfg.service.timezone))
    now, limit = backups.now(), cfg.thresholds.backup_max_age_hours
    for kind in backups.KINDS:
        newest = inv.newest(kind)
        if newest is None:
            evidence.breach(f"no {kind} backup in {inv.directory}")
            continue
        evidence.at_most(f"newest {kind} backup age", newest.age_hours(now), "h", limit)
        for problem in backups.anomalies(newest, now):
            evidence.breach(f"{newest.path.name}: {problem}")
    evidence.verdict()
