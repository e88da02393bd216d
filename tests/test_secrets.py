"""Nothing in any report, message or log shows a secret."""

from __future__ import annotations

from opscheck.sandbox.layout import env_secrets
from opscheck.scrub import redact_url, scrub


def test_no_env_value_or_config_password_in_any_output(sandbox_factory, run_checks):
    sb = sandbox_factory("env-mode", "degraded")
    secrets = env_secrets(sb.root / "app" / ".env")
    assert len(secrets) == 3
    password = "hunter2-redis-password"
    cfg = sb.with_config('[redis]\nurl = "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0"\n')
    run = run_checks(cfg, "-m", "daily", "-v", env={"REDIS_PASSWORD": password})
    assert run.exit_code == 1
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in run.reports_dir.rglob("*") if p.is_file()]
    for text in texts:
        for secret in [*secrets, password]:
            assert secret not in text


def test_target_url_credentials_are_redacted_in_reports(sandbox, run_checks):
    url = "http://admin:pa55word@127.0.0.1:9"
    run = run_checks(sandbox.config, "-m", "daily", "-k", "health", "--base-url", url)
    assert run.report["target"] == "http://127.0.0.1:9"
    for path in run.reports_dir.rglob("*.*"):
        assert "pa55word" not in path.read_text(errors="replace")
    assert "pa55word" not in run.stdout + run.stderr


def test_scrub_masks_key_shapes_and_url_passwords():
    text = "bad key sk-ant-api03-AAAABBBBCCCCDDDD and sk-proj1234567890abcdef, redis://:pw@h:1/0"
    out = scrub(text)
    assert "AAAABBBB" not in out and "1234567890" not in out and ":pw@" not in out
    assert out.startswith("bad key sk-ant-")
    assert redact_url("https://u:p@host:8443/x?y=1") == "https://host:8443/x?y=1"
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
