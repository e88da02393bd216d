"""Monthly: the newest backup set restores, whole and within the RTO."""

import pytest

from opscheck.probes import backups, restore


@pytest.mark.monthly
@pytest.mark.critical
def test_restore_drill(cfg, evidence):
    """백업 복구 테스트: the newest set restores in a scratch dir, intact, as live, within RTO."""
    inv = backups.scan(cfg.paths.backup_dir, backups.zone(cfg.service.timezone))
    complete = [s for s in inv.sets() if s.complete]
    if not complete:
        pytest.fail(f"no complete backup set in {inv.directory} to restore", pytrace=False)
    t = cfg.thresholds
    drill = restore.drill(complete[-1], cfg.paths.scratch_dir, t.restore_max_extract_mb * 2**20)
    evidence.record("restored set", drill.label)
    evidence.at_most("restore time", drill.seconds, "s", t.rto_hours * 3600)
    for error in drill.errors:
        evidence.breach(error)
    live = restore.live(cfg.paths.chroma_dir, cfg.paths.template_data)
    if not live.chroma.ok:
        evidence.breach(f"the live store {cfg.paths.chroma_dir}: {live.chroma.problem}")
    if live.templates_error:
        evidence.breach(live.templates_error)
    for kind, name, got, want in restore.count_pairs(drill, live):
        if drill.failed(kind) or want is None:  # the reason is already a breach above
            evidence.record(name, got, "", want)
        else:
            evidence.within(name, got, want, t.restore_tolerance_percent)
    evidence.record(
        "HNSW segment folders restored",
        len(drill.segments),
        "",
        "not readable" if live.segments is None else len(live.segments),
    )
    for segment in restore.missing_segments(drill.results.get("chroma_db"), live.segments):
        where = "the live store's" if live.segments is not None else "its chroma.sqlite3's"
        evidence.breach(f"set {drill.label} lacks {where} HNSW segment folder {segment}")
    evidence.expect(
        ".env restored (key names)",
        ", ".join(drill.env_keys) or "none",
        "present",
        bool(drill.env_keys),
        f"the config archive of set {drill.label} holds no .env",
    )
    evidence.expect(
        "requirements.txt restored",
        drill.has_requirements,
        True,
        drill.has_requirements,
        f"the config archive of set {drill.label} holds no requirements.txt",
    )
    evidence.verdict()
