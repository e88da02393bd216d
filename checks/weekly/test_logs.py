"""Weekly: the hour-by-hour latency profile of the last 7 days."""

import pytest

from opscheck import render
from opscheck.probes import backups, logs

MIN_SAMPLES = 10  # an hour with fewer responses has no meaningful p95 (one slow call is 100 %)


@pytest.mark.weekly
@pytest.mark.role("app")
def test_hourly_latency_profile(ops_host, cfg, state_dir, evidence):
    """응답 시간 패턴 검토: no clock hour of the last 7 days with p95 above p95_response_ms."""
    now = backups.now()
    summary, source = logs.timings(cfg, state_dir, now, ops_host)
    hours = logs.hours_back(now, 24 * 7)
    limit = cfg.thresholds.p95_response_ms
    profile = {
        h: summary.hours[h].latency.quantile_ms(0.95)
        for h in hours
        if h in summary.hours and summary.hours[h].latency.n >= MIN_SAMPLES
    }
    if not profile:
        pytest.fail(
            f"no hour of the last 7 days has {MIN_SAMPLES} timed responses in the {source}",
            pytrace=False,
        )
    worst = max(profile, key=profile.get)
    evidence.record(f"hours with {MIN_SAMPLES}+ timed responses", len(profile), "", 168)
    evidence.at_most(f"worst hour's p95 ({worst}:00 UTC, {source})", profile[worst], "ms", limit)
    over = sorted(h for h, p in profile.items() if p > limit)
    if len(over) > 1:
        evidence.breach(f"{len(over)} hours over {limit:g} ms (UTC): {', '.join(over[:12])}")
    evidence.attach(render.hourly(summary, hours, f"Requests and p95 per hour, 7 days ({source})"))
    evidence.verdict()
