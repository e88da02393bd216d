"""Daily and before each deploy: the service really generates templates."""

import pytest

from opscheck import alimtalk
from opscheck.probes.http import post_json
from opscheck.probes.smoke import varied

GENERATE = "/api/v1/templates/generate"


@pytest.mark.daily
@pytest.mark.predeploy
def test_template_generation_smoke(cfg, evidence):
    """API 응답 확인: canonical requests give valid AlimTalk templates made by the real workflow."""
    if not cfg.service.generate_smoke:
        pytest.skip("[service] generate_smoke = false (each run costs LLM tokens)")
    for n, req in enumerate(cfg.service.smoke_requests, 1):
        res = post_json(
            cfg.service.base_url,
            GENERATE,
            varied(req),
            cfg.service.timeout_s,
            cfg.service.ca_bundle,
        )
        evidence.record(
            f"request {n} response time", res.elapsed_ms, "ms", cfg.service.timeout_s * 1000
        )
        if not res.answered or res.status != 200:
            evidence.breach(f"request {n}: POST {res.url}: {res.error or res.status_text}")
            continue
        score = (res.body or {}).get("compliance", {}).get("score")
        evidence.record(
            f"request {n} compliance score", score, "", cfg.thresholds.min_compliance_score
        )
        for problem in alimtalk.generation_problems(
            res.body, req.required_variables, cfg.thresholds.min_compliance_score
        ):
            evidence.breach(f"request {n}: {problem}")
    evidence.verdict()
