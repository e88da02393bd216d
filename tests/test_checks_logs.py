"""The log checks proven both ways: green on the sandbox's healthy week of logs, red on
logs broken in the one way each check exists to catch."""

from __future__ import annotations

import re

import pytest

from opscheck.sandbox import control
from tests.conftest import Run, load_report, run_pytest

LOG_CHECKS = "-m", "daily or weekly"


def only(check_id: str) -> list[str]:
    return [*LOG_CHECKS, "-k", f"test_{check_id}"]


@pytest.fixture
def offline(sandbox_factory):
    def make(*faults: str):
        return sandbox_factory("down", *faults)

    return make


@pytest.fixture(scope="module")
def healthy(golden, tmp_path_factory):
    """One run of every log check over a healthy sandbox, shared by the green tests."""
    root = tmp_path_factory.mktemp("healthy-logs")
    config = control.up(root / "sb", control.Options(faults=("down",), template=golden))
    reports = root / "reports"
    proc = run_pytest(
        [*LOG_CHECKS, "-k", "logs", "--ops-config", str(config), "--reports-dir", str(reports)]
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, reports, load_report(reports))


LOG_IDS = [
    "error_rate",
    "avg_response_time",
    "p95_response_time",
    "slow_requests",
    "throughput_normal",
    "error_log_review",
    "warning_log_review",
    "abnormal_access",
    "llm_usage",
    "hourly_latency_profile",
]


@pytest.mark.parametrize("check_id", LOG_IDS)
def test_log_check_green(healthy, check_id):
    entry = healthy.one(check_id)
    assert entry["outcome"] == "passed", entry
    assert entry["evidence"], "a pass records what it measured"


def test_error_rate_red(offline, run_checks):
    entry = run_checks(offline("error-heavy-log").config, *only("error_rate")).one("error_rate")
    assert entry["outcome"] == "failed"
    m = re.fullmatch(
        r"5xx share, last 24 h \(access log .+access\.log\) is ([\d.]+) %, limit 1 %",
        entry["message"],
    )
    assert m and float(m.group(1)) > 3, entry["message"]


def test_error_rate_from_app_log_counts_request_failed(offline, run_checks):
    """Without an access log, `Request failed` ERROR lines count as 5xx responses."""
    sb = offline("error-heavy-log")
    cfg = sb.with_config('[paths]\naccess_log = ""\n')
    entry = run_checks(cfg, *only("error_rate")).one("error_rate")
    assert entry["outcome"] == "failed"
    assert re.search(
        r"5xx share, last 24 h \(app log .+app\.log\) is [\d.]+ %, limit 1 %", entry["message"]
    )


def test_error_rate_red_when_log_is_empty(offline, run_checks):
    sb = offline()
    cfg = sb.with_config('[paths]\naccess_log = ""\n')
    for name in ("app.log", "app.log.1"):
        (sb.root / "app" / "logs" / name).write_bytes(b"")
    entry = run_checks(cfg, *only("error_rate")).one("error_rate")
    assert entry["outcome"] == "failed"
    assert entry["message"].startswith("no responses logged in the last 24 h in the app log")


def test_avg_and_p95_and_slow_red_on_slow_log(offline, run_checks):
    run = run_checks(
        offline("slow-log").config,
        *LOG_CHECKS,
        "-k",
        "avg_response_time or p95_response_time or slow_requests",
    )
    avg, p95, slow = (
        run.one(i) for i in ("avg_response_time", "p95_response_time", "slow_requests")
    )
    assert re.fullmatch(
        r"mean response time, last 24 h \(access log \(\$request_time, client "
        r"side\)\) is \d+ ms, limit 3000 ms",
        avg["message"],
    ), avg["message"]
    assert re.fullmatch(
        r"p95 response time, last 24 h \(access log \(\$request_time, client "
        r"side\)\) is \d+ ms, limit 5000 ms",
        p95["message"],
    ), p95["message"]
    assert re.fullmatch(r"share over 5000 ms is [\d.]+ %, limit 1 %", slow["message"])


def test_hourly_latency_profile_red_on_slow_log(offline, run_checks):
    run = run_checks(offline("slow-log").config, *only("hourly_latency_profile"))
    entry = run.one("hourly_latency_profile")
    assert entry["outcome"] == "failed"
    assert re.match(
        r"worst hour's p95 \(\d{4}-\d\d-\d\d \d\d:00, .*\) is \d+ ms, limit 5000 ms",
        entry["message"],
    ), entry["message"]


def test_throughput_normal_red_on_spike(offline, run_checks):
    entry = run_checks(offline("spike").config, *only("throughput_normal")).one("throughput_normal")
    assert entry["outcome"] == "failed"
    m = re.fullmatch(r"requests, last 24 h is (\d+), limit (\d+)", entry["message"])
    assert m and int(m.group(1)) > int(m.group(2)), entry["message"]


def test_throughput_normal_red_when_traffic_stops(offline, run_checks):
    sb = offline()
    for name in ("access.log", "access.log.1"):
        (sb.root / "nginx" / name).write_bytes(b"")
    entry = run_checks(sb.config, *only("throughput_normal")).one("throughput_normal")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(r"requests, last 24 h is 0, minimum \d+(\.\d+)?", entry["message"])


def test_error_log_review_red_on_new_signature(offline, run_checks):
    entry = run_checks(offline("new-error").config, *only("error_log_review")).one(
        "error_log_review"
    )
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        "1 new ERROR signatures in the last 24 h: \"Collection '…' dimension mismatch: "
        'expected <n>, got <n>" x5'
    )


def test_error_log_review_quiet_on_recurring_noise(offline, run_checks):
    """chromadb telemetry ERROR lines come with every client creation: never new."""
    entry = run_checks(offline("error-heavy-log").config, *only("error_log_review")).one(
        "error_log_review"
    )
    assert entry["outcome"] == "passed", entry
    assert any("telemetry" in e["name"] for e in entry["evidence"])


def test_warning_log_review_red_on_storm(offline, run_checks):
    entry = run_checks(offline("warning-storm").config, *only("warning_log_review")).one(
        "warning_log_review"
    )
    assert entry["outcome"] == "failed"
    m = re.fullmatch(
        r"WARNING lines, last 24 h is (\d+) lines, limit (\d+) lines", entry["message"]
    )
    assert m and int(m.group(1)) > int(m.group(2)), entry["message"]


def test_abnormal_access_red_on_scanner(offline, run_checks):
    entry = run_checks(offline("scanner").config, *only("abnormal_access")).one("abnormal_access")
    assert entry["outcome"] == "failed"
    msg = entry["message"]
    assert re.search(r"198\.51\.100\.66 requests a minute is \d{3}, limit 100", msg)
    assert "198.51.100.66 /.env 200 answered with success 1 time(s)" in msg
    assert "198.51.100.66 /.git/config 200 answered with success" in msg
    assert "198.51.100.66 401/403 a minute is 30, limit 20" in msg
    assert "/wp-admin/" not in msg, "a 404 on a probe path is not a success"


def test_abnormal_access_skips_without_access_log(offline, run_checks):
    cfg = offline().with_config('[paths]\naccess_log = ""\n')
    entry = run_checks(cfg, *only("abnormal_access")).one("abnormal_access")
    assert entry["outcome"] == "skipped"
    assert entry["message"] == "no access log configured ([paths] access_log)"


def test_llm_usage_red_on_key_in_log(offline, run_checks):
    run = run_checks(offline("key-in-log").config, *only("llm_usage"))
    entry = run.one("llm_usage")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"an API key pattern appears in the logs at app\.log:\d+ \(value not "
        r"shown\)",
        entry["message"],
    ), entry["message"]
    texts = [run.stdout] + [p.read_text() for p in run.reports_dir.rglob("*") if p.is_file()]
    assert all("LEAKEDkey" not in t for t in texts)


def test_llm_usage_red_over_daily_limit(offline, run_checks):
    """Ten thousand generations would take hours to log here; the limit comes down instead."""
    cfg = offline().with_config("[thresholds]\nllm_calls_per_day = 50\n")
    entry = run_checks(cfg, *only("llm_usage")).one("llm_usage")
    assert entry["outcome"] == "failed"
    m = re.fullmatch(r"generation requests, last 24 h is (\d+), limit 50", entry["message"])
    assert m and int(m.group(1)) > 50


def test_missing_log_fails_every_log_check_with_a_reason(offline, run_checks):
    sb = offline()
    cfg = sb.with_config(f'[paths]\napp_log = "{sb.root}/nope/app.log"\naccess_log = ""\n')
    run = run_checks(cfg, *LOG_CHECKS, "-k", "logs")
    for check_id in LOG_IDS:
        entry = run.one(check_id)
        if check_id == "abnormal_access":
            assert entry["outcome"] == "skipped"
            continue
        assert entry["outcome"] == "failed", entry
        assert f"log dir {sb.root}/nope does not exist" in entry["message"]
