"""Pending updates, temp files and the logrotate config on every host, against real sshd.

Each sshd on a loopback port is this machine, so a check run through `ssh://` must give
what `local://` gives: the same old temp files, the same pending updates (the sandbox's
private apt world, `[packages] apt_config`), the same logrotate comparisons and rotated
logs. Red per host, an unreachable host beside a healthy local row, first-seen dates kept
per host, and output that does not parse failing (never passing) are proven too.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opscheck.probes import ProbeError, hosttext, logrotate, packages, remote, tempfiles
from opscheck.probes.hostfiles import RemoteFiles
from opscheck.probes.logs.files import siblings
from opscheck.sandbox import aptrepo

TEMP = ("-m", "weekly", "-k", "temp_files_cleanup")
ROTATION = ("-m", "weekly", "-k", "log_rotation_policy")
UPDATES = ("-m", "weekly or monthly", "-k", "security_updates_pending or system_updates_applied")
ALL_FOUR = ("-m", "weekly or monthly", "-k", "temp_files or log_rotation or updates")

needs_apt = pytest.mark.skipif(
    bool(aptrepo.tools_missing()),
    reason=f"needs {', '.join(aptrepo.tools_missing())} (apt-get install apt-utils)",
)


def _config(sb, ssh_fleet, targets: list[str], merge: str = "", roles: str = "", **kw) -> Path:
    """The sandbox's config with these targets; `merge` TOML merged by section, `roles` (a
    `[hosts.roles]` table) appended."""
    path = sb.with_config(ssh_fleet.hosts_toml(targets, **kw) + merge)
    if roles:
        path.write_text(path.read_text() + roles)
    return path


def _by_host(run, check_id: str) -> dict[str, dict]:
    return {e["nodeid"].rsplit("[", 1)[1].rstrip("]"): e for e in run.checks(check_id)}


def _evidence(entry: dict, label: str = "") -> list[tuple[str, object]]:
    """(name without the host prefix, value) of a row's evidence, in order; every name of a
    remote row carries the prefix."""
    out = []
    for e in entry["evidence"]:
        name = e["name"]
        if label:
            assert name.startswith(f"{label}: "), name
            name = name.removeprefix(f"{label}: ")
        out.append((name, e["value"]))
    return out


def _prefixed(message: str, label: str) -> str:
    """A local row's failure message as the remote row words it: every breach prefixed."""
    return "; ".join(f"{label}: {part}" for part in message.split("; "))


def _same(rows: dict, label: str) -> None:
    """The local and the remote row of one machine: same outcome, same evidence (a float
    within 0.01: ages and sizes read seconds apart), the same breaches."""
    local, there = rows["local"], rows[label]
    assert local["outcome"] == there["outcome"], (local, there)
    mine, theirs = _evidence(local), _evidence(there, label)
    assert [n for n, _ in mine] == [n for n, _ in theirs]
    for (name, a), (_, b) in zip(mine, theirs, strict=True):
        if isinstance(a, float) or isinstance(b, float):
            assert abs(a - b) < 0.01, (name, a, b)
        else:
            assert a == b, (name, a, b)
    if local["outcome"] == "failed":
        assert there["message"] == _prefixed(local["message"], label)


def _older_atimes(files: list[Path]) -> dict[Path, int]:
    """atime a day before mtime (relatime would move it on any read); the atimes now."""
    for p in files:
        st = p.stat()
        os.utime(p, ns=(st.st_mtime_ns - 86400 * 10**9, st.st_mtime_ns))
    return {p: p.stat().st_atime_ns for p in files}


# ---- temp_files_cleanup -------------------------------------------------------------------


@pytest.mark.slow
def test_temp_files_the_same_through_ssh_other_owners_not_entered(
    sandbox_factory, run_checks, ssh_fleet
):
    """Green on both rows with the same counts; another owner's private dir (with an old
    file in it) is counted as not entered, by the uid the host itself gives `app`."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    private = sb.root / "tmp" / "systemd-private-x"
    private.mkdir(mode=0o700)
    (private / "old").write_text("")
    for p in (private / "old", private):
        os.utime(p, (1e9, 1e9))
        os.chown(p, 65534, 65534)
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *TEMP)
    rows = _by_host(run, "temp_files_cleanup")
    assert set(rows) == {"local", sshd.label}
    assert rows[sshd.label]["outcome"] == "passed", rows[sshd.label]
    _same(rows, sshd.label)
    ev = dict(_evidence(rows[sshd.label], sshd.label))
    assert ev["dirs of other owners not entered"] == 1
    assert ev["the service's temp files"] == 3


@pytest.mark.slow
def test_old_temp_files_fail_the_ssh_row_naming_file_and_age(
    sandbox_factory, run_checks, ssh_fleet
):
    """Before: one row, this machine only. Now the ssh row fails on its own, naming the
    files and their ages; no file's atime moved (find only lstats)."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down", "old-temp-files")
    before = _older_atimes([p for p in (sb.root / "tmp").rglob("*") if p.is_file()])
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *TEMP)
    assert {p: p.stat().st_atime_ns for p in before} == before
    rows = _by_host(run, "temp_files_cleanup")
    assert rows[sshd.label]["outcome"] == "failed"
    _same(rows, sshd.label)
    assert re.fullmatch(
        rf"{re.escape(sshd.label)}: oldest temp file age is 12(?:\.0)? days, limit 7 days; "
        rf"{re.escape(sshd.label)}: \S+/upload-0008\.json is 12\.0 days old; "
        rf"{re.escape(sshd.label)}: \S+/upload-0007\.json is 9\.0 days old",
        rows[sshd.label]["message"],
    ), rows[sshd.label]["message"]


@pytest.mark.slow
def test_temp_cap_and_a_missing_dir_through_ssh(sandbox_factory, run_checks, ssh_fleet):
    """The cap stops both walks (find's order is not scandir's: which two files were seen
    may differ) and fails; a temp dir that is not there fails naming it."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    capped = "[thresholds]\ntemp_scan_max_files = 2\n"
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()], capped), *TEMP)
    rows = _by_host(run, "temp_files_cleanup")
    for label, at in (("local", ""), (sshd.label, f"{sshd.label}: ")):
        assert rows[label]["outcome"] == "failed"
        assert rows[label]["message"].endswith(
            f"{at}stopped after 2 entries (temp_scan_max_files): the rest was not seen"
        )
        assert dict(_evidence(rows[label], label if at else ""))["entries examined"] == 2
    missing = f'[paths]\ntemp_dirs = ["{sb.root}/no-such-tmp"]\n'
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()], missing), *TEMP)
    rows = _by_host(run, "temp_files_cleanup")
    _same(rows, sshd.label)
    assert rows[sshd.label]["message"] == (
        f"{sshd.label}: {sb.root}/no-such-tmp: not examined (No such file or directory)"
    )


def _scan_view(scan: tempfiles.TempScan) -> tuple:
    old = sorted((f.path, round(f.age_days, 3)) for f in scan.old)
    counts = (scan.files_seen, scan.files_counted, scan.other_owner_dirs, scan.capped)
    return counts, sorted(scan.unreadable), old


def test_scan_through_ssh_equals_the_local_walk(ssh_fleet, hosts, tmp_path):
    """Odd names (spaces, a newline, a leading dash), a link to an old dir (not followed),
    patterns, every owner, an unknown owner: the same TempScan both ways."""
    (sshd,) = ssh_fleet.start(1)
    host = hosts().host(sshd.spec())
    top, outside = tmp_path / "tmp", tmp_path / "outside"
    (top / "kakao-template" / "deep er").mkdir(parents=True)
    outside.mkdir()
    (outside / "old").write_text("")
    (top / "link").symlink_to(outside)
    names = ["kakao-template/report-1.json", "kakao-template/deep er/a b", "-dash", "new\nline"]
    for n, name in enumerate(names):
        (top / name).write_text("")
        os.utime(top / name, (1e9, time.time() - 86400 * (2.5 + 4 * n)))  # none at 7
    os.utime(outside / "old", (1e9, 1e9))
    me = getpass.getuser()
    for owner, patterns in ((me, None), ("*", None), (me, ["kakao-template/*"]), ("nosuch", None)):
        here = tempfiles.scan([str(top)], 7, owner, patterns)
        there = tempfiles.scan_host(host, [str(top)], 7, owner, patterns)
        assert _scan_view(there) == _scan_view(here), (owner, patterns)
    assert len(here.unreadable) == 1 and "unknown user 'nosuch'" in here.unreadable[0][1]


class _ShellAs(remote.RemoteHost):
    """A host whose account is `user` on this machine: its commands run through `runuser`
    (no sshd here lets a non-root user log in; the find and its stderr are real)."""

    def __init__(self, user: str) -> None:
        super().__init__(f"ssh://{user}@this-machine", remote.Options())
        self.user = user

    def run_rc(self, what, command, budget_s=None):
        proc = subprocess.run(
            ["runuser", "-u", self.user, "--", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def nobodys_dir():
    """A dir under /tmp that `nobody` owns and can reach (pytest's tmp_path is root's 700)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    base = Path(tempfile.mkdtemp(prefix="opscheck-misc-", dir="/tmp"))
    os.chown(base, 65534, 65534)
    yield base
    for p in base.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)
    shutil.rmtree(base)


def test_a_dir_the_account_may_not_read_is_named_as_the_local_walk_names_it(nobodys_dir):
    """find's "Permission denied" on the host is the same unreadable entry as the local
    walk's (os.scandir's EACCES): the dir and its reason; the other files still count.
    (This machine's python lives under root's 700 home: the local walk cannot run as
    nobody here, so its words are taken from the errno.)"""
    top = nobodys_dir / "tmp"
    (top / "locked").mkdir(parents=True)
    (top / "locked" / "inside").write_text("")
    (top / "mine").write_text("")
    for p in (top, top / "locked", top / "mine"):
        os.chown(p, 65534, 65534)
    (top / "locked").chmod(0o000)
    there = tempfiles.scan_host(_ShellAs("nobody"), [str(top)], 7, "nobody")
    # what os.scandir raises there, as the local walk words it (exc.strerror)
    assert there.unreadable == [(str(top / "locked"), os.strerror(errno.EACCES))]
    assert [there.files_seen, there.files_counted, there.capped] == [1, 1, False]


# ---- security_updates_pending, system_updates_applied -------------------------------------


@needs_apt
@pytest.mark.slow
def test_updates_the_same_through_ssh_and_red_per_host(sandbox_factory, run_checks, ssh_fleet):
    """The sandbox's private apt world (apt_config) read as local:// and as ssh://: nothing
    pending on both rows; then a pending security update fails both rows, the ssh one
    naming its host; first-seen dates land in the ssh host's own state dir."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *UPDATES)
    for check in ("security_updates_pending", "system_updates_applied"):
        rows = _by_host(run, check)
        assert rows[sshd.label]["outcome"] == "passed", rows[sshd.label]
        _same(rows, sshd.label)
    sb = sandbox_factory("down", "stale-security-update")
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *UPDATES)
    weekly = _by_host(run, "security_updates_pending")
    _same(weekly, sshd.label)
    assert weekly[sshd.label]["message"] == (
        f"{sshd.label}: 1 security updates pending, limit 0: "
        "opscheck-fake-libssl 1.0-2 (Debian-Security:12/stable-security)"
    )
    monthly = _by_host(run, "system_updates_applied")
    _same(monthly, sshd.label)
    assert monthly[sshd.label]["message"] == (
        f"{sshd.label}: opscheck-fake-libssl 1.0-2 pending is 45 days, limit 30 days"
    )
    state = run.reports_dir / ".state"
    mine = state / "hosts" / sshd.label.replace(":", "_") / packages.HISTORY
    assert list(json.loads(mine.read_text())) == ["opscheck-fake-libssl 1.0-2"]
    assert list(json.loads((state / packages.HISTORY).read_text())) == [
        "opscheck-fake-libssl 1.0-2"
    ]


@needs_apt
@pytest.mark.slow
def test_first_seen_dates_are_per_host(sandbox_factory, run_checks, ssh_fleet, tmp_path):
    """The ssh host's state says it saw the update pending 40 days ago, this machine's says
    nothing: only the ssh row fails, though the list (fresh) is the same one."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down", "security-update-pending")
    state = tmp_path / "reports-0" / ".state"  # the run's --reports-dir (tests/conftest.py)
    mine = state / "hosts" / sshd.label.replace(":", "_")
    mine.mkdir(parents=True)
    seen = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    (mine / packages.HISTORY).write_text(json.dumps({"opscheck-fake-libssl 1.0-2": seen}))
    cfg = _config(sb, ssh_fleet, ["local://", sshd.spec()])
    run = run_checks(cfg, "-m", "monthly", "-k", "system_updates_applied")
    rows = _by_host(run, "system_updates_applied")
    assert rows["local"]["outcome"] == "passed", rows["local"]
    assert rows[sshd.label]["outcome"] == "failed"
    assert rows[sshd.label]["message"] == (
        f"{sshd.label}: opscheck-fake-libssl 1.0-2 pending is 40 days, limit 30 days"
    )


# ---- log_rotation_policy ------------------------------------------------------------------


@pytest.mark.slow
def test_log_rotation_the_same_through_ssh_on_app_hosts_only(
    sandbox_factory, run_checks, ssh_fleet
):
    """Healthy: the same policy comparisons and rotated-log counts on both app rows; the
    third host is not an app host and gets no row (temp files: every host)."""
    a, b = ssh_fleet.start(2)
    sb = sandbox_factory("down")
    roles = f'\n[hosts.roles]\napp = ["local", "{a.label}"]\n'
    cfg = _config(sb, ssh_fleet, ["local://", a.spec(), b.spec()], roles=roles)
    run = run_checks(cfg, "-m", "weekly", "-k", "log_rotation_policy or temp_files_cleanup")
    rows = _by_host(run, "log_rotation_policy")
    assert set(rows) == {"local", a.label}
    assert rows[a.label]["outcome"] == "passed", rows[a.label]
    _same(rows, a.label)
    ev = dict(_evidence(rows[a.label], a.label))
    assert ev["logrotate rotate"] == "rotate 30" and ev["rotated logs"] == 7
    assert set(_by_host(run, "temp_files_cleanup")) == {"local", a.label, b.label}


@pytest.mark.slow
def test_a_weak_logrotate_file_fails_the_ssh_row(sandbox_factory, run_checks, ssh_fleet):
    """A config lacking `compress` (and keeping 7) and a plain rotated log: the ssh row
    fails with the same breaches as the local one, each naming the host; the config's
    atime did not move (read with O_NOATIME there)."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down", "weak-logrotate", "uncompressed-rotated")
    conf = sb.root / "etc" / "kakao-template.logrotate"
    before = _older_atimes([conf])
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *ROTATION)
    rows = _by_host(run, "log_rotation_policy")
    _same(rows, sshd.label)
    message = rows[sshd.label]["message"]
    assert f"{sshd.label}: {conf}:2: lacks 'compress'" in message
    assert f"{sshd.label}: {conf}:2: has 'rotate 7', expected 'rotate 30'" in message
    assert f"{sshd.label}: app.log.3 is not compressed" in message
    assert {p: p.stat().st_atime_ns for p in before} == before


def test_includes_and_rotated_logs_read_through_ssh_equal_the_local_reading(
    ssh_fleet, hosts, tmp_path
):
    """A config that includes a dir (a hidden file read, a dpkg leftover not, a FIFO not
    opened), in two commands; dateext, xz and numbered copies listed as siblings lists
    them; a parse error and a missing include word the same."""
    (sshd,) = ssh_fleet.start(1)
    host = hosts().host(sshd.spec())
    inc, logs = tmp_path / "logrotate.d", tmp_path / "logs"
    inc.mkdir()
    logs.mkdir()
    main = tmp_path / "logrotate.conf"
    main.write_text(f"compress\nweekly\ninclude {inc}\n")
    (inc / "app").write_text(f"{logs}/app.log {{\n  daily\n  rotate 30\n  olddir old\n}}\n")
    (inc / ".hidden").write_text("/x/y.log {\n  rotate 1\n}\n")
    (inc / "app.dpkg-old").write_text("junk {")
    os.mkfifo(inc / "pipe")
    for name in ("app.log", "app.log-20261130", "app.log.2.gz", "app.log-20261129.xz"):
        (logs / name).write_text(name)
    (logs / "old").mkdir()
    (logs / "old" / "app.log.9.gz").write_text("x")
    (logs / "other.log.1").write_text("x")
    calls = []
    real_run = host.run_rc
    host.run_rc = lambda *a: calls.append(a[0]) or real_run(*a)
    here = logrotate.parse(main)
    there = logrotate.parse(main, hosttext.files_on(host))
    assert (there.blocks, there.files) == (here.blocks, here.files)
    assert there.files == [str(main), str(inc / ".hidden"), str(inc / "app")]
    assert len(calls) == 2, calls
    listed = siblings(str(logs / "app.log"), ("old",), RemoteFiles(host))
    local = siblings(str(logs / "app.log"), ("old",))
    assert [(f.path, f.codec, f.size, f.active) for f in listed] == [
        (f.path, f.codec, f.size, f.active) for f in local
    ]
    assert all(abs(a.mtime - b.mtime) < 1e-6 for a, b in zip(listed, local, strict=True))
    assert [f.path.name for f in listed] == [
        "app.log",
        "app.log.2.gz",
        "app.log.9.gz",
        "app.log-20261130",
        "app.log-20261129.xz",
    ]
    (inc / "bad").write_text("/x/z.log {\n  rotate many\n}\n")
    (tmp_path / "dangling").write_text(f"include {tmp_path}/nowhere\n")
    for conf in (main, tmp_path / "dangling"):
        with pytest.raises(logrotate.LogrotateParseError) as local_err:
            logrotate.parse(conf)
        with pytest.raises(logrotate.LogrotateParseError) as remote_err:
            logrotate.parse(conf, hosttext.files_on(host))
        assert str(remote_err.value) == str(local_err.value)
    with pytest.raises(ProbeError, match=rf"^{re.escape(sshd.label)}: log dir .* does not exist"):
        siblings(str(tmp_path / "nologs" / "app.log"), (), RemoteFiles(host))


# ---- an unreachable host -------------------------------------------------------------------


@pytest.mark.slow
def test_a_host_that_cannot_be_reached_fails_its_rows_only(sandbox_factory, run_checks, ssh_fleet):
    closed = "ssh://root@127.0.0.1:1"
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, ["local://", closed], timeout_s=3), *ALL_FOUR)
    checks = (
        "temp_files_cleanup",
        "log_rotation_policy",
        "security_updates_pending",
        "system_updates_applied",
    )
    for check in checks:
        rows = _by_host(run, check)
        assert rows["local"]["outcome"] in ("passed", "skipped"), rows["local"]
        gone = rows["root@127.0.0.1:1"]
        assert gone["outcome"] == "failed", gone
        assert gone["message"].startswith("host root@127.0.0.1:1: "), gone
        assert "Connection refused" in gone["message"], gone


# ---- what a host answers that does not parse fails, naming host and read --------------------


def _answering(answer) -> remote.RemoteHost:
    """A host whose commands all answer `answer(command)` (exit code, stdout, stderr)."""
    host = remote.RemoteHost("ssh://app:pw@10.0.0.5", remote.Options())
    host.run_rc = lambda what, command, budget_s=None: answer(command)
    return host


JUNK = ["", "\x00\xff\x7f garbage", "f 0 root notanumber x\x00", "Inst x (1.0 Debian\n"]


@pytest.mark.parametrize("junk", JUNK)
def test_temp_output_that_does_not_parse_fails(junk):
    host = _answering(lambda cmd: (0, "1700000000\n0\n" if "date +%s" in cmd else junk, ""))
    with pytest.raises(ProbeError, match=r"^host app@10\.0\.0\.5: find in /tmp: cannot parse"):
        tempfiles.scan_host(host, ["/tmp"], 7, "app")


def test_temp_output_cut_before_find_ended_fails_and_a_strange_stderr_line_counts():
    real = subprocess.run(
        ["sh", "-c", tempfiles.find_command("/proc/self/fd", None, 1000)],
        capture_output=True,
        text=True,
    ).stdout
    assert tempfiles._END in real
    cut = real[: real.index(tempfiles._END)]
    host = _answering(lambda cmd: (0, "1700000000\n" if "date" in cmd else cut, ""))
    with pytest.raises(ProbeError, match=r"cannot parse \(the output ended after \d+ records"):
        tempfiles.scan_host(host, ["/proc/self/fd"], 7, "*")
    host = _answering(lambda cmd: (0, "1700000000\n" if "date" in cmd else real, "find: odd"))
    scan = tempfiles.scan_host(host, ["/proc/self/fd"], 7, "*")
    assert scan.unreadable == [("/proc/self/fd", "find: odd")]


@pytest.mark.parametrize("junk", JUNK)
def test_apt_output_that_does_not_parse_fails(junk):
    host = _answering(lambda cmd: (0, junk, ""))
    with pytest.raises(ProbeError, match=r"^host app@10\.0\.0\.5: apt-get -s dist-upgrade: "):
        packages.simulate_host(host, "")


@needs_apt
def test_apt_output_cut_short_or_with_an_unknown_inst_line_fails(tmp_path):
    conf = aptrepo.publish(tmp_path / "apt")
    token = "@@t-1"
    real = subprocess.run(
        ["sh", "-c", remote._C + packages.simulate_command(str(conf), token)],
        capture_output=True,
        text=True,
    ).stdout
    got = packages.parse_host_output("h", str(conf), real, token)
    assert got == packages.simulate(str(conf))
    with pytest.raises(ValueError, match="expected sim, lists"):
        packages.parse_host_output("h", str(conf), real[: real.index(f"{token} end")], token)
    odd = real.replace("Inst opscheck-fake-libssl [1.0-1] (", "Inst opscheck-fake-libssl <1.0-1> (")
    with pytest.raises(ValueError, match="an Inst line that does not parse"):
        packages.parse_host_output("h", str(conf), odd, token)
    with pytest.raises(ValueError, match="no 'N upgraded"):
        packages.parse_host_output("h", str(conf), re.sub(r"\d+ upgraded, ", "", real), token)


def test_a_host_without_apt_skips_and_a_missing_apt_config_is_named():
    token_of = lambda cmd: re.search(r"@@opscheck-[0-9a-f]+", cmd).group(0)  # noqa: E731
    host = _answering(lambda cmd: (0, f"{token_of(cmd)} none\n", ""))
    with pytest.raises(packages.Unsupported, match=r"^no apt-get on app@10\.0\.0\.5 \(only"):
        packages.simulate_host(host, "")
    host = _answering(lambda cmd: (0, f"{token_of(cmd)} noconf\n", ""))
    with pytest.raises(ProbeError, match=r"apt_config /etc/x\.conf: no such file"):
        packages.simulate_host(host, "/etc/x.conf")


@pytest.mark.parametrize("junk", JUNK)
def test_logrotate_output_that_does_not_parse_fails(junk):
    files = hosttext.files_on(_answering(lambda cmd: (0, junk, "")))
    with pytest.raises(ProbeError, match=r"^host app@10\.0\.0\.5: read /etc/lr: cannot parse"):
        logrotate.parse("/etc/lr", files)
