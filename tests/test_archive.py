"""The audit archive (issue 9): real runs append to the manifest; `archive verify` catches
an altered byte, a deleted report, reordered entries, a truncated manifest and an
unlisted report; concurrent appends of different labels; a full disk (real tmpfs)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from opscheck import archive, archivesig
from tests.conftest import REPO, run_pytest
from tests.test_plugin import GOOD, make_suite


def fake_run(reports: Path, label: str, stamp: str, body: str = "x", key: str = "") -> Path:
    """A finished run's triple on disk, appended to the manifest."""
    folder = reports / label
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / stamp
    for suffix in (".html", ".xml"):
        stem.with_suffix(suffix).write_text(f"<{suffix}>{body}</{suffix}>")
    stem.with_suffix(".json").write_text(json.dumps({"status": "finished", "b": body}))
    archive.append(reports, stem, label, stamp, key)
    return stem


def verify_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python3 -m opscheck archive verify ARGS...`"""
    return subprocess.run(
        [sys.executable, "-m", "opscheck", "archive", "verify", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def archived(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    for day in range(1, 6):
        fake_run(reports, "daily", f"202612{day:02d}T020000Z", body=str(day))
    fake_run(reports, "weekly", "20261206T030000Z")
    return reports


def test_intact_archive_verifies(archived):
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "intact (6 entries intact, 18 files checked)" in proc.stdout


def test_an_altered_byte_is_named(archived):
    page = archived / "daily/20261203T020000Z.html"
    data = bytearray(page.read_bytes())
    data[3] ^= 1
    page.write_bytes(bytes(data))
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    first = proc.stdout.splitlines()[0]
    assert first == (
        "daily/20261203T020000Z.html: altered (its SHA-256 differs from manifest.jsonl line 3)"
    )
    assert "BROKEN, first at: daily/20261203T020000Z.html" in proc.stdout


def test_a_deleted_report_is_named(archived):
    (archived / "daily/20261202T020000Z.json").unlink()
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert "daily/20261202T020000Z.json: missing (listed in manifest.jsonl line 2)" in proc.stdout


def test_reordered_entries_break_the_chain(archived):
    manifest = archived / archive.MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    manifest.write_text("".join(lines))
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith(
        "manifest.jsonl line 2 (daily/20261203T020000Z.html): does not follow the entry before it"
    )


def test_an_edited_entry_is_caught(archived):
    """Rewriting a file's recorded hash to match a forged report breaks the entry's hash."""
    page = archived / "daily/20261204T020000Z.html"
    page.write_text("forged")
    manifest = archived / archive.MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    entry = json.loads(lines[3])
    entry["files"][0]["sha256"] = archive.file_sha256(page)
    lines[3] = json.dumps(entry) + "\n"
    manifest.write_text("".join(lines))
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "manifest.jsonl line 4 (daily/20261204T020000Z.html): the entry was altered "
        "(its hash does not match)"
    )


def test_a_truncated_manifest_is_caught(archived):
    manifest = archived / archive.MANIFEST
    data = manifest.read_bytes()
    manifest.write_bytes(data[: len(data) - 40])
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "manifest.jsonl line 6: not a manifest entry (cut short: the manifest was truncated)"
    )


def test_whole_entries_cut_from_the_end_leave_their_reports_unlisted(archived):
    manifest = archived / archive.MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]))
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert "weekly/20261206T030000Z.html: not listed in manifest.jsonl" in proc.stdout


def test_an_unlisted_report_is_named(archived):
    (archived / "daily/20261207T020000Z.html").write_text("slipped in")
    proc = verify_cli("--reports-dir", archived)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "daily/20261207T020000Z.html: not listed in manifest.jsonl "
        "(added, or its run's append failed)"
    )


def test_attachments_belong_to_their_run_only(tmp_path):
    reports = tmp_path / "reports"
    folder = reports / "weekly"
    folder.mkdir(parents=True)
    (folder / "20261206T030000Z-locust.html").write_text("locust")
    (folder / "20261206T030000Z-2.json").write_text("{}")
    stem = fake_run(reports, "weekly", "20261206T030000Z")
    names = [p.name for p in archive.run_files(stem)]
    assert names == [
        "20261206T030000Z-locust.html",
        "20261206T030000Z.html",
        "20261206T030000Z.json",
        "20261206T030000Z.xml",
    ]


def _append_many(reports: str, label: str) -> None:
    for n in range(10):
        fake_run(Path(reports), label, f"20261201T0{n}0000Z")


def test_concurrent_appends_of_different_labels_all_land(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(reports), f"l{i}")) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    verdict = archive.verify(reports)
    assert verdict.intact, verdict.problems
    assert len(verdict.entries) == 40


def test_a_real_run_is_archived_and_verifies(tmp_path):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    for _ in range(2):
        run_pytest(["-m", "daily"], cwd=suite)
    reports = suite / "reports"
    verdict = archive.verify(reports)
    assert verdict.intact, verdict.problems
    assert [e["label"] for e in verdict.entries] == ["daily", "daily"]
    assert verdict.files == 6
    assert verdict.entries[1]["prev"] == verdict.entries[0]["hash"]


def test_a_run_in_progress_is_not_a_break(tmp_path):
    """The label's run lock held and its JSON still "running": not archived yet, not a break."""
    from opscheck import runlock

    reports = tmp_path / "reports"
    fake_run(reports, "daily", "20261201T020000Z")
    (reports / "daily/20261202T020000Z.json").write_text('{"status": "running"}')
    lock = runlock.acquire(reports / "daily/.lock", "daily")
    try:
        verdict = archive.verify(reports)
        assert verdict.intact and verdict.in_progress == ["daily/20261202T020000Z.json"]
    finally:
        lock.release()
    assert not archive.verify(reports).intact, "no run holds the lock: the JSON is unlisted"


def test_full_disk_on_append_is_said_and_leaves_the_manifest_intact(tmp_path, tmpfs):
    reports = tmpfs("size=64k")
    fake_run(reports, "daily", "20261201T020000Z")
    before = (reports / archive.MANIFEST).read_bytes()
    stem = reports / "daily/20261202T020000Z"
    for suffix in (".html", ".xml", ".json"):
        stem.with_suffix(suffix).write_text("{}")
    with open(reports / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(bytes(1 << 20))
    problem = archive.record(reports, stem, "daily", "")
    assert problem == (
        f"archive {reports}/manifest.jsonl: run 20261202T020000Z not recorded: "
        "No space left on device"
    )
    assert (reports / archive.MANIFEST).read_bytes() == before
    assert not list(reports.glob(".tmp-*"))


def test_full_disk_run_says_the_archive_was_not_written(tmp_path, tmpfs):
    """The run ends normally; stderr and the JSON's `unwritten` name the failed append."""
    from tests.test_own_files import fill_run

    reports = tmpfs("size=256k")
    proc = fill_run(tmp_path, reports, leave=0)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"opscheck: archive {reports}/manifest.jsonl: run " in proc.stderr
    assert "not recorded: No space left on device" in proc.stderr


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[reports]\ndirr = 1\n")
    proc = verify_cli("--ops-config", bad)
    assert proc.returncode == 4
    assert proc.stderr.strip() == f"ERROR: {bad}: [reports] dirr: unknown key"


# ---- the signed head (Ed25519 keys made by the real openssl) ------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    private, public = tmp_path / "archive-key.pem", tmp_path / "archive-pub.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True
    )
    subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True
    )
    return str(private), str(public)


def signed_archive(reports: Path, key: str, days: int = 4) -> None:
    for day in range(1, days + 1):
        fake_run(reports, "daily", f"202612{day:02d}T020000Z", body=str(day), key=key)


def rewrite_chain(reports: Path) -> None:
    """What a forger with write access does: alter a report, then recompute every hash."""
    page = reports / "daily/20261202T020000Z.html"
    page.write_text("forged")
    manifest = reports / archive.MANIFEST
    prev, out = archive.GENESIS, []
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        for f in entry["files"]:
            f["sha256"] = archive.file_sha256(reports / f["path"])
        entry["prev"] = prev
        entry["hash"] = prev = archive.entry_hash(entry)
        out.append(archive.canonical(entry).decode() + "\n")
    manifest.write_text("".join(out))


def test_a_signed_archive_verifies_with_the_pinned_key(tmp_path, keys):
    reports = tmp_path / "reports"
    signed_archive(reports, keys[0])
    verdict = archive.verify(reports, keys[1])
    assert verdict.intact, verdict.problems
    assert len(verdict.entries) == 4


def test_a_rewritten_chain_is_caught_only_by_the_signature(tmp_path, keys):
    reports = tmp_path / "reports"
    signed_archive(reports, keys[0])
    rewrite_chain(reports)
    assert archive.verify(reports).intact, "link by link the forged chain holds"
    (problem,) = archive.verify(reports, keys[1]).problems
    assert problem.startswith("manifest.sig: signs the head ")
    assert problem.endswith("(seq 3): the chain was rewritten, or an append was not signed"), (
        problem
    )


def test_a_missing_or_foreign_signature_is_a_break(tmp_path, keys):
    reports = tmp_path / "reports"
    signed_archive(reports, keys[0])
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(other / "k.pem")], check=True
    )
    fake_run(reports, "daily", "20261209T020000Z", key=str(other / "k.pem"))
    assert archive.verify(reports, keys[1]).problems == [
        "manifest.sig: the signature does not verify with reports.archive_public_key"
    ]
    (reports / archivesig.SIG).unlink()
    assert archive.verify(reports, keys[1]).problems == [
        "manifest.sig: missing (reports.archive_public_key is set: the head must be signed)"
    ]


def test_a_real_run_signs_and_the_cli_checks_the_signature(tmp_path, keys):
    suite = make_suite(tmp_path, {"checks/daily/test_x.py": GOOD})
    config = tmp_path / "opscheck.toml"
    config.write_text(f'[reports]\narchive_key = "{keys[0]}"\narchive_public_key = "{keys[1]}"\n')
    run_pytest(["-m", "daily", "--ops-config", str(config)], cwd=suite)
    reports = suite / "reports"
    proc = verify_cli("--ops-config", config, "--reports-dir", reports)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = json.loads((reports / archive.MANIFEST).read_text())
    entry["recorded"] = "2020-01-01T00:00:00Z"
    entry["hash"] = archive.entry_hash(entry)
    (reports / archive.MANIFEST).write_text(archive.canonical(entry).decode() + "\n")
    proc = verify_cli("--ops-config", config, "--reports-dir", reports)
    assert proc.returncode == 1
    assert proc.stdout.startswith("manifest.sig: signs the head "), proc.stdout


def test_an_unusable_signing_key_is_said_and_the_entry_kept(tmp_path):
    reports = tmp_path / "reports"
    stem = reports / "daily" / "20261201T020000Z"
    stem.parent.mkdir(parents=True)
    stem.with_suffix(".json").write_text("{}")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    problem = archive.record(reports, stem, "daily", "", str(bad))
    assert problem.startswith(
        f"archive {reports}/manifest.jsonl: run 20261201T020000Z recorded, but not signed: "
        f"reports.archive_key {bad}: not a PEM key"
    )
    assert archive.verify(reports).intact


def adopt_cli(reports: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscheck", "archive", "adopt", "--reports-dir", str(reports)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reports_from_before_the_archive_are_adopted_once(tmp_path):
    """An upgrade: the reports dir holds runs no manifest lists; `adopt` lists them."""
    reports = tmp_path / "reports"
    for stamp in ("20261101T020000Z", "20261101T020000Z-2"):
        stem = reports / "daily" / stamp
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".html", ".xml", ".json"):
            stem.with_suffix(suffix).write_text(stamp)
    (reports / "daily" / "20261101T020000Z-locust.html").write_text("locust")
    fake_run(reports, "daily", "20261201T020000Z")
    assert verify_cli("--reports-dir", reports).returncode == 1
    proc = adopt_cli(reports)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        "adopted daily/20261101T020000Z",
        "adopted daily/20261101T020000Z-2",
    ]
    verdict = archive.verify(reports)
    assert verdict.intact, verdict.problems
    adopted = [e for e in verdict.entries if e.get("adopted")]
    assert [len(e["files"]) for e in adopted] == [4, 3]
    assert "0 runs adopted" in adopt_cli(reports).stdout


def test_adopt_refuses_while_the_archive_is_broken(archived):
    (archived / "daily/20261207T020000Z.html").write_text("new")
    (archived / "daily/20261202T020000Z.xml").write_text("altered")
    proc = adopt_cli(archived)
    assert proc.returncode == 1
    assert "the archive is broken; adopt nothing until it is explained: " in proc.stderr
    assert "daily/20261202T020000Z.xml: altered" in proc.stderr
    assert not any(e.get("adopted") for e in archive.verify(archived).entries)
