"""Every daily check proven both ways: green on a healthy sandbox, red on one broken
in exactly the way the check exists to catch, with the measured value and the limit
named in the failure message."""

from __future__ import annotations

import os
import re

import pytest

DAILY = ["-m", "daily"]


def only(check_id: str) -> list[str]:
    return [*DAILY, "-k", f"test_{check_id}"]


# ---- health_endpoint_up ------------------------------------------------------------------


def test_health_endpoint_up_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("health_endpoint_up"))
    entry = run.one("health_endpoint_up")
    assert entry["outcome"] == "passed", entry
    assert {e["name"] for e in entry["evidence"]} == {"HTTP status", "response time"}
    assert run.exit_code == 0


def test_health_endpoint_up_red_when_down(sandbox_factory, run_checks):
    sb = sandbox_factory("down")
    run = run_checks(sb.config, *only("health_endpoint_up"))
    entry = run.one("health_endpoint_up")
    assert entry["outcome"] == "failed"
    assert "cannot connect: Connection refused" in entry["message"]
    assert re.search(r"after [\d.]+ ms, limit 2000 ms", entry["message"]), entry["message"]
    assert run.exit_code == 1


def test_health_endpoint_up_red_when_slow(sandbox_factory, run_checks):
    sb = sandbox_factory("slow", timeout_s=1.0)
    run = run_checks(sb.config, *only("health_endpoint_up"))
    entry = run.one("health_endpoint_up")
    assert entry["outcome"] == "failed"
    msg = entry["message"]
    no_answer = r"no answer within 1 s \(status line and headers not complete\)"
    assert re.search(no_answer + r" after 1\d{3} ms, limit 1000 ms", msg), msg


def test_health_endpoint_up_red_on_500(sandbox_factory, run_checks):
    sb = sandbox_factory("health-500")
    run = run_checks(sb.config, *only("health_endpoint_up"))
    entry = run.one("health_endpoint_up")
    assert entry["outcome"] == "failed"
    assert "answered 500 (HEALTH_CHECK_FAILED), expected 200" in entry["message"]


# ---- health_components_healthy -----------------------------------------------------------


def test_health_components_healthy_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("health_components_healthy"))
    entry = run.one("health_components_healthy")
    assert entry["outcome"] == "passed", entry
    names = {e["name"] for e in entry["evidence"]}
    assert names == {"status", "llm_client", "vector_database", "workflow"}


def test_health_components_healthy_red_when_degraded(sandbox_factory, run_checks):
    """/health answers 200 with status degraded: a status-code check would miss it."""
    sb = sandbox_factory("degraded")
    run = run_checks(sb.config, *only("health_components_healthy"))
    entry = run.one("health_components_healthy")
    assert entry["outcome"] == "failed"
    assert "status is 'degraded', expected 'healthy'" in entry["message"]
    assert "component vector_database is 'error: Could not connect" in entry["message"]
    assert "llm_client" not in entry["message"]


def test_health_components_healthy_red_on_corrupt_chroma(sandbox_factory, run_checks):
    """As the real service: a corrupt chroma.sqlite3 puts vector_database in error."""
    sb = sandbox_factory()
    db = sb.root / "app" / "chroma_db" / "chroma.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    run = run_checks(sb.config, *only("health_components_healthy"))
    entry = run.one("health_components_healthy")
    assert entry["outcome"] == "failed"
    assert "component vector_database is 'error: file is not a database'" in entry["message"]


# ---- cpu_usage ---------------------------------------------------------------------------


@pytest.mark.serial
def test_cpu_usage_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("cpu_usage"))
    entry = run.one("cpu_usage")
    assert entry["outcome"] == "passed", entry
    (ev,) = entry["evidence"]
    assert ev["unit"] == "%" and ev["limit"] == 80 and 0 <= ev["value"] <= 80


@pytest.mark.serial
def test_cpu_usage_red_under_cpu_hog(sandbox_factory, run_checks):
    """Busy loops on every core (bounded, stopped by PID) push CPU over 80 %."""
    sb = sandbox_factory("cpu-hog")
    run = run_checks(sb.config, *only("cpu_usage"))
    entry = run.one("cpu_usage")
    assert entry["outcome"] == "failed", entry
    m = re.fullmatch(r"CPU busy over 1 s is ([\d.]+) %, limit 80 %", entry["message"])
    assert m and float(m.group(1)) > 80, entry["message"]


# ---- memory_usage ------------------------------------------------------------------------


def test_memory_usage_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("memory_usage"))
    entry = run.one("memory_usage")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"][0]["limit"] == 85


def test_memory_usage_red_above_limit(sandbox, run_checks):
    """Filling 85 % of a shared CI machine's memory is not safe, so the limit comes down
    below the real measured use instead: the probe still reads the host for real."""
    cfg = sandbox.with_config("[thresholds]\nmemory_percent = 0.01\n")
    run = run_checks(cfg, *only("memory_usage"))
    entry = run.one("memory_usage")
    assert entry["outcome"] == "failed"
    m = re.fullmatch(r"memory used is ([\d.]+) %, limit 0.01 %", entry["message"])
    assert m and float(m.group(1)) > 0.01, entry["message"]


# ---- disk_usage --------------------------------------------------------------------------


def test_disk_usage_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("disk_usage"))
    entries = run.checks("disk_usage")
    assert entries and all(e["outcome"] == "passed" for e in entries), entries
    assert entries[0]["nodeid"].endswith("[local-/]")
    names = {e["name"] for e in entries[0]["evidence"]}
    assert names == {"/ space used", "/ inodes used"}


@pytest.fixture
def small_mount(tmpfs):
    """A real 4 MiB tmpfs with 64 inodes, so it can be filled."""
    return tmpfs("size=4m,nr_inodes=64")


def test_disk_usage_red_when_space_full(sandbox, run_checks, small_mount):
    (small_mount / "fill").write_bytes(b"\0" * (int(3.85 * 2**20)))
    cfg = sandbox.with_config(f'[paths]\ndisk_mounts = ["/", "{small_mount}"]\n')
    run = run_checks(cfg, *only("disk_usage"))
    outcomes = {e["nodeid"].rsplit("[", 1)[1]: e for e in run.checks("disk_usage")}
    assert outcomes["local-/]"]["outcome"] == "passed"
    bad = outcomes[f"local-{small_mount}]"]
    assert bad["outcome"] == "failed"
    assert re.search(rf"{small_mount} space used is 9\d\.\d %, limit 90 %", bad["message"])


def test_disk_usage_red_when_inodes_run_out(sandbox, run_checks, small_mount):
    for n in range(60):
        (small_mount / f"f{n}").touch()
    cfg = sandbox.with_config(f'[paths]\ndisk_mounts = ["{small_mount}"]\n')
    run = run_checks(cfg, *only("disk_usage"))
    bad = next(e for e in run.checks("disk_usage") if str(small_mount) in e["nodeid"])
    assert bad["outcome"] == "failed"
    assert re.search(rf"{small_mount} inodes used is 9\d(\.\d+)? %, limit 90 %", bad["message"])
    assert "space used" not in bad["message"]


# ---- env_file_mode -----------------------------------------------------------------------


def test_env_file_mode_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("env_file_mode"))
    entry = run.one("env_file_mode")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"][0]["value"] == "600"


def test_env_file_mode_red_when_world_readable(sandbox_factory, run_checks):
    sb = sandbox_factory("env-mode")
    run = run_checks(sb.config, *only("env_file_mode"))
    entry = run.one("env_file_mode")
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"{sb.root}/app/.env is mode 644: group read, others read beyond 600"


def test_env_file_mode_green_when_stricter_than_600(sandbox, run_checks):
    """Before: failed ('is mode 400, expected 600'); read-only for its owner opens nothing."""
    env = sandbox.root / "app" / ".env"
    env.chmod(0o400)
    entry = run_checks(sandbox.config, *only("env_file_mode")).one("env_file_mode")
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"][0] == {
        "name": f"{env} mode",
        "value": "400",
        "unit": "",
        "limit": "600 or stricter",
    }


@pytest.mark.parametrize(
    ("mode", "words"),
    [(0o640, "group read"), (0o602, "others write"), (0o700, "owner execute"), (0o4600, "setuid")],
)
def test_env_file_mode_red_on_any_bit_beyond_600(sandbox, run_checks, mode, words):
    env = sandbox.root / "app" / ".env"
    env.chmod(mode)
    entry = run_checks(sandbox.config, *only("env_file_mode")).one("env_file_mode")
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"{env} is mode {mode:03o}: {words} beyond 600"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_env_file_mode_red_when_owned_by_another_user(sandbox_factory, run_checks):
    sb = sandbox_factory("env-owner")
    run = run_checks(sb.config, *only("env_file_mode"))
    entry = run.one("env_file_mode")
    assert entry["outcome"] == "failed"
    assert entry["message"].endswith("/app/.env is owned by nobody, expected root")


def test_env_file_mode_red_when_missing(sandbox, run_checks):
    (sandbox.root / "app" / ".env").unlink()
    run = run_checks(sandbox.config, *only("env_file_mode"))
    assert run.one("env_file_mode")["message"].endswith("/app/.env: does not exist")


# ---- data_dir_modes ----------------------------------------------------------------------


def test_data_dir_modes_green(sandbox, run_checks):
    run = run_checks(sandbox.config, *only("data_dir_modes"))
    entry = run.one("data_dir_modes")
    assert entry["outcome"] == "passed", entry
    assert [e["value"] for e in entry["evidence"]] == ["755", "755", "755"]


def test_data_dir_modes_red_when_world_writable(sandbox_factory, run_checks):
    sb = sandbox_factory("dir-mode")
    run = run_checks(sb.config, *only("data_dir_modes"))
    entry = run.one("data_dir_modes")
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"{sb.root}/app/logs is mode 777: group write, others write beyond 755"
    )


def test_data_dir_modes_green_when_stricter_or_setgid(sandbox, run_checks):
    """Before: failed ('is mode 2750, expected 755 or 750'); setgid and sticky open nothing."""
    app = sandbox.root / "app"
    modes = {"data": 0o2750, "logs": 0o700, "chroma_db": 0o1755}
    for name, mode in modes.items():
        (app / name).chmod(mode)
    entry = run_checks(sandbox.config, *only("data_dir_modes")).one("data_dir_modes")
    assert entry["outcome"] == "passed", entry
    assert [e["value"] for e in entry["evidence"]] == ["2750", "700", "1755"]


def test_data_dir_modes_red_on_group_write_and_setuid(sandbox, run_checks):
    app = sandbox.root / "app"
    (app / "data").chmod(0o2775)
    (app / "logs").chmod(0o4755)
    entry = run_checks(sandbox.config, *only("data_dir_modes")).one("data_dir_modes")
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"{app}/data is mode 2775: group write beyond 755; "
        f"{app}/logs is mode 4755: setuid beyond 755"
    )
