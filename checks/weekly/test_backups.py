"""Weekly: every night has a complete set, every archive reads through, storage holds, on
every backup host (its files listed and streamed where they are)."""

from datetime import timedelta
from pathlib import Path

import pytest

from opscheck.probes import backups, restore
from opscheck.probes.host import where
from opscheck.probes.hostfiles import files_of


def _inventory(cfg, ops_host):
    return backups.scan_on(ops_host, cfg.paths.backup_dir, backups.zone(cfg.service.timezone))


@pytest.mark.weekly
@pytest.mark.role("backup")
def test_backup_every_day(ops_host, cfg, evidence):
    """데이터베이스 백업: each of the last 7 days has a complete set (all four kinds)."""
    at, sets, now = where(ops_host), _inventory(cfg, ops_host).sets(), backups.now()
    good = 0
    for start, end in backups.day_windows(now, 7):
        found = [s for s in sets if start <= s.stamp < end]
        if any(s.complete for s in found):
            good += 1
            continue
        gaps = "; ".join(f"set {s.label} lacks {', '.join(s.missing)}" for s in found)
        evidence.breach(
            f"{at}no complete set between {backups.when(start)} and "
            f"{backups.when(end)}" + (f" ({gaps})" if gaps else "")
        )
    evidence.record(f"{at}days with a complete set", good, "days", 7)
    evidence.verdict()


@pytest.mark.weekly
@pytest.mark.role("backup")
def test_backup_integrity(ops_host, cfg, evidence):
    """백업 파일 무결성 검증: the last 7 days' archives read through, each chroma_db archive
    holds chroma.sqlite3 and the live store's segment folders; no set shrank by half."""
    at, inv, now = where(ops_host), _inventory(cfg, ops_host), backups.now()
    recent = inv.sets_since(now - timedelta(days=7))
    results = restore.verify_backups(
        [f for s in recent for f in s.files.values()],
        cfg.thresholds.restore_max_extract_mb * 2**20,
        cfg.paths.scratch_dir,
        workers=restore.workers(),
        fs=files_of(ops_host),
    )
    live = restore.segment_dirs(Path(cfg.paths.chroma_dir))
    than = "its chroma.sqlite3 lists" if live is None else "the live store has"
    for r in results:
        if not r.ok:
            evidence.breach(f"{at}{r.path}: {r.error}")
        missing = restore.missing_segments(r, live)
        if missing:
            evidence.breach(f"{at}{r.path}: lacks segment folders {', '.join(missing)} that {than}")
    evidence.record(f"{at}files read through", sum(r.ok for r in results), "files", len(results))
    evidence.record(
        "live HNSW segment folders", "not readable" if live is None else len(live), "folders"
    )
    evidence.record(f"{at}bytes read", sum(r.compressed_bytes for r in results) / 1e6, "MB")
    for _kind, before, after in backups.shrunk(inv.sets(), since=now - timedelta(days=7)):
        evidence.breach(
            f"{at}{after.path.name} is {after.size} bytes, less than half of "
            f"{before.path.name} ({before.size} bytes)"
        )
    if not recent:
        evidence.breach(f"{at}no backup set in the last 7 days in {inv.directory}")
    evidence.verdict()


@pytest.mark.weekly
@pytest.mark.role("backup")
def test_backup_storage_capacity(ops_host, cfg, evidence):
    """백업 저장소 용량 확인: the backup volume is under disk_percent and its free space holds
    backup_headroom_sets more sets at the newest set's size (retention frees one a night)."""
    at, usage = where(ops_host), ops_host.disk_usage(cfg.paths.backup_dir)
    evidence.at_most(
        f"{at}{usage.mount} space used", usage.space_percent, "%", cfg.thresholds.disk_percent
    )
    evidence.record(f"{at}{usage.mount} free space", usage.free_bytes / 1e6, "MB")
    inv = backups.scan_on(ops_host, cfg.paths.backup_dir, backups.zone(cfg.service.timezone))
    complete = [s for s in inv.sets() if s.complete]
    if not complete:
        evidence.breach(f"{at}no complete backup set in {cfg.paths.backup_dir} to size by")
    else:
        newest = complete[-1]
        evidence.record(f"{at}newest set {newest.label} size", newest.size / 1e6, "MB")
        evidence.at_least(
            f"{at}more sets the free space holds",
            usage.free_bytes // max(newest.size, 1),
            "sets",
            cfg.thresholds.backup_headroom_sets,
        )
    evidence.verdict()


@pytest.mark.weekly
@pytest.mark.role("backup")
def test_backup_retention(ops_host, cfg, evidence):
    """오래된 백업 정리: no set older than backup_retention_days + 1 remains."""
    at, sets, now = where(ops_host), _inventory(cfg, ops_host).sets(), backups.now()
    keep_days = cfg.thresholds.backup_retention_days + 1
    if sets:
        age = (now - sets[0].stamp).total_seconds() / 86400
        evidence.record(f"{at}oldest set age", age, "days", keep_days)
    old = [s for s in sets if s.stamp < now - timedelta(days=keep_days)]
    if old:
        age = (now - old[0].stamp).total_seconds() / 86400
        evidence.breach(
            f"{at}{len(old)} sets older than {keep_days} days remain, the oldest "
            f"({old[0].label}) is {age:.1f} days old, limit {keep_days} days"
        )
    evidence.verdict()
