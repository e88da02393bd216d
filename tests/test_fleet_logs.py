"""The log checks on every app host: logs read where they are, over SSH, proven on real sshd.

Each sshd is this machine, so a log read through SSH (ssh:// and paramiko://) must give
exactly the Summary the local read gives, and remembering it must work per host.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest

from opscheck.probes import ProbeError, hostfiles, remote
from opscheck.probes.hostfiles import dd_command as dd
from opscheck.probes.logs import files
from tests.test_fleet import _by_host, _config, masters_to

LOG_RUN = ["-m", "daily or weekly", "-k", "logs"]
STAMP = "2026-11-30 10:00:00,000"


def _app_lines(n: int, start: int = 0) -> bytes:
    rows = []
    for i in range(start, start + n):
        rows.append(f"{STAMP} - app - INFO - Request: GET /health\n")
        rows.append(f"{STAMP} - app - INFO - Response: 200 - 0.00{i % 10}s\n")
        if i % 7 == 0:
            rows.append(f"{STAMP} - app - ERROR - boom {i}\nTraceback\nValueError: x\n")
    return "".join(rows).encode()


def _log_set(root: Path) -> Path:
    """An app log with a plain, a gzip and an xz rotated copy."""
    import lzma

    root.mkdir(parents=True, exist_ok=True)
    (root / "app.log").write_bytes(_app_lines(300))
    (root / "app.log.1").write_bytes(_app_lines(200, 300))
    (root / "app.log.2.gz").write_bytes(gzip.compress(_app_lines(500, 500)))
    (root / "app.log.3.xz").write_bytes(lzma.compress(_app_lines(400, 1000)))
    return root / "app.log"


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_a_log_read_over_ssh_is_the_same_summary(ssh_fleet, hosts, tmp_path, scheme):
    (sshd,) = ssh_fleet.start(1)
    log = _log_set(tmp_path / "logs")
    here, _ = files.summarize(str(log), None, tz="UTC")
    host = hosts().host(sshd.spec(scheme))
    there, stats = files.summarize(str(log), None, tz="UTC", fs=hostfiles.RemoteFiles(host))
    assert there.to_json() == here.to_json()
    assert stats["files"] == 4 and there.lines > 3000


def test_remote_state_resumes_and_reads_only_what_grew(ssh_fleet, hosts, tmp_path):
    """The second pass streams only the bytes appended since; rotated copies not at all."""
    (sshd,) = ssh_fleet.start(1)
    log = _log_set(tmp_path / "logs")
    cache = tmp_path / "state" / "logs"
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    files.summarize(str(log), cache, tz="UTC", fs=fs)
    grown = _app_lines(50, 5000)
    with log.open("ab") as f:
        f.write(grown)
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    again, stats = files.summarize(str(log), cache, tz="UTC", fs=fs)
    assert stats["cached_files"] == 3 and stats["resumed_files"] == 1, stats
    assert stats["read_bytes"] <= len(grown) + 200, stats  # (the last record is re-read)
    whole, _ = files.summarize(str(log), None, tz="UTC")
    assert again.to_json() == whole.to_json()


def _access_lines(n: int, start: int = 0) -> bytes:
    rows = []
    for i in range(start, start + n):
        t = f"30/Nov/2026:10:{(i // 60) % 60:02d}:{i % 60:02d} +0000"
        rows.append(
            f'10.0.0.{i % 7} - - [{t}] "GET /api/v1/templates/{i} HTTP/1.1" 200 512 "-" '
            f'"curl/8" 0.0{i % 10}\n'
        )
    return "".join(rows).encode()


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_a_resumed_access_log_over_ssh_reads_its_lead_in_whole(ssh_fleet, hosts, tmp_path, scheme):
    """The second day's pass streams 1 MiB before where the first stopped (the 60 s
    windows' lead-in): a pipe gives it 64 KiB a read, and all of it must be read."""
    (sshd,) = ssh_fleet.start(1)
    log = tmp_path / "logs" / "access.log"
    log.parent.mkdir()
    log.write_bytes(_access_lines(12000))  # about 1.3 MiB
    cache = tmp_path / "state"
    host = hosts().host(sshd.spec(scheme))
    files.summarize(str(log), cache, fmt="access", fs=hostfiles.RemoteFiles(host))
    with log.open("ab") as f:
        f.write(_access_lines(500, 12000))
    again, stats = files.summarize(str(log), cache, fmt="access", fs=hostfiles.RemoteFiles(host))
    assert stats["resumed_files"] == 1 and not again.notes, (stats, again.notes)
    whole, _ = files.summarize(str(log), None, fmt="access")
    assert again.to_json() == whole.to_json()


def test_a_remote_log_that_cannot_be_read_names_host_and_file(ssh_fleet, hosts, tmp_path):
    (sshd,) = ssh_fleet.start(1)
    log = _log_set(tmp_path / "logs")
    fs = hostfiles.RemoteFiles(hosts().host(sshd.spec()))
    with pytest.raises(ProbeError, match=rf"^{sshd.label}: log dir .*nope does not exist$"):
        files.summarize(str(tmp_path / "nope" / "app.log"), None, fs=fs)
    (log.parent / "unrelated-loop").symlink_to(log.parent / "unrelated-loop")
    assert files.siblings(str(log), (), fs) == files.siblings(str(log))  # (not about app.log)
    (log.parent / "app.log.4.gz").write_bytes(b"not gzip at all")
    s, _ = files.summarize(str(log), None, tz="UTC", fs=fs)
    assert any("app.log.4.gz" in note for note in s.notes), s.notes  # seen, never passed


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_a_stalled_stream_stops_within_the_timeout(ssh_fleet, hosts, scheme):
    (sshd,) = ssh_fleet.start(1)
    host = hosts(timeout_s=1.0).host(sshd.spec(scheme))
    host.run_rc("connect", "true", budget_s=30)  # (a loaded machine's handshake is not timed)
    t0 = time.monotonic()
    stalled = r"no byte for 1 s \(stream stopped after 3 bytes\)"
    sleepy = "printf abc; sleep 30"
    with pytest.raises(ProbeError, match=stalled), host.stream("log", sleepy, 60) as f:
        f.read()
    assert time.monotonic() - t0 < 1 + 2 * remote.MARGIN_S
    trickle = "while :; do echo x; sleep 0.1; done"  # never idle for 1 s, never done
    late = "stopped at its deadline"
    with pytest.raises(ProbeError, match=late), host.stream("log", trickle, 2) as f:
        f.read()


def test_a_failing_remote_command_is_its_own_words(ssh_fleet, hosts):
    (sshd,) = ssh_fleet.start(1)
    host = hosts().host(sshd.spec())
    missing = r"read x: dd: failed to open '/nope': No such file"
    with pytest.raises(ProbeError, match=missing), host.stream("read x", dd("/nope"), 5) as f:
        f.read()
    with host.stream("read a head", "yes", 5) as f:  # stopped early on purpose: no error
        assert f.read(4) == b"y\ny\n"


@pytest.mark.slow
def test_log_checks_run_per_app_host_with_the_same_numbers(sandbox_factory, run_checks, ssh_fleet):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *LOG_RUN)
    assert run.exit_code == 0, run.stdout[-3000:]
    assert not masters_to(sshd.port), "the run's ssh master outlived it"
    for check in ("error_rate", "p95_response_time", "error_log_review", "llm_usage"):
        rows = _by_host(run, check)
        assert set(rows) == {"local", sshd.label}, rows
        local = [(e["name"], e["value"]) for e in rows["local"]["evidence"]]
        there = [
            (e["name"].replace(f" on {sshd.label}", ""), e["value"])
            for e in rows[sshd.label]["evidence"]
        ]
        assert local == there, check
    state = run.reports_dir / ".state" / "hosts" / sshd.label.replace(":", "_") / "logs"
    assert list(state.glob("*.json")), "the host's log state is kept under its own dir"


@pytest.mark.slow
def test_a_broken_remote_log_fails_that_host_naming_it(sandbox_factory, run_checks, ssh_fleet):
    """Only app hosts get log rows; a bad log fails its host, an unreachable host its own."""
    (sshd,) = ssh_fleet.start(1)
    closed = "ssh://root@127.0.0.1:1"
    sb = sandbox_factory("down", "error-heavy-log")
    roles = f'\n[hosts.roles]\napp = ["{sshd.label}", "{closed}"]\n'
    targets = ["local://", sshd.spec(), closed]
    run = run_checks(
        _config(sb, ssh_fleet, targets, extra=roles, timeout_s=2), "-m", "daily", "-k", "error_rate"
    )
    rows = _by_host(run, "error_rate")
    assert set(rows) == {sshd.label, "root@127.0.0.1:1"}, "log rows on app hosts only"
    there = rows[sshd.label]
    assert there["outcome"] == "failed"
    assert f"access log {sb.root}" in there["message"] and f"on {sshd.label})" in there["message"]
    assert there["message"].endswith("limit 1 %"), there["message"]
    gone = rows["root@127.0.0.1:1"]
    assert gone["outcome"] == "failed" and "Connection refused" in gone["message"]
