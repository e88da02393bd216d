"""The history checks, both ways: rows written through the real writer (as earlier runs
would have), then the real checks run by pytest against that history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.historydb import check, config, days_ago, write

WEEKLY = "checks/weekly/test_trends.py"
MONTHLY = "checks/monthly/test_trends.py"
QUARTERLY = "checks/quarterly/test_dr.py"


def _latency(url: str, before: float, this: float, days=range(1, 14)) -> None:
    for d in days:
        p95 = this if d < 7 else before
        write(
            url,
            days_ago(d - 0.5),
            [
                check("p95_response_time", "", "passed", [("p95 (access log)", p95, "ms", 5000)]),
                check("avg_response_time", "", "passed", [("mean (app log)", p95 / 2, "ms", 3000)]),
                check("error_rate", "", "passed", [("responses", 100, "", None)]),
            ],
        )


def _run(run_checks, tmp_path, url, path, check_id, extra=""):
    run = run_checks(config(tmp_path, url, extra), path, "-k", check_id)
    return run, run.one(check_id)


def test_latency_trend_green_within_20_percent(run_checks, tmp_path, history_url):
    _latency(history_url, 1000, 1150)
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "latency_trend")
    assert entry["outcome"] == "passed", entry
    values = {e["name"]: (e["value"], e["limit"]) for e in entry["evidence"]}
    assert values["p95_response_time: median this week"] == (1150, 1200)
    assert values["avg_response_time: median this week"] == (575, 600)


def test_latency_trend_red_when_p95_rose(run_checks, tmp_path, history_url):
    _latency(history_url, 1000, 1300)
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "latency_trend")
    assert entry["outcome"] == "failed"
    assert "p95_response_time: median this week is 1300 ms, limit 1200 ms" in entry["message"]
    assert "avg_response_time: median this week is 650 ms, limit 600 ms" in entry["message"]


def test_latency_trend_errors_with_too_few_points(run_checks, tmp_path, history_url):
    _latency(history_url, 1000, 1000, days=[1, 2, 9])
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "latency_trend")
    assert entry["outcome"] == "error"
    assert "p95_response_time has 2 values this week and 1 the week before" in entry["message"]
    assert "needs 3 a week" in entry["message"]


def test_latency_trend_errors_on_an_empty_history(run_checks, tmp_path, history_url):
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "latency_trend")
    assert entry["outcome"] == "error"
    assert "holds no p95_response_time or avg_response_time values" in entry["message"]


def _resources(url: str, values: list[tuple[float, float, float]]) -> None:
    """(days ago, disk %, memory %) per run, through the real writer."""
    for d, disk, mem in values:
        write(
            url,
            days_ago(d),
            [
                check(
                    "disk_usage",
                    "local-/",
                    "passed",
                    [("/ space used", disk, "%", 90), ("/ inodes used", 3.0, "%", 90)],
                ),
                check("memory_usage", "local", "passed", [("memory used", mem, "%", 85)]),
            ],
        )


def test_resource_trend_green_and_red(run_checks, tmp_path, history_url):
    _resources(history_url, [(d + 0.5, 50 + (2 if d < 7 else 0), 40) for d in range(14)])
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "resource_trend")
    assert entry["outcome"] == "passed", entry
    # the same history, and memory 40 % -> 65 % this week: the medians are 40 and 52.5
    _resources(history_url, [(d + 0.25, 50, 40 + (25 if d < 7 else 0)) for d in range(14)])
    _, entry = _run(run_checks, tmp_path, history_url, WEEKLY, "resource_trend")
    assert entry["outcome"] == "failed"
    assert re.search(
        r"memory_usage memory used: growth over the week before is 12.5 % points, "
        r"limit 5 % points",
        entry["message"],
    ), entry["message"]
    assert "disk_usage" not in entry["message"]


def test_capacity_forecast_green_when_slow_growth(run_checks, tmp_path, history_url):
    _resources(history_url, [(d, 50 - 0.1 * d, 40) for d in range(20)])
    _, entry = _run(run_checks, tmp_path, history_url, MONTHLY, "capacity_forecast")
    assert entry["outcome"] == "passed", entry
    days = {e["name"]: e["value"] for e in entry["evidence"]}
    assert 390 < days["disk_usage[/] / space used: days until 90 %"] < 410
    assert days["disk_usage[/] / inodes used: days until 90 %"] == "never (not growing)"


def test_capacity_forecast_red_when_full_within_30_days(run_checks, tmp_path, history_url):
    _resources(history_url, [(d, 80 - 1.0 * d, 40) for d in range(20)])
    _, entry = _run(run_checks, tmp_path, history_url, MONTHLY, "capacity_forecast")
    assert entry["outcome"] == "failed"
    assert re.search(
        r"/ space used: days until 90 % is 10(\.0)? days, minimum 30 days", entry["message"]
    )


def test_capacity_forecast_errors_with_too_few_points(run_checks, tmp_path, history_url):
    _resources(history_url, [(d, 50, 40) for d in (1, 2, 3)])
    _resources(history_url, [(40, 10, 40)])  # outside the 30-day window: not counted
    _, entry = _run(run_checks, tmp_path, history_url, MONTHLY, "capacity_forecast")
    assert entry["outcome"] == "error"
    assert "needs 7 values from the last 30 days" in entry["message"]
    assert "disk_usage[/] / space used has 3" in entry["message"]


def _drill(url: str, when: datetime, outcome: str, seconds: float) -> None:
    ev = [("restored set", "x", "", None), ("restore time", seconds, "s", 14400)]
    write(url, when, [check("restore_drill", "", outcome, ev)], label="monthly")


def _quarter_start() -> datetime:
    now = datetime.now(UTC)
    return now.replace(month=3 * ((now.month - 1) // 3) + 1, day=1, hour=0, minute=0, second=0)


UTC_CFG = '[service]\ntimezone = "UTC"'


def test_dr_drill_performed_green_with_a_drill_this_quarter(run_checks, tmp_path, history_url):
    _drill(history_url, _quarter_start() + timedelta(minutes=5), "passed", 600)
    _, entry = _run(run_checks, tmp_path, history_url, QUARTERLY, "dr_drill_performed", UTC_CFG)
    assert entry["outcome"] == "passed", entry


def test_dr_drill_performed_red_without_a_good_drill(run_checks, tmp_path, history_url):
    _drill(history_url, _quarter_start() - timedelta(days=2), "passed", 600)  # last quarter
    _drill(history_url, _quarter_start() + timedelta(minutes=5), "failed", 600)
    _drill(history_url, _quarter_start() + timedelta(minutes=9), "passed", 5 * 3600)  # > RTO
    _, entry = _run(run_checks, tmp_path, history_url, QUARTERLY, "dr_drill_performed", UTC_CFG)
    assert entry["outcome"] == "failed"
    since = _quarter_start().strftime("%Y-%m-%d")
    assert f"no restore_drill passed within rto_hours (4 h) since {since}" in entry["message"]
    assert "2 drills recorded, none passed within it" in entry["message"]
    assert "pg-Secret" not in entry["message"]


def test_history_checks_error_when_the_history_cannot_be_read(run_checks, tmp_path):
    url = f"sqlite:///{tmp_path}/a-file/h.sqlite"
    (tmp_path / "a-file").write_text("")
    run = run_checks(config(tmp_path, url), WEEKLY, MONTHLY, QUARTERLY, "-k", "not endpoint")
    outcomes = run.outcomes()
    assert outcomes == {
        "latency_trend": "error",
        "resource_trend": "error",
        "capacity_forecast": "error",
        "dr_drill_performed": "failed",
    }, outcomes
    assert all("File exists" in c["message"] for c in run.report["checks"]), run.report["checks"]


def _access_log(path, endpoints: dict[str, float]) -> None:
    """A real nginx 'timed' access log: 30 requests per endpoint an hour for 3 days."""
    lines = []
    start = datetime.now(UTC) - timedelta(days=3)
    for hour in range(72):
        t = start + timedelta(hours=hour)
        stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000")
        for ep, seconds in endpoints.items():
            method, target = ep.split(" ")
            for i in range(30):
                took = seconds * (0.5 + i / 30)
                lines.append(
                    f'127.0.0.1 - - [{stamp}] "{method} {target} HTTP/1.1" 200 15 "-" '
                    f'"curl/8" {took:.3f}'
                )
    path.write_text("\n".join(lines) + "\n")


ENDPOINTS = {"POST /api/v1/templates/generate": 3.0, "GET /health": 0.01}


@pytest.mark.parametrize(
    ("budget", "outcome"), [("", "passed"), ('"/api/v1/templates/generate" = 3000', "failed")]
)
def test_endpoint_latency_budget(run_checks, tmp_path, budget, outcome):
    log = tmp_path / "access.log"
    _access_log(log, ENDPOINTS)
    extra = f'[paths]\naccess_log = "{log}"\n[thresholds]\nendpoint_budget_ms = {{{budget}}}'
    url = f"sqlite:///{tmp_path}/h.sqlite"
    _, entry = _run(run_checks, tmp_path, url, MONTHLY, "endpoint_latency_budget", extra)
    assert entry["outcome"] == outcome, entry
    names = [e["name"] for e in entry["evidence"]]
    assert names[:2] == [
        "#1 POST /api/v1/templates/generate p95, 30 days",
        "#2 GET /health p95, 30 days",
    ]
    first = entry["evidence"][0]
    assert 3750 < first["value"] < 4800  # 3 s x (0.5 .. 1.47): p95 about 4.3 s
    assert first["limit"] == (3000 if budget else 5000)
    if outcome == "failed":
        assert "limit 3000 ms" in entry["message"]


def test_endpoint_latency_budget_errors_without_timed_access_log(run_checks, tmp_path):
    url = f"sqlite:///{tmp_path}/h.sqlite"
    _, entry = _run(run_checks, tmp_path, url, MONTHLY, "endpoint_latency_budget")
    assert entry["outcome"] == "error"
    assert "per-endpoint times come from the access log" in entry["message"]


def test_this_machine_s_rows_before_and_after_hosts_are_one_series():
    """A local row's host id is left out of its series' name: the values stored before
    hosts existed ("" and "/") and after ("local", "local-/") make one series."""
    from opscheck.probes.history import this_machine

    assert [this_machine(p) for p in ("local", "", "local-/", "/")] == ["", "", "/", "/"]
    assert this_machine("app@10.0.0.5") == "app@10.0.0.5"
    assert this_machine("app@10.0.0.5-/") == "app@10.0.0.5-/"
