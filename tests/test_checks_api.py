"""The generation smoke test and the TLS check, proven both ways against the replica."""

from __future__ import annotations

import re

import pytest

DAILY = "-m", "daily"


def only(check_id: str) -> list[str]:
    return [*DAILY, "-k", f"test_{check_id}"]


def test_template_generation_smoke_green(sandbox, run_checks):
    entry = run_checks(sandbox.config, *only("template_generation_smoke")).one(
        "template_generation_smoke"
    )
    assert entry["outcome"] == "passed", entry
    ev = {e["name"]: e for e in entry["evidence"]}
    assert ev["request 1 compliance score"]["limit"] == 80
    assert ev["request 1 compliance score"]["value"] >= 80


def test_template_generation_smoke_red_on_silent_fallback(sandbox_factory, run_checks):
    """The replica answers like the real service with its LLM down: 200, success: true,
    a compliant-looking template. Only the substance tells."""
    sb = sandbox_factory("silent-fallback")
    entry = run_checks(sb.config, *only("template_generation_smoke")).one(
        "template_generation_smoke"
    )
    assert entry["outcome"] == "failed"
    msg = entry["message"]
    assert "request 1: required variables missing from the text: 주문번호" in msg
    assert "request 1: the workflow reports errors (fallback answer?): LLM 호출 실패" in msg
    assert "request 1: no policy sources: retrieval did not run (fallback answer?)" in msg
    score = next(e for e in entry["evidence"] if e["name"] == "request 1 compliance score")
    assert score["value"] >= 80, "the fallback looks compliant: score alone would pass it"


def test_template_generation_smoke_red_on_low_score_and_errors(sandbox_factory, run_checks):
    sb = sandbox_factory()
    cfg = sb.with_config("[thresholds]\nmin_compliance_score = 99.5\n")
    entry = run_checks(cfg, *only("template_generation_smoke")).one("template_generation_smoke")
    assert entry["outcome"] == "failed"
    assert re.search(r"request 1: compliance score is [\d.]+, minimum 99.5", entry["message"])
    sb = sandbox_factory("errors", error_share=1.0)
    entry = run_checks(sb.config, *only("template_generation_smoke")).one(
        "template_generation_smoke"
    )
    assert re.fullmatch(
        r"request 1: POST .+/api/v1/templates/generate: 500 \(INTERNAL_ERROR\)", entry["message"]
    ), entry["message"]


def test_template_generation_smoke_varies_the_request_and_can_be_switched_off(sandbox, run_checks):
    from opscheck.config import CANONICAL_SMOKE
    from opscheck.probes.smoke import varied

    a, b = varied(CANONICAL_SMOKE[0]), varied(CANONICAL_SMOKE[0])
    assert a["user_request"] != b["user_request"], "the service caches answers per request"
    cfg = sandbox.with_config("[service]\ngenerate_smoke = false\n")
    entry = run_checks(cfg, *only("template_generation_smoke")).one("template_generation_smoke")
    assert entry["outcome"] == "skipped"


def test_tls_certificate_valid_green(sandbox_factory, run_checks):
    sb = sandbox_factory(https=True)
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "passed", entry
    days = next(e for e in entry["evidence"] if e["name"] == "days until expiry")
    assert days["value"] > 300 and days["limit"] == 14


def test_tls_certificate_valid_red_when_expiring(sandbox_factory, run_checks):
    sb = sandbox_factory("tls-expiring")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"days until expiry is (4\.\d+|5) days, minimum 14 days", entry["message"]
    ), entry["message"]


def test_tls_certificate_valid_red_when_expired(sandbox_factory, run_checks):
    sb = sandbox_factory("tls-expired")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert re.match(
        r"days until expiry is -(2|1\.\d+) days, minimum 14 days; a client refuses "
        r"the certificate of 127\.0\.0\.1: certificate has expired",
        entry["message"],
    ), entry["message"]


def test_tls_certificate_valid_red_on_wrong_host(sandbox_factory, run_checks):
    sb = sandbox_factory("tls-wrong-host")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert "a client refuses the certificate of 127.0.0.1: IP address mismatch" in entry["message"]


def test_tls_certificate_valid_skips_plain_http(sandbox, run_checks):
    entry = run_checks(sandbox.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "skipped"
    assert entry["message"] == "the target is not HTTPS (http)"


@pytest.mark.parametrize("fault", ["down"])
def test_tls_certificate_unreachable(sandbox_factory, run_checks, fault):
    sb = sandbox_factory(fault)
    cfg = sb.with_config('[service]\nbase_url = "https://127.0.0.1:9"\ntimeout_s = 1\n')
    entry = run_checks(cfg, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert entry["message"].startswith("cannot read the certificate of 127.0.0.1:9:")
