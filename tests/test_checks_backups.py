"""The backup checks proven both ways against sandboxes whose backups are built with
real tar and gzip like the guide's script, each broken in one way."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BACKUP_CHECKS = "-m", "daily or weekly or monthly"


def only(check_id: str) -> list[str]:
    return [*BACKUP_CHECKS, "-k", f"test_{check_id}"]


@pytest.fixture
def offline(sandbox_factory):
    """A sandbox without its HTTP replica (backup checks never call the service)."""

    def make(*faults: str):
        return sandbox_factory("down", *faults)

    return make


# ---- backup_fresh ------------------------------------------------------------------------


def test_backup_fresh_green(offline, run_checks):
    run = run_checks(offline().config, *only("backup_fresh"))
    entry = run.one("backup_fresh")
    assert entry["outcome"] == "passed", entry
    ages = {e["name"]: e["value"] for e in entry["evidence"]}
    assert set(ages) == {
        f"newest {k} backup age" for k in ("chroma_db", "template_data", "config", "logs")
    }
    assert all(0 <= a < 24 for a in ages.values())


def test_backup_fresh_red_when_stale(offline, run_checks):
    run = run_checks(offline("stale-backup").config, *only("backup_fresh"))
    entry = run.one("backup_fresh")
    assert entry["outcome"] == "failed"
    for kind in ("chroma_db", "template_data", "config", "logs"):
        assert re.search(
            rf"newest {kind} backup age is [4-7]\d\.\d h, limit 24 h", entry["message"]
        )


def test_backup_fresh_red_on_a_future_stamp(offline, run_checks):
    entry = run_checks(offline("future-backup").config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert re.search(
        r"chroma_db_\d{8}_020000\.tar\.gz: stamp is \d+\.\d h in the future", entry["message"]
    )


def test_backup_fresh_red_when_mtime_disagrees_with_stamp(offline, run_checks):
    entry = run_checks(offline("backup-mtime").config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert "modified +6.0 h from its stamp, limit 1 h" in entry["message"]


def test_backup_fresh_red_when_a_kind_is_missing_or_dir_gone(offline, run_checks):
    sb = offline()
    backups = sb.root / "backups" / "kakao-template"
    for p in backups.glob("logs_*"):
        p.unlink()
    entry = run_checks(sb.config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"no logs backup in {backups}"
    shutil.rmtree(backups)
    entry = run_checks(sb.config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"backup dir {backups} does not exist"


# ---- backup_every_day --------------------------------------------------------------------


def test_backup_every_day_green(offline, run_checks):
    entry = run_checks(offline().config, *only("backup_every_day")).one("backup_every_day")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"] == [
        {"name": "days with a complete set", "value": 7, "unit": "days", "limit": 7}
    ]


def test_backup_every_day_red_when_a_set_is_incomplete(offline, run_checks):
    run = run_checks(offline("missing-day").config, *only("backup_every_day"))
    entry = run.one("backup_every_day")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"no complete set between .+ and .+ \(set \d{8}_020000 lacks config\)", entry["message"]
    ), entry["message"]
    assert entry["evidence"][0]["value"] == 6


# ---- backup_integrity --------------------------------------------------------------------


def test_backup_integrity_green(offline, run_checks):
    entry = run_checks(offline().config, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"][0] == {
        "name": "files read through",
        "value": 28,
        "unit": "files",
        "limit": 28,
    }


def test_backup_integrity_red_on_truncated_gzip(offline, run_checks):
    entry = run_checks(offline("corrupt-backup").config, *only("backup_integrity")).one(
        "backup_integrity"
    )
    assert entry["outcome"] == "failed"
    assert re.search(r"chroma_db_\d{8}_020000\.tar\.gz: gzip stream broken", entry["message"])
    assert entry["evidence"][0]["value"] == 27 and entry["evidence"][0]["limit"] == 28


def test_backup_integrity_red_when_a_set_shrank_by_half(offline, run_checks):
    entry = run_checks(offline("shrunk-backup").config, *only("backup_integrity")).one(
        "backup_integrity"
    )
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"chroma_db_\d{8}_020000\.tar\.gz is \d+ bytes, less than half of "
        r"chroma_db_\d{8}_020000\.tar\.gz \(\d+ bytes\)",
        entry["message"],
    )


def test_backup_integrity_red_on_hostile_member(offline, run_checks):
    entry = run_checks(offline("traversal-backup").config, *only("backup_integrity")).one(
        "backup_integrity"
    )
    assert entry["outcome"] == "failed"
    assert "member '../../outside.txt' climbs out with '..' (refused)" in entry["message"]


def test_backup_integrity_red_on_invalid_json_and_damaged_sqlite(offline, run_checks, tmp_path):
    sb = offline()
    backups = sb.root / "backups" / "kakao-template"
    newest_json = sorted(backups.glob("template_data_*.json"))[-1]
    newest_json.write_text('{"templates": [')
    chroma = sorted(backups.glob("chroma_db_*.tar.gz"))[-1]
    work = tmp_path / "rebuild"
    shutil.copytree(sb.root / "app" / "chroma_db", work / "app" / "chroma_db")
    damage_sqlite_page(work / "app" / "chroma_db" / "chroma.sqlite3")
    subprocess.run(["tar", "-czf", chroma, "-C", work, "app/chroma_db"], check=True)
    entry = run_checks(sb.config, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "failed"
    assert f"{newest_json.name}: invalid JSON" in entry["message"]
    assert re.search(rf"{chroma.name}: app/chroma_db/chroma.sqlite3: ", entry["message"])


def damage_sqlite_page(db: Path) -> None:
    """Overwrite the root page of a table with junk, as a bad disk would."""
    import sqlite3

    con = sqlite3.connect(db)
    root, size = con.execute(
        "SELECT rootpage, (SELECT page_size FROM pragma_page_size()) FROM sqlite_master "
        "WHERE name = 'embedding_metadata'"
    ).fetchone()
    con.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xde\xad\xbe\xef" * (size // 4))


# ---- backup_storage_capacity -------------------------------------------------------------


def test_backup_storage_capacity_green(offline, run_checks):
    run = run_checks(offline().config, *only("backup_storage_capacity"))
    entry = run.one("backup_storage_capacity")
    assert entry["outcome"] == "passed", entry
    holds = next(e for e in entry["evidence"] if e["name"] == "sets the free space holds")
    assert holds["value"] >= 30 and holds["limit"] == 30


@pytest.fixture
def small_backup_volume(tmpfs):
    """A real 48 MiB tmpfs holding the backups: room for far fewer than 30 more sets."""
    return tmpfs("size=48m")


def test_backup_storage_capacity_red_when_volume_cannot_hold_retention(
    offline, run_checks, small_backup_volume
):
    sb = offline()
    dest = small_backup_volume / "kakao-template"
    shutil.copytree(sb.root / "backups" / "kakao-template", dest)
    cfg = sb.with_config(f'[paths]\nbackup_dir = "{dest}"\n')
    entry = run_checks(cfg, *only("backup_storage_capacity")).one("backup_storage_capacity")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"sets the free space holds is \d+(\.\d+)? sets, minimum 30 sets", entry["message"]
    ), entry["message"]


# ---- backup_retention --------------------------------------------------------------------


def test_backup_retention_green(offline, run_checks):
    entry = run_checks(offline().config, *only("backup_retention")).one("backup_retention")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"][0]["limit"] == 31 and entry["evidence"][0]["value"] < 31


def test_backup_retention_red_when_old_sets_remain(offline, run_checks):
    entry = run_checks(offline("old-backups-kept").config, *only("backup_retention")).one(
        "backup_retention"
    )
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"3 sets older than 31 days remain, the oldest \(\d{8}_020000\) is "
        r"4\d\.\d days old, limit 31 days",
        entry["message"],
    ), entry["message"]


# ---- restore_drill -----------------------------------------------------------------------


def test_restore_drill_green(offline, run_checks):
    entry = run_checks(offline().config, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "passed", entry
    ev = {e["name"]: e for e in entry["evidence"]}
    assert ev["restore time"]["unit"] == "s" and ev["restore time"]["limit"] == 4 * 3600
    assert ev["chroma embeddings"]["value"] == ev["chroma embeddings"]["limit"] == 42
    assert ev["template records"]["value"] == 449
    assert "ANTHROPIC_API_KEY" in ev[".env restored (key names)"]["value"]
    assert "sk-" not in ev[".env restored (key names)"]["value"]


def test_restore_drill_red_on_count_mismatch(offline, run_checks):
    entry = run_checks(offline("restore-mismatch").config, *only("restore_drill")).one(
        "restore_drill"
    )
    assert entry["outcome"] == "failed"
    assert entry["message"] == "template records: restored 449, live 460"


def test_restore_drill_tolerance_from_config(offline, run_checks):
    sb = offline("restore-mismatch")
    cfg = sb.with_config("[thresholds]\nrestore_tolerance_percent = 5.0\n")
    assert run_checks(cfg, *only("restore_drill")).one("restore_drill")["outcome"] == "passed"


def test_restore_drill_red_on_corrupt_archive(offline, run_checks):
    entry = run_checks(offline("corrupt-backup").config, *only("restore_drill")).one(
        "restore_drill"
    )
    assert entry["outcome"] == "failed"
    assert re.search(r"chroma_db_\d{8}_020000\.tar\.gz: gzip stream broken", entry["message"])


def test_restore_drill_red_when_config_lacks_env(offline, run_checks):
    entry = run_checks(offline("config-without-env").config, *only("restore_drill")).one(
        "restore_drill"
    )
    assert entry["outcome"] == "failed"
    assert re.fullmatch(r"the config archive of set \d{8}_020000 holds no \.env", entry["message"])


def test_restore_drill_red_when_segments_missing(offline, run_checks):
    entry = run_checks(offline("shrunk-backup").config, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert re.search(r"lacks the live store's HNSW segment folder [0-9a-f-]{36}", entry["message"])


def test_restore_drill_red_over_rto(offline, run_checks):
    """A restore cannot be made to take 4 hours here; the RTO comes down instead."""
    cfg = offline().with_config("[thresholds]\nrto_hours = 0.000001\n")
    entry = run_checks(cfg, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(r"restore time is [\d.]+ s, limit 0.0036 s", entry["message"])


def test_restore_drill_refuses_hostile_archive_and_writes_nothing_outside(offline, run_checks):
    sb = offline("traversal-backup")
    scratch = sb.root / "scratch"
    scratch.mkdir()
    cfg = sb.with_config(f'[paths]\nscratch_dir = "{scratch}"\n')
    entry = run_checks(cfg, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert "member '../../outside.txt' climbs out with '..' (refused)" in entry["message"]
    assert list(scratch.iterdir()) == [], "the scratch dir is removed, even on failure"
    assert not (sb.root / "outside.txt").exists() and not (scratch.parent / "outside.txt").exists()


# ---- read-only, and bad input never crashes the run --------------------------------------


def tree_digest(root: Path) -> dict[str, tuple[str, int, float]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(root))] = (h, st.st_mode, st.st_mtime)
    return out


def test_weekly_and_monthly_runs_never_write_in_backup_or_app_dir(offline, run_checks):
    sb = offline()
    before = {d: tree_digest(sb.root / d) for d in ("app", "backups")}
    run = run_checks(sb.config, "-m", "(weekly or monthly) and not load")
    assert run.exit_code == 0, run.stdout[-2000:]
    assert {d: tree_digest(sb.root / d) for d in ("app", "backups")} == before


def test_unreadable_backup_file_is_a_failure_with_reason(offline, run_checks):
    """Permission denied for real: the run drops root's read-anything capabilities."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    sb = offline()
    newest = sorted((sb.root / "backups" / "kakao-template").glob("logs_*.tar.gz"))[-1]
    newest.chmod(0)
    os.chown(newest, 65534, 65534)
    cfg = sb.with_config("")
    import sys

    proc = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "weekly",
            "-k",
            "integrity",
            "--ops-config",
            str(cfg),
            "--reports-dir",
            str(sb.root / "r"),
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{newest.name}: cannot read: Permission denied" in proc.stdout


def test_stray_names_and_empty_dir_do_not_crash(offline, run_checks):
    sb = offline()
    backups = sb.root / "backups" / "kakao-template"
    (backups / "chroma_db_latest.tar.gz").write_bytes(b"")
    (backups / "notes.txt").write_text("hello")
    (backups / "config_20261399_020000.tar.gz").write_bytes(b"\x1f\x8b")
    run = run_checks(sb.config, *BACKUP_CHECKS, "-k", "backup or restore")
    assert run.failed_ids() == set(), run.outcomes()
    for p in backups.iterdir():
        p.unlink()
    run = run_checks(sb.config, *BACKUP_CHECKS, "-k", "backup or restore")
    assert run.failed_ids() == {
        "backup_fresh",
        "backup_every_day",
        "backup_integrity",
        "backup_storage_capacity",
        "restore_drill",
    }
    assert run.one("backup_integrity")["message"].startswith("no backup set in the last 7 days")
    assert run.one("restore_drill")["message"].startswith("no complete backup set in")
