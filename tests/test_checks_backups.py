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


KINDS = ("chroma_db", "template_data", "config", "logs")


def test_backup_fresh_green(offline, run_checks):
    run = run_checks(offline().config, *only("backup_fresh"))
    entry = run.one("backup_fresh")
    assert entry["outcome"] == "passed", entry
    ev = {e["name"]: e for e in entry["evidence"]}
    assert set(ev) == {f"newest {k} backup age" for k in KINDS} | {
        f"newest {k} backup size" for k in KINDS
    }
    assert all(0 <= ev[f"newest {k} backup age"]["value"] < 24 for k in KINDS)
    for k in KINDS:
        size = ev[f"newest {k} backup size"]
        assert size["unit"] == "bytes" and 0 < size["limit"] <= size["value"], size


def test_backup_fresh_red_on_an_empty_archive(offline, run_checks):
    """Before: passed (0 bytes, mtime kept, is 'fresh'); integrity found it up to 6 days later."""
    entry = run_checks(offline("empty-backup").config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"chroma_db_\d{8}_020000\.tar\.gz is 0 bytes; the night before's "
        r"chroma_db_\d{8}_020000\.tar\.gz is (\d+) bytes, limit 10 % of it \((\d+) bytes\)",
        entry["message"],
    ), entry["message"]
    size = next(e for e in entry["evidence"] if e["name"] == "newest chroma_db backup size")
    assert size["value"] == 0 and size["limit"] > 20_000


def test_backup_fresh_red_on_a_tiny_json(offline, run_checks):
    """Before: passed. A valid JSON with 1 of 449 records is under 10 % of the night before."""
    sb = offline("tiny-backup")
    entry = run_checks(sb.config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    m = re.fullmatch(
        r"template_data_\d{8}_020000\.json is (\d+) bytes; the night before's "
        r"template_data_\d{8}_020000\.json is (\d+) bytes, limit 10 % of it \((\d+) bytes\)",
        entry["message"],
    )
    assert m, entry["message"]
    small, before, floor = map(int, m.groups())
    assert 0 < small < floor == round(before / 10)


def test_backup_fresh_green_on_a_smaller_but_plausible_file(offline, run_checks):
    """A logs archive a quarter of the night before's (old logs cleaned up) is no alarm."""
    sb = offline()
    backups = sb.root / "backups" / "kakao-template"
    before, newest = sorted(backups.glob("logs_*.tar.gz"))[-2:]
    work = sb.root / "quiet"
    (work / "logs").mkdir(parents=True)
    for name in ("app.log.2.gz", "app.log.3.gz"):
        shutil.copyfile(sb.root / "app" / "logs" / name, work / "logs" / name)
    st = newest.stat()
    subprocess.run(["tar", "-czf", newest, "-C", work, "logs/"], check=True)
    os.utime(newest, (st.st_atime, st.st_mtime))
    share = newest.stat().st_size / before.stat().st_size
    assert 0.1 < share < 0.5, share
    assert run_checks(sb.config, *only("backup_fresh")).one("backup_fresh")["outcome"] == "passed"


def test_backup_fresh_red_on_the_first_backup_being_empty(offline, run_checks):
    sb = offline()
    backups = sb.root / "backups" / "kakao-template"
    *older, newest = sorted(backups.glob("config_*.tar.gz"))
    for p in older:
        p.unlink()
    st = newest.stat()
    newest.write_bytes(b"")
    os.utime(newest, (st.st_atime, st.st_mtime))
    entry = run_checks(sb.config, *only("backup_fresh")).one("backup_fresh")
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"{newest.name} is 0 bytes (empty)"


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
    sb = offline("shrunk-backup")
    entry = run_checks(sb.config, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "failed"
    (segment,) = live_segments(sb)
    assert re.fullmatch(
        rf"\S+/chroma_db_\d{{8}}_020000\.tar\.gz: lacks segment folders {segment} that the "
        r"live store has; chroma_db_\d{8}_020000\.tar\.gz is \d+ bytes, less than half of "
        r"chroma_db_\d{8}_020000\.tar\.gz \(\d+ bytes\)",
        entry["message"],
    ), entry["message"]


def live_segments(sb) -> list[str]:
    return sorted(p.parent.name for p in (sb.root / "app" / "chroma_db").glob("*/header.bin"))


def test_backup_integrity_red_on_archives_of_a_symlinked_chroma_dir(offline, run_checks):
    """Before: passed (the guide's tar over a symlink stores the link and reads through)."""
    entry = run_checks(offline("symlinked-chroma").config, *only("backup_integrity")).one(
        "backup_integrity"
    )
    assert entry["outcome"] == "failed"
    breaches = entry["message"].split("; ")
    assert len(breaches) == 7, breaches
    for breach in breaches:
        assert re.fullmatch(
            r"\S+/chroma_db_\d{8}_020000\.tar\.gz: holds no chroma\.sqlite3 "
            r"\(only a symlink app/chroma_db -> \.\./volumes/chroma_db\)",
            breach,
        ), breach
    assert entry["evidence"][0] == {
        "name": "files read through",
        "value": 21,
        "unit": "files",
        "limit": 28,
    }


def test_backup_integrity_red_when_the_segment_folder_is_missing_at_the_same_size(
    offline, run_checks, tmp_path
):
    """No shrink to hide behind: the segment folder is replaced by a file of the same bytes."""
    sb = offline()
    chroma = sorted((sb.root / "backups" / "kakao-template").glob("chroma_db_*.tar.gz"))[-1]
    work = tmp_path / "rebuild"
    shutil.copytree(sb.root / "app" / "chroma_db", work / "app" / "chroma_db")
    (segment,) = live_segments(sb)
    folder = work / "app" / "chroma_db" / segment
    (work / "app" / "chroma_db" / "stray.bin").write_bytes(
        b"".join(p.read_bytes() for p in sorted(folder.iterdir()))
    )
    shutil.rmtree(folder)
    subprocess.run(["tar", "-czf", chroma, "-C", work, "app/chroma_db"], check=True)
    entry = run_checks(sb.config, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"{chroma}: lacks segment folders {segment} that the live store has"
    ), entry["message"]


def test_backup_integrity_green_when_live_gained_a_segment_after_the_backup(offline, run_checks):
    """A collection made today is not in last night's archive, nor in its SQLite: no red."""
    import sqlite3

    sb = offline()
    store = sb.root / "app" / "chroma_db"
    new = "0d7e5b52-9c1a-4d7e-8f00-5e9a7c3b2a11"
    con = sqlite3.connect(store / "chroma.sqlite3")
    con.execute(
        "INSERT INTO segments VALUES (?, 'urn:chroma:segment/vector/hnsw-local-persisted',"
        " 'VECTOR', NULL, NULL)",
        (new,),
    )
    con.commit()
    con.close()
    (store / new).mkdir()
    (store / new / "header.bin").write_bytes(b"\0" * 100)
    entry = run_checks(sb.config, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "passed", entry
    live = next(e for e in entry["evidence"] if e["name"] == "live HNSW segment folders")
    assert live["value"] == 2


def test_backup_integrity_without_a_live_store_judges_by_the_archive_sqlite(offline, run_checks):
    sb = offline("shrunk-backup")
    cfg = sb.with_config(f'[paths]\nchroma_dir = "{sb.root}/nowhere"\n')
    entry = run_checks(cfg, *only("backup_integrity")).one("backup_integrity")
    assert entry["outcome"] == "failed"
    (segment,) = live_segments(sb)
    assert f"lacks segment folders {segment} that its chroma.sqlite3 lists" in entry["message"]
    live = next(e for e in entry["evidence"] if e["name"] == "live HNSW segment folders")
    assert live["value"] == "not readable"


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
    assert "lacks segment folders" not in entry["message"]


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
    ev = {e["name"]: e for e in entry["evidence"]}
    holds = ev["more sets the free space holds"]
    assert holds["value"] >= 3 and holds["limit"] == 3 and holds["unit"] == "sets"
    assert any(n.endswith(" free space") for n in ev)
    assert any(re.fullmatch(r"newest set \d{8}_020000 size", n) for n in ev)


@pytest.fixture
def week_on_tmpfs(offline, tmpfs):
    """The newest 7 sets of a sandbox on a real tmpfs with room for about 10 more. (Sized
    from the sets: the newest holds today's logs so far, so its size grows through the
    day; a fixed 16 MiB held 3 more sets after 18:00, not 4.)"""
    sb = offline()
    src = sb.root / "backups" / "kakao-template"
    stamps = sorted(p.name[5:20] for p in src.glob("logs_*.tar.gz"))[-7:]
    largest = max(sum(p.stat().st_size for p in src.glob(f"*_{s}.*")) for s in stamps)
    mnt = tmpfs(f"size={(17 * largest + (1 << 20)) // 1024 + 1}k")
    dest = mnt / "kakao-template"
    dest.mkdir()
    for p in src.iterdir():
        if any(stamp in p.name for stamp in stamps):
            shutil.copy2(p, dest / p.name)
    set_size = sum(p.stat().st_size for p in dest.glob(f"*_{stamps[-1]}.*"))
    return sb, dest, set_size


def capacity(run_checks, sb, dest, extra: str = ""):
    cfg = sb.with_config(f'[paths]\nbackup_dir = "{dest}"\n{extra}')
    return run_checks(cfg, *only("backup_storage_capacity")).one("backup_storage_capacity")


def test_backup_storage_capacity_green_with_room_for_a_few_nights(run_checks, week_on_tmpfs):
    """Before: failed ('holds 10 sets, minimum 30'); retention frees a set a night."""
    sb, dest, set_size = week_on_tmpfs
    entry = capacity(run_checks, sb, dest)
    assert entry["outcome"] == "passed", entry
    holds = next(e for e in entry["evidence"] if e["name"] == "more sets the free space holds")
    free = os.statvfs(dest).f_bavail * os.statvfs(dest).f_frsize
    assert holds["value"] == free // set_size >= 4


def test_backup_storage_capacity_red_when_free_space_holds_two_sets(run_checks, week_on_tmpfs):
    sb, dest, set_size = week_on_tmpfs
    st = os.statvfs(dest)
    filler = st.f_bavail * st.f_frsize - int(2.5 * set_size)
    (dest.parent / "other-data.bin").write_bytes(b"\1" * (filler - filler % 4096))
    entry = capacity(run_checks, sb, dest)
    assert entry["outcome"] == "failed"
    assert entry["message"] == "more sets the free space holds is 2 sets, minimum 3 sets"
    used = next(e for e in entry["evidence"] if e["name"].endswith("space used"))
    assert used["value"] <= 90, "only the headroom rule fails, not disk_percent"


def test_backup_storage_capacity_headroom_from_config(run_checks, week_on_tmpfs):
    sb, dest, _ = week_on_tmpfs
    entry = capacity(run_checks, sb, dest, "[thresholds]\nbackup_headroom_sets = 40\n")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"more sets the free space holds is \d+ sets, minimum 40 sets", entry["message"]
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


def test_restore_drill_red_on_a_symlinked_chroma_archive(offline, run_checks):
    """Before: failed, but only with 'chroma collections: the restored value could not be
    counted' twice, never saying why."""
    entry = run_checks(offline("symlinked-chroma").config, *only("restore_drill")).one(
        "restore_drill"
    )
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"chroma_db_\d{8}_020000\.tar\.gz: holds no chroma\.sqlite3 "
        r"\(only a symlink app/chroma_db -> \.\./volumes/chroma_db\)",
        entry["message"],
    ), entry["message"]


def rebuild_newest_chroma(sb, tmp_path, damage) -> Path:
    """Last night's chroma_db archive made again by real tar from a copy `damage` changed."""
    chroma = sorted((sb.root / "backups" / "kakao-template").glob("chroma_db_*.tar.gz"))[-1]
    work = tmp_path / "rebuild"
    shutil.copytree(sb.root / "app" / "chroma_db", work / "app" / "chroma_db")
    damage(work / "app" / "chroma_db" / "chroma.sqlite3")
    st = chroma.stat()
    subprocess.run(["tar", "-czf", chroma, "-C", work, "app/chroma_db"], check=True)
    os.utime(chroma, (st.st_atime, st.st_mtime))
    return chroma


def test_restore_drill_red_on_a_sqlite_that_is_not_a_database(offline, run_checks, tmp_path):
    """Before: '... file is not a database; chroma collections: restored 0, live 1; chroma
    embeddings: restored 0, live 42; set ... lacks the live store's HNSW segment folder ...'."""
    sb = offline()
    chroma = rebuild_newest_chroma(sb, tmp_path, lambda db: db.write_bytes(os.urandom(100_000)))
    entry = run_checks(sb.config, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"{chroma.name}: app/chroma_db/chroma.sqlite3: the SQLite could not be read: "
        "file is not a database"
    )
    ev = {e["name"]: e for e in entry["evidence"]}
    assert ev["chroma embeddings"]["value"] is None and ev["chroma embeddings"]["limit"] == 42
    assert ev["HNSW segment folders restored"]["value"] == 1


def test_restore_drill_red_on_a_damaged_sqlite_page(offline, run_checks, tmp_path):
    sb = offline()
    chroma = rebuild_newest_chroma(sb, tmp_path, damage_sqlite_page)
    entry = run_checks(sb.config, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert entry["message"].startswith(f"{chroma.name}: app/chroma_db/chroma.sqlite3: ")
    assert "; " not in entry["message"], "no follow-on breaches"


def test_restore_drill_red_when_the_live_store_is_unreadable(offline, run_checks):
    sb = offline()
    (sb.root / "app" / "chroma_db" / "chroma.sqlite3").write_bytes(b"not sqlite" * 1000)
    entry = run_checks(sb.config, *only("restore_drill")).one("restore_drill")
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"the live store {sb.root}/app/chroma_db: the SQLite could not be read: "
        "file is not a database"
    )


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
