"""Daily: the service answers and says it is healthy."""

import pytest

from opscheck.evidence import fmt
from opscheck.probes.http import HttpResult, get_json


def _health(cfg, url: str) -> HttpResult:
    """GET /health once; redirects are answers (a 3xx is not healthy), never followed."""
    s = cfg.service
    return get_json(url, "/health", s.timeout_s, s.ca_bundle, s.max_body_bytes)


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.predeploy
def test_health_endpoint_up(cfg, evidence, service_target):
    """서비스 정상 실행 확인: GET /health answers 200 within service.timeout_s.

    Asked of base_url, and of each replica too when `[service] base_urls` lists them.
    """
    limit_ms = cfg.service.timeout_s * 1000
    res = _health(cfg, service_target.url)
    if not res.answered:
        evidence.record("response time", res.elapsed_ms, "ms", limit_ms)
        evidence.breach(
            f"GET {res.url}: {res.error} after {fmt(res.elapsed_ms, 'ms')}, "
            f"limit {fmt(limit_ms, 'ms')}"
        )
    else:
        ok = res.status == 200
        why = f"GET {res.url} answered {res.status_text}, expected 200"
        if 300 <= res.status < 400:
            why += " (redirects are not followed)"
            evidence.record("redirects to", res.location or "(no Location)")
        evidence.expect("HTTP status", res.status, 200, ok, why)
        evidence.at_most("response time", res.elapsed_ms, "ms", limit_ms)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.predeploy
def test_health_components_healthy(cfg, evidence, service_target):
    """시스템 상태 확인: /health status and every component are "healthy".

    Asked of base_url, and of each replica too when `[service] base_urls` lists them.
    """
    res = _health(cfg, service_target.url)
    body = res.object_body or {}
    if not res.answered:
        evidence.breach(f"GET {res.url}: {res.error}; component states unknown")
    elif 300 <= res.status < 400:
        evidence.breach(
            f"GET {res.url} answered {res.status_text}; redirects are not followed, "
            "component states unknown"
        )
    elif res.object_body is None:
        evidence.breach(f"GET {res.url} answered {res.status}: {res.object_problem()}")
    elif "status" not in body:
        evidence.breach(f"GET {res.url} answered {res.status} without a health status")
    else:
        status = str(body["status"])
        evidence.expect(
            "status",
            status,
            "healthy",
            status == "healthy",
            f"status is {status!r}, expected 'healthy'",
        )
        components = body.get("components") or {}
        if not isinstance(components, dict) or not components:
            evidence.breach("the answer lists no components")
            components = {}
        for name, state in components.items():
            evidence.expect(
                name,
                str(state),
                "healthy",
                state == "healthy",
                f"component {name} is {str(state)[:120]!r}, expected 'healthy'",
            )
    evidence.verdict()
