"""Daily and before each deploy: the service really generates templates."""

import pytest

from opscheck import alimtalk
from opscheck.probes import logwindow
from opscheck.probes.http import post_json
from opscheck.probes.smoke import varied

GENERATE = "/api/v1/templates/generate"


@pytest.mark.daily
@pytest.mark.predeploy
def test_template_generation_smoke(cfg, evidence, service_target):
    """API 응답 확인: canonical requests give valid AlimTalk templates made by the real workflow.

    The real service answers 200 and `success: true` with a compliant-looking score even
    when its LLM is down, so the answer is judged on substance (`alimtalk.generation_problems`:
    the template rules, at least one `#{...}` variable since the analyzer always asks for
    수신자명, no text reporting its own failure, no violation saying the compliance check
    failed, no fallback generation method, no workflow errors, policy sources present,
    score >= min_compliance_score, and the operator's `required_variables` if any: none by
    default, the stock service ignores them). When the app log is on this machine, a
    non-2xx LLM or embeddings call, or an LLM client ERROR line, written during the
    request fails it too. Asked of base_url, and of each replica too when `[service]
    base_urls` lists them.
    """
    if not cfg.service.generate_smoke:
        pytest.skip("[service] generate_smoke = false (each run costs LLM tokens)")
    for n, req in enumerate(cfg.service.smoke_requests, 1):
        before = logwindow.mark(cfg.paths.app_log)
        res = post_json(
            service_target.url,
            GENERATE,
            varied(req),
            cfg.service.timeout_s,
            cfg.service.ca_bundle,
            cfg.service.max_body_bytes,
        )
        window = logwindow.since(before)
        evidence.record(
            f"request {n} response time", res.elapsed_ms, "ms", cfg.service.timeout_s * 1000
        )
        _judge_answer(evidence, n, res, req, cfg.thresholds.min_compliance_score)
        _judge_log(evidence, n, window)
    evidence.verdict()


def _judge_answer(evidence, n: int, res, req, min_score: float) -> None:
    """The answer to request `n`, judged on its substance."""
    if not res.answered or res.status != 200:
        evidence.breach(f"request {n}: POST {res.url}: {res.error or res.status_text}")
        return
    score = alimtalk.compliance_score(res.body)
    evidence.record(f"request {n} compliance score", score, "", min_score)
    for problem in alimtalk.generation_problems(res.body, req.required_variables, min_score):
        evidence.breach(f"request {n}: {problem}")


def _judge_log(evidence, n: int, window: logwindow.Window) -> None:
    """The app log lines written during request `n`: failed LLM/embeddings calls fail it."""
    name = f"request {n} app log during the request"
    if not window.local:
        evidence.record(name, f"not read: {window.path} is not on this machine")
        return
    evidence.record(name, window.lines, "lines")
    evidence.record(f"request {n} LLM and embeddings calls in the app log", window.describe_calls())
    notes = list(window.notes)
    if not window.generate_requests and not window.unseen:
        notes.append(
            "no generate request line was written to it during the request (served by "
            "another replica, or not served?): its LLM calls are not seen here"
        )
    if notes:
        evidence.record(f"request {n} app log notes", "; ".join(notes))
    for what in window.unseen:
        evidence.breach(f"request {n}: app log: {what}")
    failures = window.describe_failures()
    if failures:
        evidence.breach(f"request {n}: during the smoke request the app log shows {failures}")
