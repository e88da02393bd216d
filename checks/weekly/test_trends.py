"""Weekly: this week against last week, from the history the daily runs store.

A week is the 7 days before the run; the week before, the 7 days before that. Each
series compares medians (one slow or full day does not make a trend). A series with
fewer than `[history] trend_min_points` values in either week makes the check error,
saying how many it has: no trend is guessed from a gap.
"""

import pytest

from opscheck.probes import ProbeError, backups
from opscheck.probes import history as hist


def _weeks(history, cfg, check_ids, unit, by_name):
    now = backups.now()
    try:
        found = hist.stored_series(history, check_ids, unit, 14, now, by_name)
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    weeks = hist.weeks(found, now)
    lacking = hist.too_few(weeks, cfg.history.trend_min_points)
    if lacking:
        need = cfg.history.trend_min_points
        pytest.fail(f"no verdict (needs {need} a week): {'; '.join(lacking)}", pytrace=False)
    return weeks


@pytest.fixture
def latency_weeks(history, cfg):
    """The stored daily p95 and mean response times (ms), by week."""
    return _weeks(history, cfg, ["p95_response_time", "avg_response_time"], "ms", False)


@pytest.fixture
def resource_weeks(history, cfg):
    """The stored disk (space, inodes) and memory use (%), by week."""
    return _weeks(history, cfg, ["disk_usage", "memory_usage"], "%", True)


@pytest.mark.weekly
def test_latency_trend(latency_weeks, cfg, evidence):
    """주간 성능 트렌드 분석: median p95 and mean within latency_trend_percent of last week's."""
    factor = 1 + cfg.thresholds.latency_trend_percent / 100
    for w in latency_weeks:
        this, before = w.medians
        evidence.record(f"{w.label}: median the week before", before, "ms")
        evidence.at_most(f"{w.label}: median this week", this, "ms", before * factor)
    evidence.verdict()


@pytest.mark.weekly
def test_resource_trend(resource_weeks, cfg, evidence):
    """리소스 사용량 추이 확인: disk and memory grew at most resource_growth_points a week."""
    for w in resource_weeks:
        this, before = w.medians
        evidence.record(f"{w.label}: median this week", this, "%")
        evidence.at_most(
            f"{w.label}: growth over the week before",
            this - before,
            "% points",
            cfg.thresholds.resource_growth_points,
        )
    evidence.verdict()
