"""Monthly: the newest backup set of every backup host restores, whole and within the RTO
(into scratch here: a remote host's archives are streamed from it, nothing written there)."""

import pytest

from opscheck.probes import backups, restore
from opscheck.probes.host import where
from opscheck.probes.hostfiles import files_of


@pytest.mark.monthly
@pytest.mark.critical
@pytest.mark.role("backup")
def test_restore_drill(ops_host, cfg, evidence):
    """백업 복구 테스트: the newest set restores in a scratch dir, intact, as live, within RTO."""
    at = where(ops_host)
    inv = backups.scan_on(ops_host, cfg.paths.backup_dir, backups.zone(cfg.service.timezone))
    complete = [s for s in inv.sets() if s.complete]
    if not complete:
        pytest.fail(f"{at}no complete backup set in {inv.directory} to restore", pytrace=False)
    t, newest = cfg.thresholds, complete[-1]
    max_bytes = t.restore_max_extract_mb * 2**20
    drill = restore.drill(newest, cfg.paths.scratch_dir, max_bytes, fs=files_of(ops_host))
    evidence.record(f"{at}restored set", drill.label)
    evidence.at_most(f"{at}restore time", drill.seconds, "s", t.rto_hours * 3600)
    for error in drill.errors:
        evidence.breach(f"{at}{error}")
    live = restore.live(cfg.paths.chroma_dir, cfg.paths.template_data)
    if not live.chroma.ok:
        evidence.breach(f"the live store {cfg.paths.chroma_dir}: {live.chroma.problem}")
    if live.templates_error:
        evidence.breach(live.templates_error)
    for kind, name, got, want in restore.count_pairs(drill, live):
        if drill.failed(kind) or want is None:  # the reason is already a breach above
            evidence.record(f"{at}{name}", got, "", want)
        else:
            evidence.within(f"{at}{name}", got, want, t.restore_tolerance_percent)
    evidence.record(
        f"{at}HNSW segment folders restored",
        len(drill.segments),
        "",
        "not readable" if live.segments is None else len(live.segments),
    )
    for segment in restore.missing_segments(drill.results.get("chroma_db"), live.segments):
        lacks = "the live store's" if live.segments is not None else "its chroma.sqlite3's"
        evidence.breach(f"{at}set {drill.label} lacks {lacks} HNSW segment folder {segment}")
    evidence.expect(
        f"{at}.env restored (key names)",
        ", ".join(drill.env_keys) or "none",
        "present",
        bool(drill.env_keys),
        f"{at}the config archive of set {drill.label} holds no .env",
    )
    evidence.expect(
        f"{at}requirements.txt restored",
        drill.has_requirements,
        True,
        drill.has_requirements,
        f"{at}the config archive of set {drill.label} holds no requirements.txt",
    )
    evidence.verdict()
