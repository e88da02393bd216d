"""The generation smoke test and the TLS check, proven both ways against the replica."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

DAILY = "-m", "daily"


def only(check_id: str) -> list[str]:
    return [*DAILY, "-k", f"test_{check_id}"]


def smoke(run_checks, config) -> dict:
    return run_checks(config, *only("template_generation_smoke")).one("template_generation_smoke")


def evidence_of(entry: dict) -> dict:
    return {e["name"]: e["value"] for e in entry["evidence"]}


FALLBACK_TELLS = (
    "request 1: the template has no #{...} variable, yet the service always asks for "
    "#{수신자명} (fallback answer?)",
    "request 1: the template text reports a failure: '안녕하세요 템플릿 생성에 실패했습니다.' "
    "(fallback answer?)",
    "request 1: a compliance violation says the check itself failed: '컴플라이언스 검사 실패'",
)


def test_template_generation_smoke_green(sandbox, run_checks):
    """The default request demands nothing the real service cannot give (it ignores
    required_variables); the app log's lines of the request are read and are healthy."""
    entry = smoke(run_checks, sandbox.config)
    assert entry["outcome"] == "passed", entry
    ev = {e["name"]: e for e in entry["evidence"]}
    assert ev["request 1 compliance score"]["limit"] == 80
    assert ev["request 1 compliance score"]["value"] >= 80
    assert ev["request 1 app log during the request"]["value"] > 20
    assert ev["request 1 app log during the request"]["unit"] == "lines"
    calls = ev["request 1 LLM and embeddings calls in the app log"]["value"]
    assert calls == "LLM 200: 3, embeddings 200: 2"


def test_template_generation_smoke_red_on_silent_fallback(sandbox_factory, run_checks):
    """The exact fallback body of the real service with its LLM down (200, success: true,
    score 85.5, no workflow errors, policy sources present), its app log healthy:
    the substance alone tells."""
    entry = smoke(run_checks, sandbox_factory("silent-fallback").config)
    assert entry["outcome"] == "failed"
    assert entry["message"] == "; ".join(FALLBACK_TELLS), entry["message"]
    ev = evidence_of(entry)
    assert ev["request 1 compliance score"] == 85.5, "score alone would pass it"


@pytest.mark.parametrize(
    ("fault", "calls", "status", "kind"),
    [
        ("llm-down", "9 LLM calls answered 500", "500", "api_error"),
        ("llm-401", "3 LLM calls answered 401", "401", "authentication_error"),
        ("llm-overloaded", "9 LLM calls answered 529", "529", "overloaded_error"),
    ],
)
def test_template_generation_smoke_red_when_the_llm_fails(
    sandbox_factory, run_checks, fault, calls, status, kind
):
    """The LLM answers 500, 401 or 529 as in the real service: the fallback body's
    substance and the app log's lines of the request both say so."""
    entry = smoke(run_checks, sandbox_factory(fault).config)
    assert entry["outcome"] == "failed"
    msg = entry["message"]
    for tell in FALLBACK_TELLS:
        assert tell in msg
    log = (
        f"request 1: during the smoke request the app log shows {calls}, 6 "
        'src.utils.llm_client ERROR lines (first: "Error generating response: Error code: '
        f"{status} - {{'type': 'error', 'error': {{'type': '{kind}', "
    )
    assert log in msg, msg


def test_template_generation_smoke_red_when_embeddings_fail(sandbox_factory, run_checks):
    """Only the embeddings answer 401: a normal-looking template without policy sources."""
    entry = smoke(run_checks, sandbox_factory("embeddings-401").config)
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        "request 1: no policy sources: retrieval did not run (fallback answer?); request 1: "
        "during the smoke request the app log shows 2 embeddings calls answered 401"
    ), entry["message"]


def test_template_generation_smoke_red_when_the_app_log_cannot_be_read(sandbox, run_checks):
    """A local app log that is not a file: what it could not see fails it, naming it."""
    (sandbox.root / "elsewhere.log").mkdir()
    cfg = sandbox.with_config(f'[paths]\napp_log = "{sandbox.root}/elsewhere.log"\n')
    entry = smoke(run_checks, cfg)
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        f"request 1: app log: the app log {sandbox.root}/elsewhere.log is not a regular file"
    )


def test_template_generation_smoke_demands_the_operators_required_variables(sandbox, run_checks):
    """An operator's required_variables are still demanded (their deployment may honour
    them); the stock service, as the replica, ignores them: red, naming them."""
    asked = (
        'smoke_requests = [{ user_request = "피자 주문 완료 안내 메시지를 만들어 주세요", '
        'required_variables = ["주문번호"] }]\n'
    )
    cfg = sandbox.root / "required.toml"
    cfg.write_text(sandbox.config.read_text().replace("[service]\n", "[service]\n" + asked, 1))
    entry = smoke(run_checks, cfg)
    assert entry["outcome"] == "failed"
    assert entry["message"] == "request 1: required variables missing from the text: 주문번호"


@contextmanager
def answering(body: bytes) -> Iterator[str]:
    """A real HTTP server on loopback that answers every POST 200 with `body`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"success": true}]', "the answer is JSON but not an object: an array"),
        (b'"templates"', "the answer is JSON but not an object: a string"),
        (b"<html>busy</html>", "the answer is not a JSON object (no JSON body)"),
    ],
)
def test_template_generation_smoke_red_on_an_answer_that_is_not_an_object(
    tmp_path, run_checks, body, reason
):
    """200 with JSON that is not an object: a failure with its reason, no AttributeError."""
    with answering(body) as url:
        cfg = tmp_path / "opscheck.toml"
        cfg.write_text(f'[service]\nbase_url = "{url}"\n[paths]\napp_dir = "{tmp_path}"\n')
        entry = smoke(run_checks, cfg)
    assert entry["outcome"] == "failed"
    assert entry["message"] == f"request 1: {reason}"
    ev = evidence_of(entry)
    assert ev["request 1 app log during the request"] == (
        f"not read: {tmp_path}/logs/app.log is not on this machine"
    )
    assert ev["request 1 compliance score"] is None


def test_template_generation_smoke_red_on_parts_of_the_wrong_type(tmp_path, run_checks):
    """An object whose parts are lists or strings is judged, not a traceback."""
    answer = {"success": True, "template": ["x"], "compliance": [], "workflow_info": "none"}
    with answering(json.dumps(answer).encode()) as url:
        cfg = tmp_path / "opscheck.toml"
        cfg.write_text(f'[service]\nbase_url = "{url}"\n[paths]\napp_dir = "{tmp_path}"\n')
        entry = smoke(run_checks, cfg)
    assert entry["outcome"] == "failed"
    assert entry["message"] == (
        "request 1: the body is empty; request 1: no compliance score in the answer; "
        "request 1: no policy sources: retrieval did not run (fallback answer?)"
    ), entry["message"]


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
        r"the leaf certificate OU=Testing cert #[\w-]+,O=trustme v[\d.]+ expires in "
        r"(4\.\d+|5) days \([\d-]+ [\d:]+ UTC\), minimum 14 days \(tls_min_days\)",
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
