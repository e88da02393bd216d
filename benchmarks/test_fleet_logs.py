"""An app log read on another host (at least 100 MiB; 171 MB as built): our summary over SSH
beside `ssh host grep -c`.

The host is a real sshd on a 127.0.0.1 port (this machine through SSH, so the link is
loopback and the figures are the cost of the channel and the scan, not of a network).
Rows: the whole summary over ssh:// (the log streamed into the scanner) and over
paramiko://, the same summary read locally, the daily re-read after 1 MiB was appended
(resumed from the per-host state: only what grew is streamed), and the references a user
would reach for: `ssh host grep -c ' - ERROR - ' app.log` (the analysis run there) and
`ssh host cat app.log | wc -c` (the bytes through the channel).
Run: `python -m pytest benchmarks/test_fleet_logs.py --benchmark-only`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.log_fixtures import app_log
from opscheck.probes import hostfiles, remote
from opscheck.probes.logs.files import summarize
from tests.sshfleet import make_fleet

SIZE = 100 << 20


@pytest.fixture(scope="module")
def log() -> Path:
    return app_log("log-100m", SIZE)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    fleet = make_fleet(tmp_path_factory.mktemp("fleet"))
    (one,) = fleet.start(1)
    yield fleet, one
    fleet.stop_all()


def _fleet(fleet) -> remote.Fleet:
    opts = remote.Options(
        ssh_config=str(fleet.ssh_config), ssh_identity_file=str(fleet.client_key), timeout_s=10
    )
    return remote.Fleet(opts)


def _rate(benchmark, path: Path) -> None:
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith("app.log"))
    benchmark.extra_info["log_set_MB"] = round(size / 1e6, 1)
    benchmark.extra_info["MB_per_s"] = round(size / 1e6 / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("scheme", ["ssh", "paramiko"])
def test_summary_over_ssh(benchmark, log, sshd, scheme):
    fleet, one = sshd
    benchmark.group = "100 MiB app log on another host"
    hosts = _fleet(fleet)
    host = hosts.host(one.spec(scheme))

    def read():
        return summarize(str(log), None, fs=hostfiles.RemoteFiles(host))

    try:
        benchmark.pedantic(read, rounds=3, warmup_rounds=1)
    finally:
        hosts.close()
    _rate(benchmark, log)


def test_summary_here(benchmark, log):
    benchmark.group = "100 MiB app log on another host"
    benchmark.pedantic(lambda: summarize(str(log), None, workers=1), rounds=3)
    _rate(benchmark, log)


def test_daily_reread_over_ssh(benchmark, log, sshd, tmp_path):
    """The next day's run: 1 MiB appended to the live log, the rest remembered."""
    fleet, one = sshd
    benchmark.group = "100 MiB app log on another host"
    copy = tmp_path / "logs"
    shutil.copytree(log.parent, copy)
    hosts = _fleet(fleet)
    fs = hostfiles.RemoteFiles(hosts.host(one.spec()))
    cache = tmp_path / "state"
    summarize(str(copy / "app.log"), cache, fs=fs)
    tail = (copy / "app.log").read_bytes()[-(1 << 20) :]

    def grow():
        with (copy / "app.log").open("ab") as f:
            f.write(tail)
        return (), {}

    def reread():
        _, stats = summarize(str(copy / "app.log"), cache, fs=hostfiles.RemoteFiles(fs.host))
        benchmark.extra_info["streamed_bytes"] = stats["read_bytes"]

    try:
        benchmark.pedantic(reread, setup=grow, rounds=5)
    finally:
        hosts.close()


def _ssh(fleet, one, command: str) -> list[str]:
    return [
        "ssh", "-F", str(fleet.ssh_config), "-i", str(fleet.client_key), "-p", str(one.port),
        "root@127.0.0.1", command,
    ]  # fmt: skip


def test_ssh_grep_count(benchmark, log, sshd):
    fleet, one = sshd
    benchmark.group = "100 MiB app log on another host"
    cmd = _ssh(fleet, one, f"grep -c ' - ERROR - ' {log}")
    benchmark.pedantic(lambda: subprocess.run(cmd, capture_output=True, check=True), rounds=3)
    _rate(benchmark, log)


def test_ssh_cat_through_the_channel(benchmark, log, sshd):
    fleet, one = sshd
    benchmark.group = "100 MiB app log on another host"
    cmd = _ssh(fleet, one, f"cat {log}")
    benchmark.pedantic(lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True), rounds=3)
    _rate(benchmark, log)
