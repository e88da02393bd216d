"""Daily: what the logs of the last 24 h say (windows come from the lines' own times)."""

from statistics import median

import pytest

from opscheck import render
from opscheck.probes import backups, logs


@pytest.fixture
def window(cfg):
    """(the last 24 clock hours, each of the seven 24-h windows before them)."""
    return logs.windows(backups.now(), backups.zone(cfg.service.timezone))


def _traffic(cfg, state_dir):
    """(Summary of the responses' log, its name): access log if configured, else app log."""
    return logs.traffic(
        cfg.paths.app_log, cfg.paths.access_log, state_dir, cfg.paths.access_log_format
    )


def _app_log(cfg, state_dir):
    return logs.view(cfg.paths.app_log, state_dir, "app")


def _last_24h(summary, window, source, evidence):
    w = summary.window(window[0])
    evidence.record("responses, last 24 h", w.requests, "", None)
    if not w.requests:
        pytest.fail(f"no responses logged in the last 24 h in the {source}", pytrace=False)
    return w


@pytest.mark.daily
@pytest.mark.critical
def test_error_rate(cfg, state_dir, window, evidence):
    """에러율 < 1%: 5xx responses / all responses in the last 24 h."""
    summary, source = _traffic(cfg, state_dir)
    w = _last_24h(summary, window, source, evidence)
    evidence.record("5xx responses, last 24 h", w.errors_5xx, "", None)
    share = 100.0 * w.errors_5xx / w.requests
    evidence.at_most(
        f"5xx share, last 24 h ({source})", share, "%", cfg.thresholds.error_rate_percent
    )
    evidence.verdict()


@pytest.mark.daily
def test_avg_response_time(cfg, state_dir, window, evidence):
    """평균 응답 시간 < 3초: mean response time in the last 24 h."""
    summary, source = _traffic(cfg, state_dir)
    w = _last_24h(summary, window, source, evidence)
    evidence.at_most(
        f"mean response time, last 24 h ({summary.latency_source})",
        w.latency.mean_ms,
        "ms",
        cfg.thresholds.avg_response_ms,
    )
    evidence.verdict()


@pytest.mark.daily
def test_p95_response_time(cfg, state_dir, window, evidence):
    """API 응답 시간 체크: p95 response time in the last 24 h (within 1 %)."""
    summary, source = _traffic(cfg, state_dir)
    w = _last_24h(summary, window, source, evidence)
    evidence.at_most(
        f"p95 response time, last 24 h ({summary.latency_source})",
        w.latency.quantile_ms(0.95),
        "ms",
        cfg.thresholds.p95_response_ms,
    )
    evidence.attach(render.endpoints(w, f"Endpoints, last 24 h ({source})"))
    evidence.verdict()


@pytest.mark.daily
def test_slow_requests(cfg, state_dir, window, evidence):
    """성능 이슈 로그 확인: no more than 1 % of requests slower than slow_request_ms."""
    summary, source = _traffic(cfg, state_dir)
    w = _last_24h(summary, window, source, evidence)
    limit_ms = cfg.thresholds.slow_request_ms
    slow = w.latency.over(limit_ms)
    evidence.record(f"requests over {limit_ms:g} ms, last 24 h", slow, "", None)
    evidence.at_most(
        f"share over {limit_ms:g} ms", 100.0 * slow / w.latency.n if w.latency.n else 0.0, "%", 1.0
    )
    evidence.verdict()


@pytest.mark.daily
def test_throughput_normal(cfg, state_dir, window, evidence):
    """처리량 정상 범위 내: last 24 h's requests within 0.5x-2x the median of the 7 days before."""
    summary, source = _traffic(cfg, state_dir)
    last = summary.window(window[0]).requests
    before = [summary.window(keys).requests for keys in window[1]]
    if not any(before):
        pytest.skip(f"no requests in the 7 days before the last 24 h in the {source}")
    typical = median(before)
    evidence.record("requests in each earlier 24 h", ", ".join(map(str, before)))
    evidence.at_least("requests, last 24 h", last, "", 0.5 * typical)
    evidence.at_most("requests, last 24 h", last, "", 2.0 * typical)
    evidence.attach(render.hourly(summary, window[0], f"Requests and p95 per hour ({source})"))
    evidence.verdict()


@pytest.mark.daily
def test_error_log_review(cfg, state_dir, window, evidence):
    """에러 로그 확인 (ERROR 레벨): no ERROR signature the previous 7 days did not have."""
    app_log = _app_log(cfg, state_dir)
    last = app_log.window(window[0]).errors
    seen = set()
    for keys in window[1]:
        seen |= set(app_log.window(keys).errors)
    if not seen:
        pytest.skip("no ERROR lines in the previous 7 days to compare with")
    for sig, count in last.most_common(10):
        evidence.record(sig, count, "lines", None)
    before = app_log.window([k for keys in window[1] for k in keys]).errors
    evidence.attach(render.signatures(last, before, "Top ERROR signatures"))
    new = {sig: n for sig, n in last.items() if sig not in seen}
    if new:
        top = "; ".join(f"{sig!r} x{n}" for sig, n in sorted(new.items(), key=lambda t: -t[1])[:5])
        evidence.breach(f"{len(new)} new ERROR signatures in the last 24 h: {top}")
    evidence.verdict()


@pytest.mark.daily
def test_warning_log_review(cfg, state_dir, window, evidence):
    """경고 로그 검토 (WARN 레벨): WARNING lines at most 3x the median of the previous 7 days."""
    app_log = _app_log(cfg, state_dir)
    last = sum(app_log.window(window[0]).warnings.values())
    before = [sum(app_log.window(keys).warnings.values()) for keys in window[1]]
    if not any(before):
        pytest.skip("no WARNING lines in the previous 7 days to compare with")
    for sig, count in app_log.window(window[0]).warnings.most_common(5):
        evidence.record(sig, count, "lines", None)
    evidence.at_most("WARNING lines, last 24 h", last, "lines", 3 * median(before))
    evidence.verdict()


@pytest.mark.daily
def test_abnormal_access(cfg, state_dir, window, evidence):
    """비정상적인 접근 시도 확인: no client over the rate limit, probe-path hits, 401/403 bursts."""
    if not cfg.paths.access_log:
        pytest.skip("no access log configured ([paths] access_log)")
    s = logs.view(
        cfg.paths.access_log, state_dir, "access", access_format=cfg.paths.access_log_format
    )
    t, last = cfg.thresholds, window[0]
    rates, hits = s.in_hours(s.clients_over_rate, last), s.in_hours(s.probe_hits, last, add=True)
    auth = s.in_hours(s.auth_bursts, last)
    evidence.record("clients over 20 requests a minute, last 24 h", len(rates))
    evidence.record("probe-path requests, last 24 h", sum(hits.values()))
    evidence.record("clients with 5+ 401/403 a minute, last 24 h", len(auth))
    for client, peak in rates.items():
        evidence.at_most(f"{client} requests a minute", peak, "", t.rate_limit_per_minute)
    for hit, n in hits.items():
        if hit.endswith((" 200", " 204", " 206")):
            evidence.breach(f"{hit} answered with success {n} time(s)")
    for client, peak in auth.items():
        evidence.at_most(f"{client} 401/403 a minute", peak, "", t.auth_failure_burst)
    evidence.verdict()


@pytest.mark.daily
def test_llm_usage(cfg, state_dir, window, evidence):
    """API 키 사용량 모니터링: generations within llm_calls_per_day; no API key in any log."""
    app = logs.view(cfg.paths.app_log, state_dir, "app")
    evidence.at_most(
        "generation requests, last 24 h",
        app.window(window[0]).generations,
        "",
        cfg.thresholds.llm_calls_per_day,
    )
    hits = list(app.key_hits)
    if cfg.paths.access_log:
        hits += logs.view(
            cfg.paths.access_log, state_dir, "access", access_format=cfg.paths.access_log_format
        ).key_hits
    evidence.record("API-key-shaped strings in logs", len(hits), "", 0)
    if hits:
        evidence.breach(
            f"an API key pattern appears in the logs at {', '.join(hits[:10])} (value not shown)"
        )
    evidence.verdict()
