"""The log checks proven both ways: green on the sandbox's healthy week of logs, red on
logs broken in the one way each check exists to catch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opscheck.sandbox import control
from tests.conftest import Run, in_one_clock_hour, load_report, run_pytest

LOG_CHECKS = "-m", "daily or weekly"


def only(check_id: str) -> list[str]:
    return [*LOG_CHECKS, "-k", f"test_{check_id}"]


@pytest.fixture
def offline(sandbox_factory):
    def make(*faults: str):
        return sandbox_factory("down", *faults)

    return make


@pytest.fixture(scope="module")
def healthy(goldens, tmp_path_factory):
    """One run of every log check over a healthy sandbox, shared by the green tests."""
    root = tmp_path_factory.mktemp("healthy-logs")
    config = control.up(root / "sb", control.Options(faults=("down",), template=goldens()))
    try:  # "down" stops the API only: the sandbox's redis-server runs until control.down
        reports = root / "reports"
        proc = run_pytest(
            [*LOG_CHECKS, "-k", "logs", "--ops-config", str(config), "--reports-dir", str(reports)]
        )
    finally:
        control.down(root / "sb")
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
    "llm_api_errors",
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
        r"failed share \(5xx \+ 499\), last 24 h \(access log .+access\.log\) is ([\d.]+) %, "
        r"limit 1 %",
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
        r"failed share \(5xx \+ 499\), last 24 h \(app log .+app\.log\) is [\d.]+ %, limit 1 %",
        entry["message"],
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
        r"mean response time, last 24 h \(access log .+access\.log, access log "
        r"\(\$request_time, client side\)\) is \d+ ms, limit 3000 ms",
        avg["message"],
    ), avg["message"]
    assert re.fullmatch(
        r"p95 response time, last 24 h \(access log .+access\.log, access log "
        r"\(\$request_time, client side\)\) is \d+ ms, limit 5000 ms",
        p95["message"],
    ), p95["message"]
    assert re.fullmatch(r"share over 5000 ms \(.+\) is [\d.]+ %, limit 1 %", slow["message"])


def test_hourly_latency_profile_red_on_slow_log(offline, run_checks):
    run = run_checks(offline("slow-log").config, *only("hourly_latency_profile"))
    entry = run.one("hourly_latency_profile")
    assert entry["outcome"] == "failed"
    assert re.match(
        r"worst hour's p95 \(\d{4}-\d\d-\d\d \d\d:00 UTC, .*\) is \d+ ms, limit 5000 ms",
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
    noise = {e["name"]: e["value"] for e in entry["evidence"]}
    assert noise["ERROR lines ignored as noise ([logs] ignore_errors), last 24 h"] > 100


def test_warning_log_review_red_on_storm(offline, run_checks):
    entry = run_checks(offline("warning-storm").config, *only("warning_log_review")).one(
        "warning_log_review"
    )
    assert entry["outcome"] == "failed"
    m = re.fullmatch(
        r"WARNING lines, last 24 h \(limit: 3x the median \d+, at least 20\) is (\d+) lines, "
        r"limit (\d+) lines",
        entry["message"],
    )
    assert m and int(m.group(1)) > int(m.group(2)), entry["message"]


def test_abnormal_access_red_on_scanner(offline, run_checks):
    entry = run_checks(offline("scanner").config, *only("abnormal_access")).one("abnormal_access")
    assert entry["outcome"] == "failed"
    msg = entry["message"]
    assert re.search(r"198\.51\.100\.66 requests in 60 s is \d{3}, limit 100", msg)
    assert "198.51.100.66 /.env 200 answered with success 1 time(s)" in msg
    assert "198.51.100.66 /.git/config 200 answered with success" in msg
    assert "198.51.100.66 401/403 in 60 s is 30, limit 20" in msg
    assert "/wp-admin/" not in msg, "a 404 on a probe path is not a success"


def test_abnormal_access_skips_without_access_log(offline, run_checks):
    cfg = offline().with_config('[paths]\naccess_log = ""\n')
    entry = run_checks(cfg, *only("abnormal_access")).one("abnormal_access")
    assert entry["outcome"] == "skipped"
    assert entry["message"] == "no access log configured ([paths] access_log)"


def test_llm_usage_red_on_key_in_log(offline, run_checks):
    """The key was logged two hours ago: before 02:00 that is yesterday's app.log.1."""
    run = run_checks(offline("key-in-log").config, *only("llm_usage"))
    entry = run.one("llm_usage")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"an API key pattern appears in the logs at app\.log(?:\.1)?:\d+ \(value not "
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
    m = re.fullmatch(
        r"LLM calls, last 24 h \(httpx call lines\) is (\d+), limit 50", entry["message"]
    )
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


APP_LOG_CHECKS = ["error_log_review", "warning_log_review", "llm_usage", "llm_api_errors"]


def test_error_rate_counts_multi_line_request_failed(offline, run_checks):
    """A `Request failed` whose exception text spans lines (the duration on its last
    line) is a 5xx; it was not counted, and 5 % of failures passed at 0 %."""
    cfg = offline("multiline-failures").with_config('[paths]\naccess_log = ""\n')
    entry = run_checks(cfg, *only("error_rate")).one("error_rate")
    assert entry["outcome"] == "failed", entry
    m = re.search(r"\(app log .+app\.log\) is ([\d.]+) %, limit 1 %", entry["message"])
    assert m and float(m.group(1)) > 1.5, entry["message"]


def test_llm_api_errors_red_on_a_revoked_key(offline, run_checks):
    entry = run_checks(offline("key-revoked-log").config, *only("llm_api_errors")).one(
        "llm_api_errors"
    )
    assert entry["outcome"] == "failed"
    assert re.search(
        r"non-2xx LLM/embeddings calls, last 24 h is [\d.]+ %, limit 5 %", entry["message"]
    )
    assert re.search(
        r"calls rejected \(a revoked or wrong API key\?\): "
        r"api\.anthropic\.com/v1/messages 401 x\d+",
        entry["message"],
    ), entry["message"]


def test_llm_api_errors_red_when_the_llm_is_overloaded(offline, run_checks):
    entry = run_checks(offline("llm-overloaded-log").config, *only("llm_api_errors")).one(
        "llm_api_errors"
    )
    assert entry["outcome"] == "failed"
    m = re.fullmatch(
        r"non-2xx LLM/embeddings calls, last 24 h is ([\d.]+) %, limit 5 %", entry["message"]
    )
    assert m and float(m.group(1)) > 10, entry["message"]


def test_llm_usage_counts_llm_calls_not_generations(healthy):
    entry = healthy.one("llm_usage")
    values = {e["name"]: e["value"] for e in entry["evidence"]}
    calls = values["LLM calls, last 24 h (httpx call lines)"]
    generations = values["generation requests, last 24 h"]
    assert 3 * generations <= calls < 4 * generations, "three calls a generation, and retries"
    assert values["embeddings calls, last 24 h"] > 0


def test_new_telemetry_event_is_noise_by_default_and_new_without_the_ignore_list(
    offline, run_checks
):
    """A restart after a quiet week writes chromadb's CollectionQueryEvent telemetry
    ERROR: it paged someone as a "new" error; every event name is noise by default."""
    sb = offline("telemetry-restart")
    entry = run_checks(sb.config, *only("error_log_review")).one("error_log_review")
    assert entry["outcome"] == "passed", entry
    cfg = sb.with_config("[logs]\nignore_errors = []\n")
    entry = run_checks(cfg, *only("error_log_review")).one("error_log_review")
    assert entry["outcome"] == "failed"
    assert "Failed to send telemetry event CollectionQueryEvent" in entry["message"]


def test_logs_in_another_zone_ask_for_service_timezone(offline, run_checks):
    """App log stamped in KST on a UTC machine: its last 9 h looked like the future and
    were left out; now every app log check fails naming the fix, and with the zone set
    they pass."""
    sb = offline("logs-in-kst")
    if datetime.now().astimezone().utcoffset() == timedelta(hours=9):
        pytest.skip("this machine is in KST itself")
    run = run_checks(sb.config, *LOG_CHECKS, "-k", " or ".join(APP_LOG_CHECKS))
    for check_id in APP_LOG_CHECKS:
        entry = run.one(check_id)
        assert entry["outcome"] == "failed", entry
        assert "ahead of now" in entry["message"]
        assert "set service.timezone" in entry["message"]
    cfg = sb.with_config('[service]\ntimezone = "Asia/Seoul"\n')
    run = run_checks(cfg, *LOG_CHECKS, "-k", " or ".join(APP_LOG_CHECKS))
    assert {c: run.one(c)["outcome"] for c in APP_LOG_CHECKS} == dict.fromkeys(
        APP_LOG_CHECKS, "passed"
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("junk-log", r"could not be parsed, limit 1 %"),
        ("fifo-log", r"app\.log is a FIFO, not a regular file"),
        ("truncated-log-gz", r"app\.log\.2\.gz: read stopped early"),
    ],
)
def test_a_partly_unreadable_app_log_fails_every_app_log_check(offline, run_checks, fault, reason):
    """Each of these passed with exit 0: random bytes as the log, a FIFO beside the
    rotated copies, a rotated copy cut to half."""
    run = run_checks(offline(fault).config, *LOG_CHECKS, "-k", " or ".join(APP_LOG_CHECKS))
    for check_id in APP_LOG_CHECKS:
        entry = run.one(check_id)
        assert entry["outcome"] == "failed", entry
        assert re.search(reason, entry["message"]), entry["message"]


def test_dateext_and_xz_rotations_read_as_numbered_ones(offline, run_checks):
    """logrotate's dateext names and xz were not read: the 7 days before looked empty.
    (Both layouts read within one clock hour: compared with the module's shared healthy
    run, read minutes earlier, an hour's turn between them made its counts differ.)"""

    def both():
        plain = run_checks(offline().config, *LOG_CHECKS, "-k", "logs")
        return plain, run_checks(offline("dateext-logs").config, *LOG_CHECKS, "-k", "logs")

    healthy, run = in_one_clock_hour(both)
    for check_id in LOG_IDS:
        assert run.one(check_id)["outcome"] == healthy.one(check_id)["outcome"], check_id

    def earlier(r):
        ev = {e["name"]: e["value"] for e in r.one("throughput_normal")["evidence"]}
        return ev["requests in each earlier 24 h"]

    assert earlier(run) == earlier(healthy)
    assert "0" not in earlier(run).split(", ")


def _quiet_week(root: Path, today: list[str]) -> None:
    """A quiet deployment: one request a day for a week, and `today`'s lines now."""
    logs = root / "app" / "logs"
    for p in logs.glob("app.log*"):
        p.unlink()
    now = datetime.now()

    def stamp(t):
        return f"{t:%Y-%m-%d %H:%M:%S},000"

    lines = []
    for d in range(8, 0, -1):
        t = now - timedelta(days=d, hours=1)
        lines += [f"{stamp(t)} - src.api.main - INFO - Request: GET /health",
                  f"{stamp(t)} - src.api.main - INFO - Response: 200 - 0.010s"]  # fmt: skip
    t = now - timedelta(hours=1)
    lines += [f"{stamp(t)} - {text}" for text in today]
    (logs / "app.log").write_text("\n".join(lines) + "\n")


def test_warning_floor_on_a_quiet_deployment(offline, run_checks):
    """Median 0 WARNING lines a day: one warning was 'over 3x the median' and paged."""
    sb = offline()
    cfg = sb.with_config('[paths]\naccess_log = ""\n')
    _quiet_week(sb.root, ["src.api.main - WARNING - HTTP Exception: 422 - too short"])
    entry = run_checks(cfg, *only("warning_log_review")).one("warning_log_review")
    assert entry["outcome"] == "passed", entry
    _quiet_week(sb.root, ["src.api.main - WARNING - HTTP Exception: 422 - too short"] * 25)
    entry = run_checks(cfg, *only("warning_log_review")).one("warning_log_review")
    assert entry["outcome"] == "failed"
    assert entry["message"].endswith("is 25 lines, limit 20 lines"), entry["message"]


def test_throughput_without_a_baseline_skips_with_its_reason(offline, run_checks):
    sb = offline()
    cfg = sb.with_config('[paths]\naccess_log = ""\n')
    _quiet_week(sb.root, ["src.api.main - INFO - Response: 200 - 0.010s"])
    logs = sb.root / "app" / "logs" / "app.log"
    lines = logs.read_text().splitlines()
    logs.write_text("\n".join(lines[-5:]) + "\n")  # only the last 2 days had traffic
    entry = run_checks(cfg, *only("throughput_normal")).one("throughput_normal")
    assert entry["outcome"] == "skipped", entry
    assert entry["message"].startswith("no baseline: the median of the 7 days before")


def test_access_log_without_timings_times_from_the_app_log_and_says_so(offline, run_checks):
    """nginx's default `combined` format has no timing: avg and p95 crashed with a
    TypeError and slow_requests said 0 %. Now they read the app log's times, saying so."""
    import gzip

    sb = offline()
    for p in (sb.root / "nginx").glob("access.log*"):
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        lines = [ln.rsplit(b" ", 1)[0] for ln in data.splitlines()]  # drop $request_time
        out = b"\n".join(lines) + b"\n"
        p.write_bytes(gzip.compress(out) if p.suffix == ".gz" else out)
    cfg = sb.with_config('[paths]\naccess_log_format = "combined"\n')
    run = run_checks(cfg, *LOG_CHECKS, "-k", "avg_response or p95_response or slow_requests")
    for check_id in ("avg_response_time", "p95_response_time", "slow_requests"):
        entry = run.one(check_id)
        assert entry["outcome"] == "passed", entry
        names = " ".join(e["name"] for e in entry["evidence"])
        assert "server side: the access log's format has no timings" in names, names
    error_rate = run_checks(cfg, *only("error_rate")).one("error_rate")
    assert error_rate["outcome"] == "passed", "responses still counted from the access log"
