"""Monthly: where the disks are heading, and which endpoint is the bottleneck."""

import pytest

from opscheck import render
from opscheck.probes import ProbeError, backups, logs
from opscheck.probes import history as hist


@pytest.fixture
def disk_fits(history, cfg):
    """A least-squares line through each watched mount's stored space and inode use over
    `[history] forecast_window_days`; too few values is an error naming the count."""
    now, h = backups.now(), cfg.history
    try:
        found = hist.stored_series(history, ["disk_usage"], "%", h.forecast_window_days, now)
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    lacking = [
        f"{s.label} has {len(s.values)}" for s in found if len(s.values) < h.forecast_min_points
    ]
    fits = [(s, hist.fit(s, now)) for s in found]
    lacking += [
        f"{s.label}: all {len(s.values)} values are from one moment" for s, f in fits if not f
    ]
    if lacking:
        pytest.fail(
            f"no verdict: a forecast needs {h.forecast_min_points} values from the last "
            f"{h.forecast_window_days} days: {'; '.join(lacking)}",
            pytrace=False,
        )
    return fits


@pytest.mark.monthly
def test_capacity_forecast(disk_fits, cfg, evidence):
    """리소스 사용량 예측: no disk reaches disk_percent within forecast_horizon_days (fit)."""
    limit, horizon = cfg.thresholds.disk_percent, cfg.thresholds.forecast_horizon_days
    for s, f in disk_fits:
        evidence.record(f"{s.label}: growth ({f.n} values)", f.slope_per_day, "%/day")
        days = f.days_until(limit)
        if days is None:
            evidence.record(f"{s.label}: days until {limit:g} %", "never (not growing)")
        else:
            evidence.at_least(f"{s.label}: days until {limit:g} %", days, "days", horizon)
    evidence.verdict()


@pytest.fixture
def endpoint_window(ops_host, cfg, state_dir):
    """The last 30 days of the access log, timed per endpoint (the app log's Response
    lines carry no endpoint, so it cannot rank them)."""
    if not cfg.paths.access_log:
        pytest.fail(
            "no verdict: per-endpoint times come from the access log, and none is "
            "configured ([paths] access_log)",
            pytrace=False,
        )
    now = backups.now()
    try:
        summary, source = logs.access_log(cfg, state_dir, now, ops_host)
    except ProbeError as exc:
        pytest.fail(f"no verdict: {exc}", pytrace=False)
    window = summary.window(logs.hours_back(now, 30 * 24))
    if not window.endpoint_latency:
        why = "its format has no timings" if not summary.latency_source else "no timed request"
        pytest.fail(f"no verdict: the {source} times no endpoint ({why})", pytrace=False)
    return window, source


def _budget(cfg, endpoint: str) -> float:
    """The endpoint's budget: its own ("POST /x" or "/x"), else p95_response_ms."""
    budgets = cfg.thresholds.endpoint_budget_ms
    path = endpoint.split(" ", 1)[-1]
    return budgets.get(endpoint, budgets.get(path, cfg.thresholds.p95_response_ms))


@pytest.mark.monthly
@pytest.mark.role("app")
def test_endpoint_latency_budget(endpoint_window, cfg, evidence):
    """병목 지점 분석: each endpoint's 30-day p95 within its endpoint_budget_ms, ranked."""
    window, source = endpoint_window
    ranked = sorted(
        ((ep, h.quantile_ms(0.95)) for ep, h in window.endpoint_latency.items() if h.n),
        key=lambda t: -(t[1] or 0),
    )
    for rank, (endpoint, p95) in enumerate(ranked, 1):
        evidence.at_most(f"#{rank} {endpoint} p95, 30 days", p95, "ms", _budget(cfg, endpoint))
    evidence.attach(render.endpoints(window, f"Endpoints, last 30 days ({source})"))
    evidence.verdict()
