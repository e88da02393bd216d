"""security_updates_pending, system_updates_applied and key_rotation_age, both ways.

The patch checks run real `apt-get` against a private apt world (opscheck.sandbox.aptrepo):
a fake package built with dpkg-deb at two versions, the newer one indexed by
apt-ftparchive in a local repository whose Release says Debian-Security, its own
lists, state and dpkg status (the host's apt state is never touched). The sandbox
faults at the end are the rows of the weekly and monthly fault matrix for these checks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opscheck.probes import packages
from opscheck.sandbox import aptrepo
from opscheck.sandbox.layout import env_secrets

WEEKLY = ("-m", "weekly", "-k", "test_security_updates_pending")
MONTHLY = ("-m", "monthly", "-k", "test_system_updates_applied")
KEYS = ("-m", "monthly", "-k", "test_key_rotation_age")
PACKAGE_LIST = "_apt_repo_"  # how apt names the private repository's lists

needs_apt = pytest.mark.skipif(
    bool(aptrepo.tools_missing()),
    reason=f"needs {', '.join(aptrepo.tools_missing())} (apt-get install apt-utils)",
)


def config(tmp_path: Path, **paths_and_packages: dict) -> Path:
    lines = []
    for section, values in paths_and_packages.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "opscheck.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def apt_config(tmp_path: Path, conf: Path) -> Path:
    return config(tmp_path, packages={"apt_config": str(conf)})


# ---- apt -------------------------------------------------------------------------------------


def test_parse_real_simulation_lines():
    text = (
        "Reading package lists...\n"
        "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security "
        "[amd64])\n"
        "Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable, "
        "Debian-Security:12/stable-security [all])\n"
        "Inst curl [7.88.1-10+deb12u5] (7.88.1-10+deb12u12 Debian:12.11/stable [amd64])\n"
        "Inst linux-image-6.1.0-37-amd64 (6.1.140-1 Debian-Security:12/stable-security [amd64])\n"
        "Inst libc6 [2.35-0ubuntu3.6] (2.35-0ubuntu3.8 Ubuntu:22.04/jammy-security [amd64]) []\n"
        "Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\n"
    )
    got = packages.parse_simulation(text)
    assert [(p.package, p.installed, p.candidate, p.security) for p in got] == [
        ("libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", True),
        ("tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", True),
        ("curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u12", False),
        ("linux-image-6.1.0-37-amd64", "", "6.1.140-1", True),
        ("libc6", "2.35-0ubuntu3.6", "2.35-0ubuntu3.8", True),
    ]
    assert got[1].releases == ("Debian:12.11/stable", "Debian-Security:12/stable-security")


@needs_apt
def test_security_update_pending_red(tmp_path, run_checks):
    conf = aptrepo.publish(tmp_path / "apt")
    entry = run_checks(apt_config(tmp_path, conf), *WEEKLY).one("security_updates_pending")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == (
        "1 security updates pending, limit 0: "
        "opscheck-fake-libssl 1.0-2 (Debian-Security:12/stable-security)"
    )


@needs_apt
def test_no_security_update_pending_green(tmp_path, run_checks):
    """An update from a regular suite is pending; none from a security one."""
    conf = aptrepo.publish(tmp_path / "apt", release=aptrepo.REGULAR)
    run = run_checks(apt_config(tmp_path, conf), *WEEKLY)
    entry = run.one("security_updates_pending")
    assert entry["outcome"] == "passed", entry
    ev = {e["name"]: e["value"] for e in entry["evidence"]}
    assert ev == {"updates pending": 1, "security updates pending": 0}


@needs_apt
def test_nothing_pending_green(tmp_path, run_checks):
    conf = aptrepo.prepare(tmp_path / "apt")
    run = run_checks(apt_config(tmp_path, conf), "-m", "weekly or monthly", "-k", "updates")
    assert run.outcomes() == {
        "security_updates_pending": "passed",
        "system_updates_applied": "passed",
    }, run.report


@needs_apt
def test_monthly_red_on_a_list_dated_45_days_ago(tmp_path, run_checks):
    conf = aptrepo.publish(tmp_path / "apt", date=aptrepo.days_ago(45))
    entry = run_checks(apt_config(tmp_path, conf), *MONTHLY).one("system_updates_applied")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == "opscheck-fake-libssl 1.0-2 pending is 45 days, limit 30 days"


@needs_apt
def test_monthly_green_on_a_fresh_list(tmp_path, run_checks):
    conf = aptrepo.publish(tmp_path / "apt", date=aptrepo.days_ago(3))
    entry = run_checks(apt_config(tmp_path, conf), *MONTHLY).one("system_updates_applied")
    assert entry["outcome"] == "passed", entry
    [age] = [e for e in entry["evidence"] if e["name"].startswith("opscheck-fake-libssl")]
    assert age["value"] == 3.0 and age["limit"] == 30


@needs_apt
def test_monthly_red_when_first_seen_long_ago_though_lists_are_fresh(tmp_path, run_checks):
    """Before (list dates alone): passed. `apt-get update` runs daily so the list is a day
    old, but this suite saw the same candidate pending 40 days ago."""
    conf = aptrepo.publish(tmp_path / "apt", date=aptrepo.days_ago(1))
    state = tmp_path / "reports-0" / ".state"  # the run's --reports-dir (tests/conftest.py)
    state.mkdir(parents=True)
    seen = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    (state / packages.HISTORY).write_text(json.dumps({"opscheck-fake-libssl 1.0-2": seen}))
    entry = run_checks(apt_config(tmp_path, conf), *MONTHLY).one("system_updates_applied")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == "opscheck-fake-libssl 1.0-2 pending is 40 days, limit 30 days"


@needs_apt
def test_weekly_run_remembers_what_it_saw(tmp_path):
    conf = aptrepo.publish(tmp_path / "apt")
    result = packages.simulate(str(conf))
    first = packages.remember(tmp_path / "state", result.security, packages.now())
    later = packages.remember(
        tmp_path / "state", result.security, packages.now() + timedelta(days=7)
    )
    assert first == later and list(first) == ["opscheck-fake-libssl 1.0-2"]
    assert packages.remember(tmp_path / "state", [], packages.now()) == {}


def test_a_host_without_apt_skips(tmp_path, run_checks):
    (tmp_path / "bin").mkdir()
    cfg = config(tmp_path, paths={"app_dir": str(tmp_path)})
    run = run_checks(
        cfg, "-m", "weekly or monthly", "-k", "updates", env={"PATH": str(tmp_path / "bin")}
    )
    for check in ("security_updates_pending", "system_updates_applied"):
        entry = run.one(check)
        assert entry["outcome"] == "skipped", entry
        assert "no apt-get on this host (only Debian and Ubuntu are supported)" in entry["message"]


@needs_apt
def test_a_missing_apt_config_is_an_error(tmp_path, run_checks):
    cfg = apt_config(tmp_path, tmp_path / "nope.conf")
    entry = run_checks(cfg, *WEEKLY).one("security_updates_pending")
    assert entry["outcome"] == "error", entry
    assert entry["message"].endswith(f"apt_config {tmp_path / 'nope.conf'}: no such file")


@needs_apt
def test_the_host_apt_state_is_not_touched(tmp_path):
    """The private world's update writes its lists only below its own root."""
    host_lists = packages.lists_dir()
    before = (
        {p.name: p.stat().st_mtime for p in host_lists.glob("*")} if host_lists.is_dir() else {}
    )
    conf = aptrepo.publish(tmp_path / "apt")
    assert packages.lists_dir(str(conf)) == tmp_path / "apt" / "state" / "lists"
    after = {p.name: p.stat().st_mtime for p in host_lists.glob("*")} if host_lists.is_dir() else {}
    assert before == after


# ---- key_rotation_age ------------------------------------------------------------------------


def registry(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "api_keys.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return config(tmp_path, paths={"app_dir": str(tmp_path), "key_registry": str(path)})


def days_ago(n: int) -> str:
    return (datetime.now(UTC) - timedelta(days=n)).date().isoformat()


def test_keys_green(tmp_path, run_checks):
    cfg = registry(
        tmp_path, {"anthropic": {"created": days_ago(10)}, "openai": {"created": days_ago(89)}}
    )
    entry = run_checks(cfg, *KEYS).one("key_rotation_age")
    assert entry["outcome"] == "passed", entry
    ages = {e["name"]: e["value"] for e in entry["evidence"]}
    assert 9 < ages["key anthropic age"] < 11 and 88 < ages["key openai age"] < 90


def test_an_old_key_fails_naming_it(tmp_path, run_checks):
    cfg = registry(
        tmp_path, {"anthropic": {"created": days_ago(200)}, "openai": {"created": days_ago(5)}}
    )
    entry = run_checks(cfg, *KEYS).one("key_rotation_age")
    assert entry["outcome"] == "failed", entry
    assert entry["message"] == "key anthropic age is 200 days, limit 90 days"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (None, "no such file"),
        ('{"anthropic": {"created": "2026-01-01"}', "not valid JSON (line 1)"),
        ("[]", "not an object of key names"),
        ("{}", "lists no keys"),
    ],
)
def test_an_unreadable_registry_is_an_error(tmp_path, run_checks, doc, reason):
    cfg = registry(tmp_path, doc or "")
    path = tmp_path / "api_keys.json"
    if doc is None:
        path.unlink()
    entry = run_checks(cfg, *KEYS).one("key_rotation_age")
    assert entry["outcome"] == "error", entry
    assert entry["message"] == f"setup error: no verdict: key registry {path}: {reason}"


def test_a_future_or_missing_date_is_an_error(tmp_path, run_checks):
    future = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    cfg = registry(
        tmp_path,
        {"anthropic": {"created": future}, "openai": {}, "redis": {"created": "last spring"}},
    )
    entry = run_checks(cfg, *KEYS).one("key_rotation_age")
    assert entry["outcome"] == "error", entry
    assert entry["message"] == (
        f"setup error: no verdict: {tmp_path / 'api_keys.json'}: key anthropic: created "
        f"{future} is in the future; key openai: has no created date; key redis: created is "
        "not an ISO date"
    )


def test_a_key_value_in_the_registry_is_never_shown(tmp_path, run_checks):
    value = "sk-ant-api03-" + "Zq9" * 30
    cfg = registry(tmp_path, {"anthropic": {"created": days_ago(200), "key": value}})
    run = run_checks(cfg, *KEYS)
    assert run.one("key_rotation_age")["outcome"] == "failed"
    for f in run.reports_dir.rglob("*"):
        if f.is_file():
            assert value not in f.read_text(errors="replace"), f
    assert value not in run.stdout + run.stderr


# ---- sandbox faults: the weekly and monthly matrix rows for these checks -------------------

MINE = "dependency or outdated or security_updates or system_updates or key_rotation"
MATRIX = {
    (): set(),
    ("vulnerable-pin",): {"dependency_vulnerabilities"},
    ("unpinned-dependency",): {"dependency_vulnerabilities"},
    ("stale-critical-package",): {"outdated_critical_packages"},
    ("old-key",): {"key_rotation_age"},
    ("key-value-in-registry",): set(),
    ("security-update-pending",): {"security_updates_pending"},
    ("stale-security-update",): {"security_updates_pending", "system_updates_applied"},
}


@pytest.mark.parametrize("faults", list(MATRIX), ids=lambda f: "+".join(f) or "healthy")
def test_sandbox_faults_fail_exactly_their_checks(sandbox_factory, run_checks, faults):
    if "security" in "".join(faults) and aptrepo.tools_missing():
        pytest.skip(f"needs {', '.join(aptrepo.tools_missing())}")
    sb = sandbox_factory("down", *faults)
    run = run_checks(sb.config, "-m", "weekly or monthly", "-k", MINE)
    assert len(run.outcomes()) == 5, run.report
    assert run.failed_ids() == MATRIX[faults], run.outcomes()
    text = json.dumps(run.report)
    for secret in env_secrets(sb.root / "app" / ".env"):
        assert secret not in text
