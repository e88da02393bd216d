"""Daily: what the logs of the last 24 h say (windows come from the lines' own times).

Every check here reads its log whole or not at all: a file it cannot name or open,
over 1 % of lines it cannot parse, or stamps in the future make it fail saying so
(`logs.seen`), never pass on the part it could read.
"""

import re
from collections import Counter
from statistics import median

import pytest

from opscheck import render
from opscheck.probes import backups, logs
from opscheck.probes.logs.llm import Calls


@pytest.fixture
def now():
    return backups.now()


@pytest.fixture
def window(now):
    """(the last 24 clock hours, each of the seven 24-h windows before them), UTC."""
    return logs.windows(now)


def _last_24h(summary, window, source, evidence):
    w = summary.window(window[0])
    evidence.record("responses, last 24 h", w.requests, "", None)
    if not w.requests:
        pytest.fail(f"no responses logged in the last 24 h in the {source}", pytrace=False)
    return w


def _timed_24h(cfg, state_dir, now, window, evidence, ops_host):
    summary, source = logs.timings(cfg, state_dir, now, ops_host)
    w = _last_24h(summary, window, source, evidence)
    if not w.latency.n:
        pytest.fail(f"no timed responses in the last 24 h in the {source}", pytrace=False)
    return summary, w, source


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.role("app")
def test_error_rate(ops_host, cfg, state_dir, now, window, evidence):
    """에러율 < 1%: failed responses (5xx, and 499: the client gave up) / all, last 24 h."""
    summary, source = logs.responses(cfg, state_dir, now, ops_host)
    w = _last_24h(summary, window, source, evidence)
    gave_up = w.codes.get("499", 0)
    evidence.record("5xx responses, last 24 h", w.errors_5xx, "", None)
    evidence.record("of them 504 (upstream timed out)", w.codes.get("504", 0), "", None)
    evidence.record("499 responses (client gave up), last 24 h", gave_up, "", None)
    share = 100.0 * (w.errors_5xx + gave_up) / w.requests
    evidence.at_most(
        f"failed share (5xx + 499), last 24 h ({source})",
        share,
        "%",
        cfg.thresholds.error_rate_percent,
    )
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_avg_response_time(ops_host, cfg, state_dir, now, window, evidence):
    """평균 응답 시간 < 3초: mean response time in the last 24 h."""
    _, w, source = _timed_24h(cfg, state_dir, now, window, evidence, ops_host)
    evidence.at_most(
        f"mean response time, last 24 h ({source})",
        w.latency.mean_ms,
        "ms",
        cfg.thresholds.avg_response_ms,
    )
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_p95_response_time(ops_host, cfg, state_dir, now, window, evidence):
    """API 응답 시간 체크: p95 response time in the last 24 h (within 1 %)."""
    _, w, source = _timed_24h(cfg, state_dir, now, window, evidence, ops_host)
    evidence.at_most(
        f"p95 response time, last 24 h ({source})",
        w.latency.quantile_ms(0.95),
        "ms",
        cfg.thresholds.p95_response_ms,
    )
    evidence.attach(render.endpoints(w, f"Endpoints, last 24 h ({source})"))
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_slow_requests(ops_host, cfg, state_dir, now, window, evidence):
    """성능 이슈 로그 확인: no more than 1 % of requests slower than slow_request_ms."""
    _, w, source = _timed_24h(cfg, state_dir, now, window, evidence, ops_host)
    limit_ms = cfg.thresholds.slow_request_ms
    slow = w.latency.over(limit_ms)
    evidence.record(f"requests over {limit_ms:g} ms, last 24 h", slow, "", None)
    evidence.at_most(f"share over {limit_ms:g} ms ({source})", 100.0 * slow / w.latency.n, "%", 1.0)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_throughput_normal(ops_host, cfg, state_dir, now, window, evidence):
    """처리량 정상 범위 내: last 24 h's requests within 0.5x-2x the median of the 7 days before."""
    summary, source = logs.responses(cfg, state_dir, now, ops_host)
    last = summary.window(window[0]).requests
    before = [summary.window(keys).requests for keys in window[1]]
    typical = median(before)
    evidence.record("requests in each earlier 24 h", ", ".join(map(str, before)))
    if not typical:
        pytest.skip(
            f"no baseline: the median of the 7 days before the last 24 h is 0 requests "
            f"in the {source}"
        )
    evidence.at_least("requests, last 24 h", last, "", 0.5 * typical)
    evidence.at_most("requests, last 24 h", last, "", 2.0 * typical)
    evidence.attach(render.hourly(summary, window[0], f"Requests and p95 per hour ({source})"))
    evidence.verdict()


def _noise(cfg):
    patterns = [re.compile(p) for p in cfg.logs.ignore_errors]
    return lambda sig: any(p.search(sig) for p in patterns)


def _without(errors: Counter, is_noise) -> tuple[Counter, int]:
    """(the signatures that are not noise, how many lines were noise)."""
    kept = Counter({sig: n for sig, n in errors.items() if not is_noise(sig)})
    return kept, sum(errors.values()) - sum(kept.values())


@pytest.mark.daily
@pytest.mark.role("app")
def test_error_log_review(ops_host, cfg, state_dir, now, window, evidence):
    """에러 로그 확인 (ERROR 레벨): no ERROR signature the previous 7 days did not have."""
    app, source = logs.app_log(cfg, state_dir, now, ops_host)
    is_noise = _noise(cfg)
    last, noise = _without(app.window(window[0]).errors, is_noise)
    before, _ = _without(app.window([k for keys in window[1] for k in keys]).errors, is_noise)
    evidence.record("ERROR lines ignored as noise ([logs] ignore_errors), last 24 h", noise)
    evidence.record("ERROR lines, last 24 h", sum(last.values()), "lines", None)
    if not logs.covers(app, window[1]):
        pytest.skip(f"the {source} does not reach back into the 7 days before the last 24 h")
    for sig, count in last.most_common(10):
        evidence.record(sig, count, "lines", None)
    evidence.attach(render.signatures(last, before, "Top ERROR signatures"))
    new = {sig: n for sig, n in last.items() if sig not in before}
    if new:
        top = "; ".join(f"{sig!r} x{n}" for sig, n in sorted(new.items(), key=lambda t: -t[1])[:5])
        evidence.breach(f"{len(new)} new ERROR signatures in the last 24 h: {top}")
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_warning_log_review(ops_host, cfg, state_dir, now, window, evidence):
    """경고 로그 검토 (WARN 레벨): WARNING lines at most 3x the median of the previous 7 days."""
    app, source = logs.app_log(cfg, state_dir, now, ops_host)
    last = sum(app.window(window[0]).warnings.values())
    before = [sum(app.window(keys).warnings.values()) for keys in window[1]]
    if not logs.covers(app, window[1]):
        pytest.skip(f"the {source} does not reach back into the 7 days before the last 24 h")
    for sig, count in app.window(window[0]).warnings.most_common(5):
        evidence.record(sig, count, "lines", None)
    floor = cfg.thresholds.warning_min_lines
    evidence.record("WARNING lines in each earlier 24 h", ", ".join(map(str, before)))
    evidence.at_most(
        f"WARNING lines, last 24 h (limit: 3x the median {median(before):g}, at least {floor})",
        last,
        "lines",
        max(3 * median(before), floor),
    )
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_abnormal_access(ops_host, cfg, state_dir, now, window, evidence):
    """비정상적인 접근 시도 확인: no client over the rate limit, probe-path hits, 401/403 bursts."""
    if not cfg.paths.access_log:
        pytest.skip("no access log configured ([paths] access_log)")
    s, _ = logs.access_log(cfg, state_dir, now, ops_host)
    t, last = cfg.thresholds, window[0]
    rates, hits = s.in_hours(s.clients_over_rate, last), s.in_hours(s.probe_hits, last, add=True)
    auth = s.in_hours(s.auth_bursts, last)
    evidence.record("clients over 20 requests in 60 s, last 24 h", len(rates))
    evidence.record("probe-path requests, last 24 h", sum(hits.values()))
    evidence.record("clients with 5+ 401/403 in 60 s, last 24 h", len(auth))
    for client, peak in rates.items():
        evidence.at_most(f"{client} requests in 60 s", peak, "", t.rate_limit_per_minute)
    for hit, n in hits.items():
        if hit.endswith((" 200", " 204", " 206")):
            evidence.breach(f"{hit} answered with success {n} time(s)")
    for client, peak in auth.items():
        evidence.at_most(f"{client} 401/403 in 60 s", peak, "", t.auth_failure_burst)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_llm_usage(ops_host, cfg, state_dir, now, window, evidence):
    """API 키 사용량 모니터링: LLM calls within llm_calls_per_day; no API key in any log."""
    app, _ = logs.app_log(cfg, state_dir, now, ops_host)
    w = app.window(window[0])
    calls = Calls.of(w.calls)
    evidence.record("generation requests, last 24 h", w.generations)
    if calls.total():
        n, how = calls.total("llm"), "httpx call lines"
        evidence.record("embeddings calls, last 24 h", calls.total("embeddings"))
    else:
        n, how = 3 * w.generations, "no httpx lines (LOG_LEVEL above INFO?): generations x 3"
    evidence.at_most(f"LLM calls, last 24 h ({how})", n, "", cfg.thresholds.llm_calls_per_day)
    hits = list(app.key_hits)
    if cfg.paths.access_log:
        hits += logs.access_log(cfg, state_dir, now, ops_host)[0].key_hits
    evidence.record("API-key-shaped strings in logs", len(hits), "", 0)
    if hits:
        evidence.breach(
            f"an API key pattern appears in the logs at {', '.join(hits[:10])} (value not shown)"
        )
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.role("app")
def test_llm_api_errors(ops_host, cfg, state_dir, now, window, evidence):
    """API 키 사용량 모니터링: LLM and embeddings calls answer 2xx (any 401/403: a rejected key)."""
    app, source = logs.app_log(cfg, state_dir, now, ops_host)
    w = app.window(window[0])
    calls = Calls.of(w.calls)
    total, failed = calls.total(), calls.failed()
    if not total and w.generations:
        pytest.fail(
            f"{w.generations} generations in the last 24 h but no httpx call line in the "
            f"{source}: LLM calls cannot be seen (the service logs them at LOG_LEVEL=INFO)",
            pytrace=False,
        )
    evidence.record("LLM and embeddings calls, last 24 h", total)
    evidence.record("non-2xx calls, last 24 h", Calls.text(failed) or "none")
    share = 100.0 * sum(failed.values()) / total if total else 0.0
    evidence.at_most(
        "non-2xx LLM/embeddings calls, last 24 h", share, "%", cfg.thresholds.llm_error_percent
    )
    if rejected := calls.rejected():
        evidence.breach(f"calls rejected (a revoked or wrong API key?): {Calls.text(rejected)}")
    evidence.verdict()
