"""The backup checks on every backup host: listed and streamed where the backups are,
proven on real sshd.

Each sshd is this machine, so an archive read through SSH must give exactly what the
local read gives; a stream that stalls, is cut or fails fails its archive naming the host.
"""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest

from opscheck.probes import backups, hostfiles, remote, restore
from opscheck.probes.archives import Remote, verify, verify_json
from tests.conftest import cmdlines
from tests.test_fleet import _by_host, _config, masters_to

LIMIT = 512 << 20
BACKUP_RUN = [
    "-m",
    "daily or weekly or monthly",
    "-k",
    "backup_fresh or backup_every_day or backup_integrity or backup_retention or restore_drill",
]
CHECKS = ("backup_fresh", "backup_every_day", "backup_integrity", "backup_retention")


def _week(golden: Path) -> list[backups.BackupFile]:
    """The golden sandbox's last 7 nights (28 files), as the integrity check takes them."""
    inv = backups.scan(str(golden / "backups" / "kakao-template"), None)
    return [f for s in inv.sets()[-7:] for f in s.files.values()]


def _same(result) -> dict:
    """A Verified without its timing."""
    return {k: v for k, v in asdict(result).items() if k != "seconds"}


# ---- the verifier, streamed ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_a_week_streamed_over_ssh_verifies_as_here(ssh_fleet, hosts, golden, tmp_path, scheme):
    """Every archive of 7 nights: the same members, bytes, SQLite facts, segments, records."""
    (sshd,) = ssh_fleet.start(1)
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec(scheme)))
    week = _week(golden)
    t0 = time.perf_counter()
    here = restore.verify_backups(week, LIMIT, str(tmp_path), workers=1)
    t1 = time.perf_counter()
    there = restore.verify_backups(week, LIMIT, str(tmp_path), workers=2, fs=fs)
    t2 = time.perf_counter()
    print(f"7 nights ({len(week)} files): local {t1 - t0:.2f} s, {scheme}:// {t2 - t1:.2f} s")
    assert len(there) == 28 and all(r.ok for r in there), [r.error for r in there if not r.ok]
    assert [_same(r) for r in there] == [_same(r) for r in here]
    assert list(tmp_path.iterdir()) == [], "scratch removed"


def test_a_drill_streamed_over_ssh_restores_as_here(ssh_fleet, hosts, golden, tmp_path):
    (sshd,) = ssh_fleet.start(1)
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    newest = backups.scan(str(golden / "backups" / "kakao-template"), None).sets()[-1]
    here = restore.drill(newest, str(tmp_path), LIMIT)
    there = restore.drill(newest, str(tmp_path), LIMIT, fs=fs)
    assert not there.errors and there.templates == here.templates == 449
    assert there.env_keys == here.env_keys and there.has_requirements
    assert there.segments == here.segments and there.chroma == here.chroma
    assert {k: _same(r) for k, r in there.results.items()} == {
        k: _same(r) for k, r in here.results.items()
    }
    assert list(tmp_path.iterdir()) == [], "scratch removed"


def _damaged(golden: Path, tmp_path: Path) -> dict[str, Path]:
    """Real damage to copies of last night's files: truncated gzip, a bad tail, bad JSON."""
    src = sorted((golden / "backups" / "kakao-template").glob("chroma_db_*.tar.gz"))[-1]
    data = src.read_bytes()
    out = {
        "truncated": data[: len(data) // 2],
        "bad-crc": data[:-8] + bytes(8),
        "not-gzip": b"plain text, not an archive\n" * 50,
    }
    paths = {}
    for name, body in out.items():
        p = tmp_path / f"{name}.tar.gz"
        p.write_bytes(body)
        paths[name] = p
    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        tar.add(src, arcname="app/chroma_db/filler.bin")  # a first member to read through
        tar.addfile(tarfile.TarInfo("../../outside.txt"), io.BytesIO(b""))
    paths["hostile"] = hostile
    (tmp_path / "bad.json").write_text('{"templates": [')
    paths["bad-json"] = tmp_path / "bad.json"
    return paths


def _here_and_there(name: str, p: Path, scratch: Path, fs):
    """One damaged file verified as read here and as streamed through `fs`."""
    at = Remote(fs, p.stat().st_size)
    if name == "bad-json":
        return verify_json(p, LIMIT), verify_json(p, LIMIT, at)
    return verify(p, LIMIT, scratch, True), verify(p, LIMIT, scratch, True, at)


def test_damaged_archives_fail_over_ssh_with_the_local_reason(ssh_fleet, hosts, golden, tmp_path):
    (sshd,) = ssh_fleet.start(1)
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for name, p in _damaged(golden, tmp_path).items():
        here, there = _here_and_there(name, p, scratch, fs)
        assert not here.ok and here.error, name
        assert (there.ok, there.error) == (here.ok, here.error), name


def test_a_file_gone_since_its_listing_names_host_and_file(ssh_fleet, hosts, tmp_path):
    (sshd,) = ssh_fleet.start(1)
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    gone = tmp_path / "chroma_db_20261130_020000.tar.gz"
    for result in (verify(gone, LIMIT, tmp_path, True, Remote(fs, 1000)),):
        assert not result.ok
        assert result.error == (
            f"stream from {sshd.label} failed: dd: failed to open '{gone}': "
            "No such file or directory"
        ), result.error
    json_gone = verify_json(tmp_path / "t.json", LIMIT, Remote(fs, 10))
    assert json_gone.error.startswith(f"stream from {sshd.label} failed: dd: failed to open")


class _Through:
    """A host's files whose content comes through `command` ({p}: the path, quoted)."""

    remote = True

    def __init__(self, host, command: str) -> None:
        self.host, self.command, self.where = host, command, f"{host.name}: "

    @contextmanager
    def open(self, path: str, start: int = 0, size_hint: int = 0, length: int | None = None):
        command = self.command.format(p=shlex.quote(path))
        with self.host.stream(f"read {path}", command, self.host.stream_budget(size_hint)) as f:
            yield f


STALLS = {
    "half, then silence": "head -c $(( $(stat -c %s {p}) / 2 )) {p}; sleep 30",
    "all of it, then silence": "cat {p}; sleep 30",
}


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
@pytest.mark.parametrize("how", list(STALLS))
def test_a_stalled_stream_fails_its_archive_within_the_timeout(
    ssh_fleet, hosts, golden, tmp_path, how, scheme
):
    """A host that stops sending (even after the last byte) fails the archive naming the
    host within timeout_s, never 'verified' on the part read."""
    (sshd,) = ssh_fleet.start(1)
    host = hosts(timeout_s=1.0).host(sshd.spec(scheme))
    fs = _Through(host, STALLS[how])
    f = next(f for f in _week(golden)[::-1] if f.kind == "chroma_db")
    js = next(f for f in _week(golden)[::-1] if f.kind == "template_data")
    stalled = (
        rf"^stream from {re.escape(sshd.label)} failed: "
        r"(no byte for 1 s \(stream stopped after|stream stopped at its deadline after) \d+ bytes"
    )
    for result in (
        verify(f.path, LIMIT, tmp_path, True, Remote(fs, f.size)),
        verify_json(js.path, LIMIT, Remote(fs, js.size)),
    ):
        assert not result.ok and re.search(stalled, result.error), result.error
        assert result.seconds < 1 + 2 * remote.MARGIN_S, result.seconds


def test_the_reader_s_own_work_is_not_the_host_s_silence(ssh_fleet, hosts, golden):
    """The verifier checks an archive's SQLite between reads (seconds on a big store): a
    pause of the reader longer than timeout_s, with bytes waiting, is no stall."""
    (sshd,) = ssh_fleet.start(1)
    host = hosts(timeout_s=1.0).host(sshd.spec())
    f = next(f for f in _week(golden)[::-1] if f.kind == "chroma_db")
    with host.stream("read", f"cat {shlex.quote(str(f.path))}", 60) as raw:
        head = raw.read(1000)
        time.sleep(1.6)
        rest = raw.read()
    assert head + rest == f.path.read_bytes()


def test_a_stream_cut_short_fails_its_archive(ssh_fleet, hosts, golden, tmp_path):
    """The command ends early (its shell killed mid-file): the archive fails with the exit."""
    (sshd,) = ssh_fleet.start(1)
    fs = _Through(hosts().host(sshd.spec()), "head -c 30000 {p}; kill -9 $$")
    f = next(f for f in _week(golden)[::-1] if f.kind == "chroma_db")
    result = verify(f.path, LIMIT, tmp_path, True, Remote(fs, f.size))
    assert not result.ok
    assert result.error.startswith(f"stream from {sshd.label} failed: "), result.error


def test_words_on_stderr_do_not_hide_the_archive_s_own_fault(ssh_fleet, hosts, golden, tmp_path):
    """A host that prints a notice on stderr (a banner, a warning) and sends the whole
    file: the archive's own reason stands, as here."""
    (sshd,) = ssh_fleet.start(1)
    fs = _Through(hosts().host(sshd.spec()), "echo 'notice: be nice' >&2; cat {p}")
    for name, p in _damaged(golden, tmp_path).items():
        here, there = _here_and_there(name, p, tmp_path, fs)
        assert there.error == here.error, name


# ---- whole runs: one row per backup host ---------------------------------------------------


def _roles(*names: str) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"\n[hosts.roles]\nbackup = [{quoted}]\n"


def _values(row: dict, label: str) -> list[tuple[str, object]]:
    prefix = f"{label}: "
    out = []
    for e in row["evidence"]:
        name = e["name"].removeprefix(prefix) if label != "local" else e["name"]
        value = e["value"]
        if name == "restore time":
            value = "timed"
        elif name.endswith(" age"):
            value = round(value, 1)
        out.append((name, value, e["limit"]))
    return out


@pytest.mark.slow
def test_backup_checks_over_ssh_give_the_local_outcomes_and_values(
    sandbox_factory, run_checks, ssh_fleet
):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    cfg = _config(sb, ssh_fleet, ["local://", sshd.spec()], extra=_roles("local", sshd.label))
    run = run_checks(cfg, *BACKUP_RUN)
    assert run.exit_code == 0, run.stdout[-3000:]
    assert not masters_to(sshd.port), "the run's ssh master outlived it"
    for check in (*CHECKS, "restore_drill"):
        rows = _by_host(run, check)
        assert set(rows) == {"local", sshd.label}, rows
        assert rows["local"]["outcome"] == rows[sshd.label]["outcome"] == "passed", check
        here, there = _values(rows["local"], "local"), _values(rows[sshd.label], sshd.label)
        assert there == here, check
        prefixed = [e["name"] for e in rows[sshd.label]["evidence"]]
        assert all(n.startswith(f"{sshd.label}: ") for n in prefixed if "live" not in n), check
    took = {h: r["duration_s"] for h, r in _by_host(run, "backup_integrity").items()}
    print(f"backup_integrity of 7 nights: {took}")


@pytest.mark.slow
def test_listing_faults_fail_the_ssh_row_naming_host_file_value_and_limit(
    sandbox_factory, run_checks, ssh_fleet
):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down", "old-backups-kept", "stale-backup", "missing-day")
    run = run_checks(_config(sb, ssh_fleet, [sshd.spec()]), *BACKUP_RUN)
    at = re.escape(f"{sshd.label}: ")
    fresh = run.one("backup_fresh")
    assert fresh["outcome"] == "failed"
    for kind in backups.KINDS:
        age = rf"{at}newest {kind} backup age is [4-7]\d\.\d h, limit 24 h"
        assert re.search(age, fresh["message"]), fresh["message"]
    every = run.one("backup_every_day")
    assert every["outcome"] == "failed"
    gap = rf"{at}no complete set between .+ \(set \d{{8}}_020000 lacks config\)"
    assert re.search(gap, every["message"]), every["message"]
    assert every["evidence"][0]["name"] == f"{sshd.label}: days with a complete set"
    kept = run.one("backup_retention")
    assert kept["outcome"] == "failed"
    assert re.fullmatch(
        rf"{at}3 sets older than 31 days remain, the oldest \(\d{{8}}_020000\) is "
        r"4\d\.\d days old, limit 31 days",
        kept["message"],
    ), kept["message"]


@pytest.mark.slow
def test_a_corrupt_archive_fails_integrity_and_drill_of_the_ssh_row(
    sandbox_factory, run_checks, ssh_fleet
):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down", "corrupt-backup")
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *BACKUP_RUN)
    bad = sorted((sb.root / "backups" / "kakao-template").glob("chroma_db_*.tar.gz"))[-1]
    for check in ("backup_integrity", "restore_drill"):
        rows = _by_host(run, check)
        there, here = rows[sshd.label], rows["local"]
        assert there["outcome"] == here["outcome"] == "failed", check
        named = bad if check == "backup_integrity" else bad.name
        assert there["message"].startswith(f"{sshd.label}: {named}: gzip stream broken"), there
        breaches = here["message"].split("; ")
        assert there["message"] == "; ".join(f"{sshd.label}: {b}" for b in breaches), check
    rows = _by_host(run, "backup_integrity")
    read = next(e for e in rows[sshd.label]["evidence"] if e["name"].endswith("files read through"))
    assert (read["value"], read["limit"]) == (27, 28)


@pytest.mark.slow
def test_an_unreachable_backup_host_fails_its_rows_and_spares_the_local_one(
    sandbox_factory, run_checks, ssh_fleet
):
    closed = "ssh://root@127.0.0.1:1"
    sb = sandbox_factory("down")
    cfg = _config(sb, ssh_fleet, ["local://", closed], extra=_roles("local", closed), timeout_s=2)
    run = run_checks(cfg, *BACKUP_RUN)
    assert run.exit_code == 1
    for check in (*CHECKS, "restore_drill"):
        rows = _by_host(run, check)
        assert rows["local"]["outcome"] == "passed", (check, rows["local"])
        gone = rows["root@127.0.0.1:1"]
        assert gone["outcome"] == "failed", check
        assert gone["message"].startswith("host root@127.0.0.1:1: "), gone
        assert "Connection refused" in gone["message"], gone


def test_a_drill_of_a_remote_backup_host_counts_for_the_quarter(run_checks, tmp_path, history_url):
    """Its restore time is named after the host ("bk@10.0.0.9: restore time"): the DR check
    still finds it (before: 'no time stored', and no good drill this quarter)."""
    from datetime import UTC, datetime, timedelta

    from tests.historydb import check, config, write

    now = datetime.now(UTC)
    quarter = now.replace(month=3 * ((now.month - 1) // 3) + 1, day=1, hour=0, minute=0, second=0)
    at = "bk@10.0.0.9"
    ev = [(f"{at}: restored set", "x", "", None), (f"{at}: restore time", 600, "s", 14400)]
    write(history_url, quarter + timedelta(minutes=5), [check("restore_drill", at, "passed", ev)])
    cfg = config(tmp_path, history_url, '[service]\ntimezone = "UTC"')
    run = run_checks(cfg, "checks/quarterly/test_dr.py", "-k", "dr_drill_performed")
    entry = run.one("dr_drill_performed")
    assert entry["outcome"] == "passed", entry
    took = next(e for e in entry["evidence"] if e["name"] == "newest good drill: restore time")
    assert took["value"] == 600


@pytest.mark.slow
def test_sigterm_mid_stream_stops_it_and_leaves_nothing(sandbox_factory, ssh_fleet, tmp_path):
    """SIGTERM while a big archive streams from the backup host: exit 2, the row says so,
    no ssh (client or master) and no scratch left behind."""
    import signal

    from tests.test_interrupts import _big_logs_archive, _start_checks, by_id, triple

    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    newest = sorted((sb.root / "backups" / "kakao-template").glob("logs_*.tar.gz"))[-1]
    _big_logs_archive(newest, 1 << 30)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    paths = f'[paths]\nscratch_dir = "{scratch}"\n'
    cfg = sb.with_config(ssh_fleet.hosts_toml([sshd.spec()]) + paths)
    reports = tmp_path / "reports"
    run = _start_checks(cfg, reports, "-m", "weekly", "-k", "backup_integrity")

    def streaming() -> bool:
        return any(newest.name in line for line in cmdlines(run.descendants()))

    run.wait_for("the big archive streaming", streaming, timeout=120)
    code, out, err = run.signal(signal.SIGTERM)
    assert code == 2, (out, err)
    doc, _, _ = triple(reports)
    row = by_id(doc)["backup_integrity"]
    assert row["outcome"] == "error" and row["message"] == "interrupted (SIGTERM)", row
    assert run.survivors() == []
    assert not masters_to(sshd.port), "the run's ssh master outlived it"
    assert list(scratch.iterdir()) == []
