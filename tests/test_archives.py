"""The archive and backup-dir probes on real tar.gz files, good, broken and hostile."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opscheck.probes import ProbeError, backups
from opscheck.probes.archives import extract, verify, verify_json

LIMIT = 1 << 30


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small app/chroma_db like the service's, with a real SQLite store."""
    import sqlite3

    root = tmp_path / "src"
    chroma = root / "app" / "chroma_db"
    (chroma / "seg").mkdir(parents=True)
    con = sqlite3.connect(chroma / "chroma.sqlite3")
    con.executescript(
        "CREATE TABLE collections (id TEXT); CREATE TABLE embeddings (id INT);"
        "INSERT INTO collections VALUES ('c'); INSERT INTO embeddings VALUES (1);"
    )
    con.commit()
    con.close()
    (chroma / "seg" / "header.bin").write_bytes(b"\1" * 5000)
    return root


def tar_gz(tree: Path, dest: Path) -> Path:
    subprocess.run(["tar", "-czf", dest, "-C", tree, "app/chroma_db"], check=True)
    return dest


def crafted(dest: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A tar.gz with exactly the given members (for hostile shapes tar will not make)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    dest.write_bytes(gzip.compress(buf.getvalue()))
    return dest


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_good_archive_reads_through(tree, tmp_path):
    r = verify(tar_gz(tree, tmp_path / "a.tar.gz"), LIMIT)
    assert r.ok, r.error
    assert "app/chroma_db/chroma.sqlite3" in r.members
    assert r.chroma and r.chroma.integrity == "ok" and r.chroma.embeddings == 1
    assert r.content_bytes > 5000


def test_truncated_gzip(tree, tmp_path):
    path = tar_gz(tree, tmp_path / "a.tar.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    r = verify(path, LIMIT)
    assert not r.ok and r.error.startswith("gzip stream broken")


def test_flipped_byte_fails_the_crc_or_inflate(tree, tmp_path):
    path = tar_gz(tree, tmp_path / "a.tar.gz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    r = verify(path, LIMIT)
    assert not r.ok and (
        "gzip stream broken" in r.error
        or "tar stream broken" in r.error
        or "SQLite" in r.error
        or "malformed" in r.error
    ), r.error


def test_tar_missing_its_last_blocks(tree, tmp_path):
    raw = tmp_path / "a.tar"
    subprocess.run(["tar", "-cf", raw, "-C", tree, "app/chroma_db"], check=True)
    data = raw.read_bytes()
    end = len(data.rstrip(b"\0"))
    end += (-end) % 512  # keep the last member's padded data, lose the end-of-archive blocks
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gzip.compress(data[:end]))
    r = verify(path, LIMIT)
    assert not r.ok and r.error == "tar end-of-archive marker missing: the archive was cut short"


def test_last_member_cut_short(tree, tmp_path):
    raw = tmp_path / "a.tar"
    subprocess.run(["tar", "-cf", raw, "-C", tree, "app/chroma_db"], check=True)
    data = raw.read_bytes()
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gzip.compress(data[: len(data.rstrip(b"\0")) - 1000]))
    r = verify(path, LIMIT)
    assert not r.ok and ("is cut short" in r.error or "unexpected end of data" in r.error)


def test_zero_byte_and_not_gzip(tmp_path):
    empty = tmp_path / "e.tar.gz"
    empty.write_bytes(b"")
    assert verify(empty, LIMIT).error == "empty file (0 bytes)"
    junk = tmp_path / "j.tar.gz"
    junk.write_bytes(b"\x00\xffnot a gzip file at all" * 10)
    r = verify(junk, LIMIT)
    assert not r.ok and "gzip stream broken" in r.error


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (member("/etc/cron.d/evil"), "has an absolute path (refused)"),
        (member("app/../../evil"), "climbs out with '..' (refused)"),
        (member("app/link", tarfile.SYMTYPE, "../../etc/passwd"), "links outside the archive"),
        (member("app/abs", tarfile.SYMTYPE, "/etc/shadow"), "links outside the archive"),
        (member("app/hard", tarfile.LNKTYPE, "../x"), "links outside the archive"),
        (member("app/dev", tarfile.CHRTYPE), "is a device or fifo (refused)"),
        (member("app/fifo", tarfile.FIFOTYPE), "is a device or fifo (refused)"),
    ],
)
def test_hostile_members_are_refused_and_never_written(tmp_path, info, expected):
    path = crafted(tmp_path / "h.tar.gz", [(member("app/ok.txt"), b"fine"), (info, b"evil")])
    assert expected in verify(path, LIMIT).error
    dest = tmp_path / "restore"
    dest.mkdir()
    r = extract(path, dest, LIMIT)
    assert not r.ok and expected in r.error
    written = {str(p.relative_to(dest)) for p in dest.rglob("*")}
    assert written <= {"app", "app/ok.txt"}
    assert not (tmp_path / "evil").exists()


def test_inner_links_are_fine(tmp_path):
    path = crafted(
        tmp_path / "l.tar.gz",
        [(member("app/a.txt"), b"x"), (member("app/b", tarfile.SYMTYPE, "a.txt"), b"")],
    )
    dest = tmp_path / "restore"
    dest.mkdir()
    assert extract(path, dest, LIMIT).ok
    assert (dest / "app" / "b").read_text() == "x"


def test_decompression_bomb_is_refused_before_writing(tmp_path):
    big = b"\0" * (3 << 20)
    path = crafted(
        tmp_path / "bomb.tar.gz", [(member("app/one"), b"1"), (member("app/zeros"), big)]
    )
    assert path.stat().st_size < 20_000
    dest = tmp_path / "restore"
    dest.mkdir()
    r = extract(path, dest, 1 << 20)
    assert not r.ok and "expands past the 1 MiB limit at app/zeros (decompression bomb?)" in r.error
    assert not (dest / "app" / "zeros").exists()


def test_template_json_checks(tmp_path):
    good = tmp_path / "t.json"
    good.write_text('{"templates": [{"id": 1}, {"id": 2}], "patterns": []}')
    assert verify_json(good, LIMIT).templates == 2
    bad = tmp_path / "b.json"
    bad.write_text('{"templates": [')
    assert verify_json(bad, LIMIT).error.startswith("invalid JSON")
    shape = tmp_path / "s.json"
    shape.write_text("[1, 2]")
    assert verify_json(shape, LIMIT).error == 'invalid JSON: no "templates" list at the top level'
    binary = tmp_path / "x.json"
    binary.write_bytes(b'{"templates": ["\xff"]}')
    assert verify_json(binary, LIMIT).error.startswith("not UTF-8")
    assert (
        verify_json(tmp_path / "missing.json", LIMIT).error
        == "cannot read: No such file or directory"
    )


# ---- the backup dir ----------------------------------------------------------------------


def touch(d: Path, name: str) -> Path:
    p = d / name
    p.write_bytes(b"x")
    return p


def test_scan_groups_sets_and_lists_strays(tmp_path):
    for kind, ext in (
        ("chroma_db", "tar.gz"),
        ("template_data", "json"),
        ("config", "tar.gz"),
        ("logs", "tar.gz"),
    ):
        touch(tmp_path, f"{kind}_20261125_020000.{ext}")
    touch(tmp_path, "chroma_db_20261126_020000.tar.gz")
    touch(tmp_path, "chroma_db_20261126_020000.json")
    touch(tmp_path, "logs_latest.tar.gz")
    touch(tmp_path, "config_20261345_020000.tar.gz")
    (tmp_path / "logs_20261124_020000.tar.gz").mkdir()
    inv = backups.scan(str(tmp_path), ZoneInfo("Asia/Seoul"))
    sets = inv.sets()
    assert [s.label for s in sets] == ["20261125_020000", "20261126_020000"]
    assert sets[0].complete and sets[1].missing == ["template_data", "config", "logs"]
    assert sets[0].stamp == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    assert sorted(inv.strays) == [
        "chroma_db_20261126_020000.json: a chroma_db backup should end in .tar.gz",
        "config_20261345_020000.tar.gz: 20261345_020000 is not a valid date and time",
        "logs_20261124_020000.tar.gz: not a regular file",
        "logs_latest.tar.gz: not named <kind>_YYYYmmdd_HHMMSS.<ext>",
    ]


def test_scan_of_missing_or_wrong_dir(tmp_path):
    with pytest.raises(ProbeError, match="does not exist"):
        backups.scan(str(tmp_path / "nope"), None)
    f = touch(tmp_path, "file")
    with pytest.raises(ProbeError, match="is not a directory"):
        backups.scan(str(f), None)


def test_dst_zone_stamps(tmp_path):
    """Stamps are wall-clock times of the server's zone, DST included."""
    naive = datetime(2026, 7, 1, 2, 0)
    assert backups.localize(naive, ZoneInfo("America/New_York")).utcoffset() == timedelta(hours=-4)
    assert backups.localize(
        datetime(2026, 1, 1, 2), ZoneInfo("America/New_York")
    ).utcoffset() == timedelta(hours=-5)


def test_anomalies_and_shrink(tmp_path):
    now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    p = touch(tmp_path, "chroma_db_20261126_020000.tar.gz")
    good = backups.BackupFile(
        p, "chroma_db", now - timedelta(hours=8), 100, now - timedelta(hours=7, minutes=50)
    )
    assert backups.anomalies(good, now) == []
    future = backups.BackupFile(
        p, "chroma_db", now + timedelta(hours=3), 100, now + timedelta(hours=3)
    )
    assert backups.anomalies(future, now) == [
        "stamp is 3.0 h in the future (clock or time zone wrong?)"
    ]
    a = backups.BackupSet(now - timedelta(days=1), {"chroma_db": good})
    small = backups.BackupFile(p, "chroma_db", now, 40, now)
    b = backups.BackupSet(now, {"chroma_db": small})
    assert backups.shrunk([a, b], since=now - timedelta(days=7)) == [("chroma_db", good, small)]
    assert backups.shrunk([a, b], since=now + timedelta(days=1)) == []


# ---- what a Chroma archive must hold ------------------------------------------------------


def linked_tree(tmp_path: Path, tree: Path, target: str) -> Path:
    """A root whose app/chroma_db is a symlink (to `target`, "abs" or "rel") to the store."""
    root = tmp_path / "linked"
    (root / "app").mkdir(parents=True)
    store = root / "volume" / "chroma_db"
    store.parent.mkdir()
    (tree / "app" / "chroma_db").rename(store)
    link = str(store) if target == "abs" else "../volume/chroma_db"
    (root / "app" / "chroma_db").symlink_to(link)
    return root


@pytest.mark.parametrize("target", ["abs", "rel"])
def test_guide_tar_over_a_symlinked_chroma_dir_holds_only_the_link(tree, tmp_path, target):
    """Real tar, the guide's command: the archive reads through but holds no store."""
    root = linked_tree(tmp_path, tree, target)
    path = tar_gz(root, tmp_path / "chroma_db_20261201_020000.tar.gz")
    link = str(root / "volume" / "chroma_db") if target == "abs" else "../volume/chroma_db"
    r = verify(path, LIMIT, chroma=True)
    assert not r.ok
    assert r.error == f"holds no chroma.sqlite3 (only a symlink app/chroma_db -> {link})"
    assert r.links == [("app/chroma_db", link)] and r.chroma is None
    dest = tmp_path / "restore"
    dest.mkdir()
    r = extract(path, dest, LIMIT, chroma=True)
    assert r.error == f"holds no chroma.sqlite3 (only a symlink app/chroma_db -> {link})"
    if target == "abs":
        assert list(dest.rglob("*")) == [], "a link leaving the root is never written"
    else:
        assert (dest / "app" / "chroma_db").readlink() == Path(link)


def test_an_archive_not_meant_for_chroma_may_hold_no_sqlite(tree, tmp_path):
    path = tar_gz(tree, tmp_path / "a.tar.gz")
    (tree / "app" / "chroma_db" / "chroma.sqlite3").unlink()
    path = tar_gz(tree, tmp_path / "b.tar.gz")
    assert verify(path, LIMIT).ok
    r = verify(path, LIMIT, chroma=True)
    assert r.error == "holds no chroma.sqlite3"


def test_archive_lists_its_segment_folders_beside_the_sqlite(tree, tmp_path):
    (tree / "app" / "other" / "seg2").mkdir(parents=True)
    (tree / "app" / "other" / "seg2" / "header.bin").write_bytes(b"x")
    subprocess.run(
        ["tar", "-czf", tmp_path / "a.tar.gz", "-C", tree, "app/chroma_db", "app/other"],
        check=True,
    )
    r = verify(tmp_path / "a.tar.gz", LIMIT, chroma=True)
    assert r.ok and r.segments == {"seg"}, "only folders beside chroma.sqlite3 count"


def test_a_bad_sqlite_fails_the_archive_but_the_walk_goes_on(tree, tmp_path):
    (tree / "app" / "chroma_db" / "chroma.sqlite3").write_bytes(b"\0junk" * 2000)
    r = verify(tar_gz(tree, tmp_path / "a.tar.gz"), LIMIT, chroma=True)
    assert r.error == (
        "app/chroma_db/chroma.sqlite3: the SQLite could not be read: file is not a database"
    )
    assert r.segments == {"seg"} and r.content_bytes > 5000 and not r.chroma_readable


def test_missing_segments_rule(tree, tmp_path):
    """Expected: the live folders the archive's own SQLite lists (no SQLite list: all live)."""
    import sqlite3

    from opscheck.probes.restore import missing_segments

    db = tree / "app" / "chroma_db" / "chroma.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE segments (id TEXT, scope TEXT);"
        "INSERT INTO segments VALUES ('seg', 'VECTOR'), ('gone', 'VECTOR'), ('m', 'METADATA');"
    )
    con.commit()
    con.close()
    r = verify(tar_gz(tree, tmp_path / "a.tar.gz"), LIMIT, chroma=True)
    assert r.chroma.vector_segments == {"seg", "gone"}
    assert missing_segments(r, frozenset({"seg", "new"})) == []  # "new" came after the backup
    assert missing_segments(r, frozenset({"seg", "gone"})) == ["gone"]
    assert missing_segments(r, None) == ["gone"]  # no live store: the archive's own list
    r.chroma.vector_segments = None
    assert missing_segments(r, frozenset({"seg", "new"})) == ["new"]
