"""Weekly and before deploys: the service under Locust load (loadtests/locustfile.py)."""

import pytest

from opscheck.evidence import Recorder
from opscheck.probes import load

PRECISION = "Locust percentile: 10 ms steps up to 1 s, 100 ms above"


def _run(cfg, report_file, profile: load.Profile, tag: str) -> load.LoadRun:
    html = report_file(tag, ".html")
    s = cfg.service
    return load.run(s.base_url, profile, html, s.timeout_s, s.ca_bundle)


def _profile(cfg, users: int, spawn_rate: float, duration_s: float, workers: int = 0):
    """A request running at the end may still finish within the service's timeout_s."""
    return load.Profile(users, spawn_rate, duration_s, workers, cfg.service.timeout_s)


def _verdict(result: load.LoadRun, min_requests: int) -> load.LoadRun:
    """The run, if it can give a verdict; else the check errors (in setup), saying why."""
    if result.error:
        pytest.fail(f"no verdict: {result.error}", pytrace=False)
    if result.saturated:
        pytest.fail(f"no verdict: {result.saturation}", pytrace=False)
    reasons = [_in_flight(result), _too_few(result, min_requests)]
    if any(reasons):
        pytest.fail("no verdict: " + "; ".join(r for r in reasons if r), pytrace=False)
    return result


def _in_flight(result: load.LoadRun) -> str:
    """Requests Locust's statistics do not hold: still running when it killed its users."""
    n = result.total.in_flight
    if not n:
        return ""
    per = ", ".join(f"{s.name} {s.in_flight}" for s in result.endpoints if s.in_flight)
    noun = "request" if n == 1 else "requests"
    return f"{n} {noun} still in flight at the end (slower than the run): {per}"


def _too_few(result: load.LoadRun, min_requests: int) -> str:
    short = [s for s in [*result.endpoints, result.total] if s.requests < min_requests]
    if not short:
        return ""
    counts = ", ".join(f"{s.name} {s.requests} completed" for s in short)
    return f"too few samples: {counts}, need {min_requests} ([load] min_requests)"


@pytest.fixture(scope="module")
def weekly_load(cfg, report_file):
    """One run of the configured [load] profile, shared by the checks below."""
    p = cfg.load
    profile = _profile(cfg, p.users, p.spawn_rate, p.duration_s, p.workers)
    return _run(cfg, report_file, profile, "locust")


@pytest.fixture
def weekly_verdict(weekly_load, cfg):
    return _verdict(weekly_load, cfg.load.min_requests)


@pytest.fixture
def predeploy_verdict(cfg, report_file):
    p = cfg.load
    profile = _profile(cfg, p.predeploy_users, p.predeploy_users, p.predeploy_duration_s)
    return _verdict(_run(cfg, report_file, profile, "locust-predeploy"), p.min_requests)


def judge(result: load.LoadRun, cfg, evidence: Recorder) -> None:
    """p95 and failures per endpoint and in aggregate; RPS in aggregate."""
    limits = cfg.load
    evidence.record("requests still in flight at the end", result.total.in_flight, limit=0)
    lag, limit = result.generator_lag_p95_ms, load.lag_limit_ms(result)
    evidence.record("load generator: event loop lag p95", lag, "ms", limit)
    evidence.record("load generator: busiest process CPU", result.generator_cpu_percent, "%")
    evidence.record("load generator's machine: CPU busy", result.machine_cpu_percent, "%")
    fewest = min(s.requests for s in result.endpoints)
    evidence.record("fewest completed requests of an endpoint", fewest, limit=limits.min_requests)
    for s in [*result.endpoints, result.total]:
        evidence.record(f"{s.name}: requests / failures", f"{s.requests} / {s.failures}")
        evidence.record(f"{s.name}: requests per second", round(s.rps, 2), "rps")
        evidence.record(f"{s.name}: p50 / p99 ({PRECISION})", f"{s.p50_ms:g} / {s.p99_ms:g} ms")
        evidence.at_most(f"{s.name}: p95", s.p95_ms, "ms", cfg.thresholds.p95_response_ms)
        if s.server_p95_ms is not None:
            evidence.record(f"{s.name}: p95 by the service's X-Process-Time", s.server_p95_ms, "ms")
        evidence.at_most(f"{s.name}: failures", s.failure_percent, "%", limits.max_error_percent)
    evidence.at_least("requests per second", result.total.rps, "rps", limits.min_rps)
    if result.html is not None:
        evidence.link("Locust report", result.html.name)
    evidence.verdict()


@pytest.mark.weekly
@pytest.mark.load
def test_load_test_p95(weekly_verdict, cfg, evidence):
    """자동 성능 테스트: under [load], p95, failures and RPS within limits, per endpoint."""
    judge(weekly_verdict, cfg, evidence)


@pytest.mark.weekly
@pytest.mark.load
def test_health_under_load(weekly_load, cfg, evidence):
    """부하 테스트: /health, asked by a separate client, answers within timeout_s under load."""
    h = weekly_load.health
    if not h.count:
        pytest.fail(
            f"no /health sample was taken while the load ran {weekly_load.error}", pytrace=False
        )
    evidence.record("/health samples while the load ran", h.count)
    evidence.at_most("slowest /health under load", h.worst_ms, "ms", cfg.service.timeout_s * 1000)
    for failure in h.failures[:5]:
        evidence.breach(f"/health under load: {failure}")
    evidence.verdict()


@pytest.mark.predeploy
@pytest.mark.load
def test_load_test_predeploy(predeploy_verdict, cfg, evidence):
    """자동 성능 테스트 (배포 전 게이트): a short profile, same limits, for the CI gate."""
    judge(predeploy_verdict, cfg, evidence)
