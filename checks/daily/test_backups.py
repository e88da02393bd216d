"""Daily: last night's backup ran (RPO 24 h) and wrote a file of a plausible size, on
every backup host (listed where it is)."""

import pytest

from opscheck.probes import backups
from opscheck.probes.host import where

MIN_SHARE = 0.10  # of the same kind's file the night before


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.role("backup")
def test_backup_fresh(ops_host, cfg, evidence):
    """자동 백업 정상 실행 확인: the newest backup of each kind is younger than the RPO,
    not empty, and at least 10 % of the size of the same kind's file the night before."""
    at = where(ops_host)
    inv = backups.scan_on(ops_host, cfg.paths.backup_dir, backups.zone(cfg.service.timezone))
    now, limit = backups.now(), cfg.thresholds.backup_max_age_hours
    for kind in backups.KINDS:
        newest = inv.newest(kind)
        if newest is None:
            evidence.breach(f"{at}no {kind} backup in {inv.directory}")
            continue
        evidence.at_most(f"{at}newest {kind} backup age", newest.age_hours(now), "h", limit)
        for problem in backups.anomalies(newest, now):
            evidence.breach(f"{at}{newest.path.name}: {problem}")
        _judge_size(evidence, newest, inv.previous(newest), at)
    evidence.verdict()


def _judge_size(evidence, newest, before, at: str) -> None:
    """0 bytes, or under MIN_SHARE of the night before, is a backup that did not happen."""
    floor = before.size * MIN_SHARE if before else 0
    evidence.record(f"{at}newest {newest.kind} backup size", newest.size, "bytes", round(floor))
    if newest.size > 0 and newest.size >= floor:
        return
    than = (
        f"; the night before's {before.path.name} is {before.size} bytes, "
        f"limit {MIN_SHARE * 100:g} % of it ({floor:.0f} bytes)"
        if before
        else " (empty)"
    )
    evidence.breach(f"{at}{newest.path.name} is {newest.size} bytes{than}")
