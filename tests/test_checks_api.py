"""The generation smoke test and the TLS check, proven both ways against the replica."""

from __future__ import annotations

import json
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
    per_cert = [e for e in entry["evidence"] if e["name"].endswith(" days left")]
    assert [e["name"].split(" (")[0] for e in per_cert] == ["leaf #0", "intermediate #1"]
    assert per_cert[1]["name"] == (
        "intermediate #1 (CN=opscheck sandbox intermediate CA,O=opscheck sandbox) days left"
    )
    assert all(e["value"] > 300 and e["limit"] == 14 for e in per_cert)


def test_tls_certificate_valid_red_when_expiring(sandbox_factory, run_checks):
    sb = sandbox_factory("tls-expiring")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"the leaf certificate OU=Testing cert #\w+,O=trustme v[\d.]+ expires in (4\.\d+|5) days "
        r"\([\d-]+ [\d:]+ UTC\), minimum 14 days \(tls_min_days\)",
        entry["message"],
    ), entry["message"]


def test_tls_certificate_valid_red_when_expired(sandbox_factory, run_checks):
    sb = sandbox_factory("tls-expired")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert re.match(
        r"the leaf certificate .+ expired (2|1\.\d+) days ago \([\d-]+ [\d:]+ UTC\), "
        r"minimum 14 days \(tls_min_days\); a client refuses "
        r"the certificate of 127\.0\.0\.1: certificate has expired",
        entry["message"],
    ), entry["message"]


def test_tls_certificate_valid_red_when_an_intermediate_expires(sandbox_factory, run_checks):
    """The leaf is good for 90 days; the intermediate the server sends expires in 3."""
    sb = sandbox_factory("tls-intermediate-expiring")
    entry = run_checks(sb.config, *only("tls_certificate_valid")).one("tls_certificate_valid")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(
        r"the intermediate certificate CN=opscheck sandbox intermediate CA,O=opscheck sandbox "
        r"expires in (2\.\d+|3) days \([\d-]+ [\d:]+ UTC\), minimum 14 days \(tls_min_days\)",
        entry["message"],
    ), entry["message"]
    ev = {e["name"].split(" (")[0]: e for e in entry["evidence"]}
    assert 89 < ev["leaf #0"]["value"] <= 90 and 2 < ev["intermediate #1"]["value"] <= 3
    assert ev["client verification"]["value"] == "accepted", "a client still accepts it today"


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


# ---- the health checks against a misbehaving server (tests/badserver.py) ----------------

HEALTH_CHECKS = [*DAILY, "-k", "test_health_endpoint_up or test_health_components_healthy"]


@pytest.fixture
def bad_target(tmp_path):
    """`bad_target("behaviour")`: (a config whose base_url is a BadServer, the server)."""
    from tests.badserver import BadServer

    started = []

    def start(behaviour: str, timeout_s: float = 1, **kw: str):
        srv = BadServer(behaviour, **kw)
        started.append(srv)
        config = tmp_path / f"bad-{len(started)}.toml"
        config.write_text(f'[service]\nbase_url = "{srv.url}"\ntimeout_s = {timeout_s}\n')
        return config, srv

    yield start
    for srv in started:
        srv.stop()


def test_health_checks_red_on_a_redirect_to_a_login_page(bad_target, run_checks):
    config, srv = bad_target("redirect-login")
    run = run_checks(config, *HEALTH_CHECKS)
    login = f"http://127.0.0.1:{srv.port}/login?next=/health"
    up = run.one("health_endpoint_up")
    assert up["outcome"] == "failed"
    assert up["message"] == (
        f"GET {srv.url}/health answered 301 redirect to {login}, expected 200 "
        "(redirects are not followed)"
    )
    assert {"name": "redirects to", "value": login, "unit": "", "limit": None} in up["evidence"]
    components = run.one("health_components_healthy")
    assert components["outcome"] == "failed"
    assert components["message"] == (
        f"GET {srv.url}/health answered 301 redirect to {login}; redirects are not followed, "
        "component states unknown"
    )
    assert "hunter2" not in run.stdout + json.dumps(run.report)
    assert srv.requests == ["GET /health HTTP/1.1"] * 2


def test_health_checks_red_on_a_redirect_to_a_healthy_port(sandbox, bad_target, run_checks):
    """The 302 points at the healthy sandbox (which passes both checks itself)."""
    import tomllib

    healthy = tomllib.loads(sandbox.config.read_text())["service"]["base_url"]
    config, _ = bad_target("redirect", redirect_to=f"{healthy}/health")
    run = run_checks(config, *HEALTH_CHECKS)
    assert run.outcomes() == {"health_endpoint_up": "failed", "health_components_healthy": "failed"}
    assert f"answered 302 redirect to {healthy}/health" in run.one("health_endpoint_up")["message"]
    direct = run_checks(sandbox.config, *HEALTH_CHECKS)
    assert direct.outcomes() == {
        "health_endpoint_up": "passed",
        "health_components_healthy": "passed",
    }


def test_health_checks_red_on_headers_trickled_at_one_byte_a_second(bad_target, run_checks):
    """Each byte comes within the 2 s timeout: only a total deadline ends the request."""
    config, srv = bad_target("trickle-headers", timeout_s=2)
    run = run_checks(config, *HEALTH_CHECKS)
    up = run.one("health_endpoint_up")
    assert up["outcome"] == "failed"
    assert re.fullmatch(
        rf"GET {srv.url}/health: no answer within 2 s \(status line and headers not complete\) "
        r"after 2\d{3} ms, limit 2000 ms",
        up["message"],
    ), up["message"]
    assert up["duration_s"] < 5, "held until the deadline, not until pytest-timeout"
    components = run.one("health_components_healthy")
    assert components["outcome"] == "failed"
    assert components["message"] == (
        f"GET {srv.url}/health: no answer within 2 s (status line and headers not complete); "
        "component states unknown"
    )


def test_health_checks_red_on_an_answer_cut_mid_headers(bad_target, run_checks):
    config, srv = bad_target("cut-headers")
    run = run_checks(config, *HEALTH_CHECKS)
    cut = "connection closed mid-headers (after the status '200 OK'): no complete answer"
    up = run.one("health_endpoint_up")
    assert up["outcome"] == "failed"
    assert up["message"].startswith(f"GET {srv.url}/health: {cut} after "), up["message"]
    components = run.one("health_components_healthy")
    assert components["outcome"] == "failed"
    assert components["message"] == f"GET {srv.url}/health: {cut}; component states unknown"


def test_health_components_red_on_a_json_list(bad_target, run_checks):
    config, srv = bad_target("json-list")
    run = run_checks(config, *HEALTH_CHECKS)
    assert run.one("health_endpoint_up")["outcome"] == "passed"  # it does answer 200
    components = run.one("health_components_healthy")
    assert components["outcome"] == "failed"
    assert components["message"] == (
        f"GET {srv.url}/health answered 200: the answer is a JSON list, not an object: "
        '["healthy", "healthy"]'
    )


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("broken-chunked", "broken chunked encoding: Invalid character in chunk size: b'zz'"),
        ("short-body", "body cut: connection closed after 14 of 1000 bytes"),
    ],
)
def test_health_endpoint_red_on_broken_framing(bad_target, run_checks, behaviour, reason):
    config, srv = bad_target(behaviour)
    run = run_checks(config, *HEALTH_CHECKS)
    for check_id in ("health_endpoint_up", "health_components_healthy"):
        entry = run.one(check_id)
        assert entry["outcome"] == "failed"
        assert entry["message"].startswith(f"GET {srv.url}/health: {reason}"), entry["message"]
    assert "Traceback" not in run.stdout
