"""Daily: the service answers and says it is healthy."""

import pytest

from opscheck.evidence import fmt
from opscheck.probes.http import get_json


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.predeploy
def test_health_endpoint_up(cfg, evidence):
    """서비스 정상 실행 확인: GET /health answers 200 within service.timeout_s."""
    limit_ms = cfg.service.timeout_s * 1000
    res = get_json(cfg.service.base_url, "/health", cfg.service.timeout_s, cfg.service.ca_bundle)
    if not res.answered:
        evidence.record("response time", res.elapsed_ms, "ms", limit_ms)
        evidence.breach(
            f"GET {res.url}: {res.error} after {fmt(res.elapsed_ms, 'ms')}, "
            f"limit {fmt(limit_ms, 'ms')}"
        )
    else:
        ok = res.status == 200
        why = f"GET {res.url} answered {res.status_text}, expected 200"
        evidence.expect("HTTP status", res.status, 200, ok, why)
        evidence.at_most("response time", res.elapsed_ms, "ms", limit_ms)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
@pytest.mark.predeploy
def test_health_components_healthy(cfg, evidence):
    """시스템 상태 확인: /health status and every component are "healthy"."""
    res = get_json(cfg.service.base_url, "/health", cfg.service.timeout_s, cfg.service.ca_bundle)
    body = res.body if isinstance(res.body, dict) else {}
    if not res.answered:
        evidence.breach(f"GET {res.url}: {res.error}; component states unknown")
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
