"""The host checks on every host: testinfra over SSH, proven against real sshd.

Several sshd (Debian's openssh-server) on 127.0.0.1 ports stand for a fleet; each one is
this machine, so a host read through SSH must give what `local://` gives.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from opscheck import config as cfgmod
from opscheck import fleet
from opscheck.probes import ProbeError, remote
from opscheck.probes.host import LocalHost, host_for, host_label

HOST_CHECKS = ["-m", "daily", "-k", "cpu_usage or memory_usage or disk_usage or mode"]


def _opts(ssh_fleet, **kw) -> remote.Options:
    base = {
        "ssh_config": str(ssh_fleet.ssh_config),
        "ssh_identity_file": str(ssh_fleet.client_key),
        "timeout_s": 5.0,
    }
    return remote.Options(**{**base, **kw})


# ---- the arithmetic, on the host's own text ----------------------------------------------


def test_proc_stat_parser_matches_psutil_on_the_same_snapshot():
    """Two real /proc/stat snapshots: psutil's own delta arithmetic and ours agree."""
    first = Path("/proc/stat").read_text().splitlines()[0]
    time.sleep(0.3)
    second = Path("/proc/stat").read_text().splitlines()[0]
    fields = psutil._ntp.scputimes._fields
    t1 = psutil._ntp.scputimes(*[int(x) for x in first.split()[1 : len(fields) + 1]])
    t2 = psutil._ntp.scputimes(*[int(x) for x in second.split()[1 : len(fields) + 1]])
    delta = psutil._cpu_times_deltas(t1, t2)
    want = round(100 * psutil._cpu_busy_time(delta) / psutil._cpu_tot_time(delta), 1)
    assert remote.cpu_busy_percent(first, second) == want


def test_proc_stat_guest_time_is_not_counted_twice():
    """guest and guest_nice are already inside user and nice (psutil subtracts them)."""
    a = "cpu  100 0 100 800 0 0 0 0 0 0"
    b = "cpu  200 0 100 800 0 0 0 0 100 0"  # 100 ticks of guest, counted in user
    assert remote.cpu_busy_percent(a, b) == 100.0
    c = "cpu  100 0 100 900 100 0 0 0 0 0"  # idle and iowait only
    assert remote.cpu_busy_percent(a, c) == 0.0


def test_meminfo_parser_matches_psutil():
    text = Path("/proc/meminfo").read_text()
    assert abs(remote.memory_used_percent(text) - psutil.virtual_memory().percent) <= 1.0
    with pytest.raises(ValueError, match="MemAvailable"):
        remote.memory_used_percent("MemTotal: 100 kB\nMemFree: 5 kB\n")


def test_snapshot_sections_through_a_real_shell():
    """One command, many reads: each section keeps its own exit code and text."""
    reads = [remote.memory_read(), remote.file_read("/etc/passwd"), remote.file_read("/nope")]
    token = "@@t-1"
    out = subprocess.run(
        ["sh", "-c", remote.snapshot_command(reads, token)], capture_output=True, text=True
    ).stdout
    found = remote.split_snapshot(out, len(reads), token)
    assert found[0][0] == 0 and "MemAvailable" in found[0][1]
    assert reads[1].finish(*found[1], found[1][1]).mode == 0o644
    rc, text = found[2]
    assert rc == 1
    assert reads[2].finish(rc, text, text).error == "does not exist"


def test_docker_spec_is_accepted_and_labelled():
    """No engine here: the spec is a host named by its container, and reading it fails
    with one line naming it (docker's own reason), never a traceback."""
    host = host_for("docker://web")
    assert isinstance(host, remote.RemoteHost) and host.name == "web"
    with pytest.raises(ProbeError) as err:
        host.memory_percent()
    assert str(err.value).startswith("host web: ")
    assert "\n" not in str(err.value)


# ---- roles and targets -------------------------------------------------------------------


def _hosts(**kw) -> cfgmod.Hosts:
    return cfgmod.Hosts(**kw)


def test_roles_choose_hosts_and_mounts():
    t = fleet.resolve(
        _hosts(
            targets=["local://", "ssh://app@10.0.0.5", "ssh://bk@10.0.0.9:2222"],
            roles={"app": ["local", "app@10.0.0.5"], "backup": ["ssh://bk@10.0.0.9:2222"]},
        )
    )
    assert t.for_role("app") == ["local://", "ssh://app@10.0.0.5"]
    assert t.for_role("backup") == ["ssh://bk@10.0.0.9:2222"]
    assert t.for_role("cache") == t.specs  # not listed: every host
    assert t.for_role(None) == t.specs
    paths = cfgmod.Paths(app_dir="/srv/app", backup_dir="/srv/bk", disk_mounts=["/", "/var"])
    assert t.mounts("ssh://app@10.0.0.5", paths) == ["/", "/var", "/srv/app"]
    assert t.mounts("ssh://bk@10.0.0.9:2222", paths) == ["/", "/var", "/srv/bk"]


def test_a_role_naming_no_target_stops_the_run():
    with pytest.raises(fleet.TargetsError, match=r"\[hosts.roles\] backup: bk@10.0.0.9 is not"):
        fleet.resolve(_hosts(targets=["local://"], roles={"backup": ["ssh://bk:pw@10.0.0.9"]}))
    with pytest.raises(ValueError, match="unknown role 'db'"):
        _hosts(roles={"db": ["local"]})
    with pytest.raises(fleet.TargetsError, match="safe-ssh:// writes temp files on the host"):
        fleet.resolve(_hosts(targets=["safe-ssh://app@10.0.0.5"]))


# ---- one host through SSH is this machine ------------------------------------------------


def test_local_and_ssh_read_the_same_machine(ssh_fleet, hosts, tmpfs):
    """Disk, inodes and file modes exactly (a quiet tmpfs), / within a busy disk's drift,
    memory within 1 point, CPU in 0..100."""
    (sshd,) = ssh_fleet.start(1)
    quiet = tmpfs("size=2m,nr_inodes=100")
    (quiet / "data").write_bytes(b"x" * 300_000)
    (quiet / "secret").write_text("x")
    (quiet / "secret").chmod(0o640)
    (quiet / "dir").mkdir(mode=0o750)
    local, ssh = LocalHost(), hosts().host(sshd.spec())
    assert ssh.disk_usage(str(quiet / "nope" / "deeper")) == local.disk_usage(str(quiet))
    for name in ("secret", "dir", "missing"):
        assert ssh.file(str(quiet / name)) == local.file(str(quiet / name))
    assert ssh.file("/etc/shadow") == local.file("/etc/shadow")
    for path in ("/", "/proc/1", "/dev/shm", str(quiet)):
        assert ssh.mount_of(path) == local.mount_of(path)
    here, there = local.disk_usage("/"), ssh.disk_usage("/")
    assert there.mount == "/" and abs(there.space_percent - here.space_percent) < 0.1
    assert abs(ssh.memory_percent() - local.memory_percent()) <= 1.0
    assert 0 <= ssh.cpu_percent(0.3) <= 100


def test_a_backup_dir_listed_over_ssh_is_the_same_inventory(ssh_fleet, hosts, tmp_path):
    from opscheck.probes import backups

    (sshd,) = ssh_fleet.start(1)
    d = tmp_path / "bk"
    d.mkdir()
    for name in ("chroma_db_20261130_020000.tar.gz", "template_data_20261130_020000.json"):
        (d / name).write_bytes(b"x" * 1234)
    (d / "notes.txt").write_text("x")
    (d / "config_20261130_020000.tar.gz").mkdir()
    (d / "logs_20261130_020000.tar.gz").symlink_to(d / "notes.txt")
    here = backups.scan(str(d), None)
    there = backups.scan_on(hosts().host(sshd.spec()), str(d), None)
    assert there == here
    with pytest.raises(ProbeError, match=r"list .*nope: No such file or directory"):
        hosts().host(sshd.spec()).list_dir(str(d / "nope"))


def test_paramiko_keeps_one_connection(ssh_fleet, hosts):
    (sshd,) = ssh_fleet.start(1)
    host = hosts().host(sshd.spec("paramiko"))
    assert host.file("/etc/passwd") == LocalHost().file("/etc/passwd")
    client = vars(host._host.backend)["client"]
    assert host.memory_percent() > 0
    assert vars(host._host.backend)["client"] is client and client.get_transport().is_active()


def test_ssh_master_is_reused_and_stopped(ssh_fleet, hosts):
    (sshd,) = ssh_fleet.start(1)
    f = hosts()
    host = f.host(sshd.spec())
    host.memory_percent()
    pid = host._master_pid
    assert pid and remote._is_master(pid, host.control_path)
    host.file("/etc/passwd")
    assert host._master_pid == pid  # the same master served the second command
    f.close()
    assert not remote._is_master(pid, host.control_path)
    assert not Path(host.control_path).parent.exists()


# ---- failures: one line naming the host, within the timeout -------------------------------


def test_wrong_key_is_permission_denied(ssh_fleet, hosts):
    (sshd,) = ssh_fleet.start(1)
    host = hosts(ssh_identity_file=str(ssh_fleet.wrong_key)).host(sshd.spec())
    with pytest.raises(ProbeError) as err:
        host.memory_percent()
    assert str(err.value).startswith(f"host {sshd.label}: Permission denied"), err.value
    assert str(ssh_fleet.wrong_key) not in str(err.value)


def test_closed_port_fails_at_once_and_is_not_asked_again(hosts):
    host = hosts(timeout_s=3).host("ssh://root@127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(ProbeError, match="Connection refused"):
        host.memory_percent()
    with pytest.raises(ProbeError, match="not asked again this run"):
        host.file("/etc/passwd")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_a_host_that_never_answers_fails_within_the_timeout(hosts, silent_server, scheme):
    host = hosts(timeout_s=1.5).host(f"{scheme}://root@127.0.0.1:{silent_server.port}")
    started = time.monotonic()
    with pytest.raises(ProbeError) as err:
        host.memory_percent()
    took = time.monotonic() - started
    assert str(err.value).startswith(f"host root@127.0.0.1:{silent_server.port}: ")
    assert took < 1.5 + remote.MARGIN_S + 1, took
    assert silent_server.held, "the client did connect"


# ---- whole runs of the daily host checks ---------------------------------------------------


def _config(sandbox, ssh_fleet, targets, extra="", **kw):
    path = sandbox.with_config(ssh_fleet.hosts_toml(targets, **kw))
    if extra:
        path.write_text(path.read_text() + extra)
    return path


def _by_host(run, check_id):
    return {e["nodeid"].rsplit("[", 1)[1].rstrip("]"): e for e in run.checks(check_id)}


@pytest.mark.slow
def test_one_run_covers_local_and_ssh_with_the_same_numbers(sandbox_factory, run_checks, ssh_fleet):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, ["local://", sshd.spec()]), *HOST_CHECKS)
    assert run.exit_code == 0, run.stdout[-3000:]
    assert not masters_to(sshd.port), "the run's ssh master outlived it"
    cpu = _by_host(run, "cpu_usage")
    assert set(cpu) == {"local", sshd.label}
    assert all(0 <= e["evidence"][0]["value"] <= 100 for e in cpu.values())
    mem = _by_host(run, "memory_usage")
    assert abs(mem["local"]["evidence"][0]["value"] - mem[sshd.label]["evidence"][0]["value"]) <= 1
    assert mem[sshd.label]["evidence"][0]["name"] == f"{sshd.label}: memory used"
    for check in ("env_file_mode", "data_dir_modes"):
        rows = _by_host(run, check)
        local = [(e["name"], e["value"]) for e in rows["local"]["evidence"]]
        there = [
            (e["name"].removeprefix(f"{sshd.label}: "), e["value"])
            for e in rows[sshd.label]["evidence"]
        ]
        assert local == there, check
    disks = _by_host(run, "disk_usage")
    assert "local-/" in disks and f"{sshd.label}-/" in disks
    assert f"{sshd.label}-{sb.root / 'app'}" in disks  # an app host watches its app dir's mount


@pytest.mark.slow
def test_unreachable_hosts_fail_with_their_reason_and_spare_the_others(
    sandbox_factory, run_checks, ssh_fleet, silent_server
):
    (good,) = ssh_fleet.start(1)
    silent = f"ssh://root@127.0.0.1:{silent_server.port}"
    targets = [good.spec(), silent, "ssh://root@127.0.0.1:1"]
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, targets, timeout_s=2), *HOST_CHECKS)
    assert run.exit_code == 1
    assert not masters_to(good.port), "the run's ssh master outlived it"
    for check in ("cpu_usage", "memory_usage", "env_file_mode", "data_dir_modes"):
        rows = _by_host(run, check)
        assert rows[good.label]["outcome"] == "passed", rows[good.label]
        hung = rows[f"root@127.0.0.1:{silent_server.port}"]
        assert hung["outcome"] == "failed"
        assert hung["message"].startswith(f"host root@127.0.0.1:{silent_server.port}: ")
        assert hung["duration_s"] < 2 + 0.5 + remote.MARGIN_S + 2, hung
        closed = rows["root@127.0.0.1:1"]
        assert closed["outcome"] == "failed" and "Connection refused" in closed["message"]


@pytest.mark.slow
def test_wrong_key_fails_every_check_of_that_host(sandbox_factory, run_checks, ssh_fleet):
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    cfg = _config(sb, ssh_fleet, [sshd.spec()], key=ssh_fleet.wrong_key)
    run = run_checks(cfg, *HOST_CHECKS)
    entry = run.one("memory_usage")
    assert entry["outcome"] == "failed"
    assert entry["message"].startswith(f"host {sshd.label}: Permission denied (publickey)")
    assert str(ssh_fleet.wrong_key) not in run.stdout


@pytest.mark.slow
def test_remote_disk_over_the_limit_fails(sandbox_factory, run_checks, ssh_fleet, tmpfs):
    (sshd,) = ssh_fleet.start(1)
    small = tmpfs("size=1m")
    subprocess.run(["dd", "if=/dev/zero", f"of={small}/fill", "bs=64k"], capture_output=True)
    sb = sandbox_factory("down")
    cfg = sb.with_config(
        ssh_fleet.hosts_toml([sshd.spec()]) + f'[paths]\ndisk_mounts = ["{small}"]\n'
    )
    run = run_checks(cfg, "-m", "daily", "-k", "disk_usage")
    bad = _by_host(run, "disk_usage")[f"{sshd.label}-{small}"]
    assert bad["outcome"] == "failed"
    assert re.search(
        rf"^{re.escape(sshd.label)}: {small} space used is 100 %, limit 90 %", bad["message"]
    )


@pytest.mark.slow
def test_a_password_in_a_spec_is_never_shown(sandbox_factory, run_checks, ssh_fleet):
    (sshd,) = ssh_fleet.start(1)
    spec = f"ssh://root:Xy7s3cretHostPw@127.0.0.1:{sshd.port}"
    sb = sandbox_factory("down")
    run = run_checks(_config(sb, ssh_fleet, [spec]), *HOST_CHECKS, "-v")
    entry = run.one("memory_usage")
    assert entry["nodeid"].endswith(f"[{sshd.label}]")
    assert entry["message"].startswith(f"host {sshd.label}: ")
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in run.reports_dir.rglob("*") if p.is_file()]
    for text in texts:
        assert "Xy7s3cretHostPw" not in text


@pytest.mark.slow
def test_hosts_option_and_roles(sandbox_factory, run_checks, ssh_fleet):
    """--hosts replaces the targets (testinfra's option); [hosts.roles] app puts the file
    checks on the app host only, backup_storage_capacity on the backup host only."""
    a, b = ssh_fleet.start(2)
    sb = sandbox_factory("down")
    roles = f'\n[hosts.roles]\napp = ["{a.label}"]\nbackup = ["{b.spec()}"]\n'
    cfg = _config(sb, ssh_fleet, ["local://"], extra=roles)
    run = run_checks(
        cfg,
        "-m",
        "daily or weekly",
        "-k",
        "mode or memory or storage_capacity",
        "--hosts",
        f"{a.spec()},{b.spec()}",
    )
    assert set(_by_host(run, "memory_usage")) == {a.label, b.label}
    assert set(_by_host(run, "env_file_mode")) == {a.label}
    assert set(_by_host(run, "data_dir_modes")) == {a.label}
    assert set(_by_host(run, "backup_storage_capacity")) == {b.label}


@pytest.mark.slow
def test_an_ansible_inventory_expands_to_its_hosts(sandbox_factory, run_checks, ssh_fleet):
    """--hosts ansible://group with --ansible-inventory (testinfra's options): a row per
    inventory host, named by its inventory name; a role may name the group."""
    if not shutil.which("ansible-inventory"):
        pytest.skip("ansible-core is not installed (ansible-inventory)")
    a, b = ssh_fleet.start(2)
    inventory = ssh_fleet.root / f"inventory-{a.port}.ini"
    inventory.write_text(
        f"[app]\napp1 ansible_host=127.0.0.1 ansible_port={a.port} ansible_user=root\n"
        f"[backup]\nbk1 ansible_host=127.0.0.1 ansible_port={b.port} ansible_user=root\n"
    )
    sb = sandbox_factory("down")
    cfg = _config(
        sb, ssh_fleet, ["local://"], extra='\n[hosts.roles]\nbackup = ["ansible://backup"]\n'
    )
    run = run_checks(
        cfg,
        "-m",
        "daily or weekly",
        "-k",
        "memory or storage_capacity",
        "--hosts",
        "ansible://app,ansible://backup",
        "--ansible-inventory",
        str(inventory),
    )
    memory = _by_host(run, "memory_usage")
    assert set(memory) == {"app1", "bk1"}
    assert all(e["outcome"] == "passed" for e in memory.values()), memory
    assert set(_by_host(run, "backup_storage_capacity")) == {"bk1"}
    assert not masters_to(a.port) and not masters_to(b.port)


@pytest.mark.slow
def test_backup_capacity_on_a_remote_backup_host(sandbox_factory, run_checks, ssh_fleet):
    """The backup host's volume and its own listing size the headroom (not this machine's)."""
    (sshd,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    run = run_checks(
        _config(sb, ssh_fleet, ["local://", sshd.spec()]), "-m", "weekly", "-k", "capacity"
    )
    rows = _by_host(run, "backup_storage_capacity")
    assert rows["local"]["outcome"] == rows[sshd.label]["outcome"] == "passed", rows
    size = [e for e in rows["local"]["evidence"] if e["name"].startswith("newest set")]
    there = [e for e in rows[sshd.label]["evidence"] if "newest set" in e["name"]]
    assert size and [e["value"] for e in size] == [e["value"] for e in there]
    assert there[0]["name"] == f"{sshd.label}: {size[0]['name']}"


@pytest.mark.slow
def test_testinfra_changes_nothing_for_a_local_run(sandbox_factory, run_checks):
    sb = sandbox_factory("down")
    with_it = run_checks(sb.config, *HOST_CHECKS)
    without = run_checks(sb.config, *HOST_CHECKS, "-p", "no:testinfra")
    rows = [{e["nodeid"]: e["outcome"] for e in r.report["checks"]} for r in (with_it, without)]
    assert rows[0] == rows[1] and rows[0]
    assert all("[local" in nodeid for nodeid in rows[0])


def test_labels_of_every_spec_kind():
    assert host_label("ansible://web1") == "web1"
    assert host_label("paramiko://app:pw@10.0.0.6:2200") == "app@10.0.0.6:2200"
    assert host_label("docker://web") == "web"
    assert shutil.which("ssh"), "openssh-client is needed for ssh://"


@pytest.mark.slow
def test_sigterm_stops_the_masters_and_the_hung_connection(
    sandbox_factory, ssh_fleet, silent_server, tmp_path
):
    """Mid-run (one host's master up, another host hung): SIGTERM leaves no ssh behind."""
    import os
    import signal
    import sys
    import uuid

    from tests.conftest import REPO, RUN_TAG, left_behind

    (good,) = ssh_fleet.start(1)
    sb = sandbox_factory("down")
    hung = f"ssh://root@127.0.0.1:{silent_server.port}"
    cfg = _config(sb, ssh_fleet, [good.spec(), hung], timeout_s=60)
    tag = uuid.uuid4().hex
    env = {**{k: v for k, v in os.environ.items() if k != "OPSCHECK_CONFIG"}, RUN_TAG: tag}
    args = [sys.executable, "-m", "pytest", *HOST_CHECKS, "--ops-config", str(cfg)]
    args += ["--reports-dir", str(tmp_path / "reports")]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        masters: list[psutil.Process] = []
        while not masters and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            masters = masters_to(good.port)
        assert masters, "no ssh master came up"
        assert any(p.name() == "ssh" for p in _tagged(tag))  # the hung host's client
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out[-2000:]
    assert not left_behind(tag), "a process of the run outlived it"
    assert not masters_to(good.port), "an ssh master outlived the run"
    assert not any(Path(p).exists() for p in _control_dirs(masters))


def masters_to(port: int) -> list[psutil.Process]:
    """Live ssh masters ("ssh: <socket> [mux]") connected to 127.0.0.1:`port`. (A master's
    title overwrites its environment, so the run's tag cannot find it.)"""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if "[mux]" not in " ".join(p.cmdline()) or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(c.raddr and c.raddr.port == port for c in p.net_connections("tcp")):
                found.append(p)
    return found


def _tagged(tag: str) -> list[psutil.Process]:
    from tests.conftest import RUN_TAG

    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get(RUN_TAG) == tag and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


def _control_dirs(masters: list[psutil.Process]) -> list[str]:
    """The private dirs the masters' sockets were in (from their titles)."""
    dirs = []
    for p in masters:
        with contextlib.suppress(psutil.Error):
            found = re.search(r"ssh: (\S+)/\d+ \[mux\]", " ".join(p.cmdline()))
            if found:
                dirs.append(found.group(1))
    return dirs


@pytest.mark.parametrize(
    "read",
    [remote.cpu_read(1), remote.memory_read(), remote.disk_read("/srv"), remote.file_read("/a")],
    ids=["cpu", "memory", "disk", "file"],
)
@pytest.mark.parametrize("junk", ["", "\x00\xff\x7f garbage", "MemTotal: lots kB\n"])
def test_output_that_does_not_parse_is_named_not_passed(read, junk):
    """What a host answers that the probes cannot read fails naming the host and the read."""
    host = remote.RemoteHost("ssh://app:pw@10.0.0.5", remote.Options())
    with pytest.raises(ProbeError, match=r"^host app@10\.0\.0\.5: ") as err:
        host._finish(read, 0, junk, "")
    assert "pw" not in str(err.value)
