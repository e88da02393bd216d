"""Weekly and before deploys: the service under Locust load (loadtests/locustfile.py)."""

import pytest

from opscheck.evidence import Recorder
from opscheck.probes import load

PRECISION = "Locust percentile: 10 ms steps up to 1 s, 100 ms above"


def _run(cfg, report_file, profile: load.Profile, tag: str) -> load.LoadRun:
    html = report_file(tag, ".html")
    s = cfg.service
    return load.run(s.base_url, profile, html, s.timeout_s, s.ca_bundle)


def _verdict(result: load.LoadRun) -> load.LoadRun:
    """The run, if it can give a verdict; else the check errors (in setup), saying why."""
    if result.error:
        pytest.fail(f"no verdict: {result.error}", pytrace=False)
    if result.saturated:
        pytest.fail(
            "no verdict: the load generator saturated its CPU (Locust warned: CPU "
            "usage above 90 %), so its response times are not the service's; use "
            "[load] workers or fewer users",
            pytrace=False,
        )
    if result.total is None or not result.total.requests:
        pytest.fail("no verdict: Locust completed no request", pytrace=False)
    return result


@pytest.fixture(scope="module")
def weekly_load(cfg, report_file):
    """One run of the configured [load] profile, shared by the checks below."""
    p = cfg.load
    profile = load.Profile(p.users, p.spawn_rate, p.duration_s, p.workers)
    return _run(cfg, report_file, profile, "locust")


@pytest.fixture
def weekly_verdict(weekly_load):
    return _verdict(weekly_load)


@pytest.fixture
def predeploy_verdict(cfg, report_file):
    p = cfg.load
    profile = load.Profile(p.predeploy_users, p.predeploy_users, p.predeploy_duration_s)
    return _verdict(_run(cfg, report_file, profile, "locust-predeploy"))


def judge(result: load.LoadRun, cfg, evidence: Recorder) -> None:
    """p95 and failures per endpoint and in aggregate; RPS in aggregate."""
    limits = cfg.load
    for s in [*result.endpoints, result.total]:
        evidence.record(f"{s.name}: requests / failures", f"{s.requests} / {s.failures}")
        evidence.record(f"{s.name}: requests per second", round(s.rps, 2), "rps")
        evidence.record(f"{s.name}: p50 / p99 ({PRECISION})", f"{s.p50_ms:g} / {s.p99_ms:g} ms")
        evidence.at_most(f"{s.name}: p95", s.p95_ms, "ms", cfg.thresholds.p95_response_ms)
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
