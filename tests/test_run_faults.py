"""Faults of the run itself, before any check: a broken config or a reports dir that
cannot be written. Each stops the run with pytest's usage error (exit code 4) and one
line naming the key or the dir, no traceback, and no secret from the environment.
(docs/faults.md lists them with the matrix's faults.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_pytest

USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR, what the plugin raises for both
CANARY = "canary-pw-7f3a9c"
ENV = {"RF_PASSWORD": CANARY, "RF_SECRET": CANARY}
BASE = '[service]\nbase_url = "http://ops:${RF_PASSWORD}@127.0.0.1:9"\ngenerate_smoke = false\n'

CONFIG_FAULTS = {
    # name: (extra TOML, words the reason must hold)
    "config-unknown-key": (
        "[thresholds]\ndisk_percnt = 80\n",
        ["[thresholds] disk_percnt", "unknown key"],
    ),
    "config-wrong-type": (
        '[hosts]\ncpu_sample_s = "${RF_SECRET}"\n',
        ["[hosts] cpu_sample_s", "got a str"],
    ),
    "config-unset-var": (
        '[paths]\napp_dir = "/srv/${RF_UNSET_DIR}"\n',
        ["[paths] app_dir", "RF_UNSET_DIR is not set"],
    ),
}
REPORT_FAULTS = ("reports-dir-is-a-file", "reports-dir-read-only")
RUN_FAULTS = (*CONFIG_FAULTS, *REPORT_FAULTS)  # docs/faults.md names each


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_pytest(["-m", "daily", *args], env=ENV, timeout=120)


def assert_usage_error(proc: subprocess.CompletedProcess[str], words: list[str]) -> None:
    """Exit 4, one `ERROR:` line holding `words`, no traceback, no canary anywhere."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == USAGE_ERROR, out[-2000:]
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and lines == errors, out[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert CANARY not in out


@pytest.mark.parametrize("name", list(CONFIG_FAULTS))
def test_config_fault_is_one_usage_line(tmp_path, name):
    extra, words = CONFIG_FAULTS[name]
    config = tmp_path / "opscheck.toml"
    config.write_text(BASE + extra)
    proc = _run(["--ops-config", str(config), "--reports-dir", str(tmp_path / "r")])
    assert_usage_error(proc, [str(config), *words])
    assert not (tmp_path / "r").exists(), "no report for a run that never started"


def _good_config(tmp_path: Path) -> Path:
    config = tmp_path / "opscheck.toml"
    config.write_text(BASE)
    return config


def test_reports_dir_is_a_file(tmp_path):
    reports = tmp_path / "reports"
    reports.write_text("not a dir\n")
    proc = _run(["--ops-config", str(_good_config(tmp_path)), "--reports-dir", str(reports)])
    assert_usage_error(proc, [f"cannot write reports in {reports}", "Not a directory"])


def test_reports_dir_read_only(tmp_path, tmpfs):
    ro = tmpfs("size=1m,ro")
    proc = _run(["--ops-config", str(_good_config(tmp_path)), "--reports-dir", str(ro)])
    assert_usage_error(proc, [f"cannot write reports in {ro}", "Read-only file system"])
