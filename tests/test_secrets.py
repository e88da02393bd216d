"""Nothing in any report, message or log shows a secret."""

from __future__ import annotations

import base64
import html
import json
import time
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opscheck import scrub as scrub_mod
from opscheck.probes.host import host_label
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
    for path in run.reports_dir.rglob("*"):
        if path.is_file():
            assert "pa55word" not in path.read_text(errors="replace")
    assert "pa55word" not in run.stdout + run.stderr


def test_scrub_masks_key_shapes_and_url_passwords():
    text = "bad key sk-ant-api03-AAAABBBBCCCCDDDD and sk-proj1234567890abcdef, redis://:pw@h:1/0"
    out = scrub(text)
    assert "AAAABBBB" not in out and "1234567890" not in out and ":pw@" not in out
    assert out.startswith("bad key sk-ant-")
    assert redact_url("https://u:p@host:8443/x?y=1") == "https://host:8443/x?y=1"
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


# ---- URL userinfo, whatever the password holds ---------------------------------------

URL_PASSWORD = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"<>'),
    min_size=4,
    max_size=30,
).filter(lambda p: "redacted" not in p)
ANY_PASSWORD = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=4, max_size=30
)
TEMPLATES = [
    "http://ops:{}@host",
    "http://ops:{}@host:8000/x",
    "redis://:{}@127.0.0.1:6379/0",
    "https://u:{}@example.com/a?b=1#c",
]


@pytest.mark.parametrize(
    "url, want",
    [
        ("http://ops:pa/ss@host", "http://host"),
        ("http://ops:p#w@host:8000/x", "http://host:8000/x"),
        ("redis://:p?w@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("http://ops:p@ss@host/x", "http://host/x"),
    ],
)
def test_redact_url_passwords_with_url_delimiters(url, want):
    """The issue's cases: urlsplit cut these at the first '/', '#' or '?' and kept them."""
    assert redact_url(url) == want
    assert scrub(f"GET {url} failed") == f"GET {want.replace('://', '://[redacted]@')} failed"


@settings(max_examples=300, deadline=None)
@given(password=ANY_PASSWORD, template=st.sampled_from(TEMPLATES))
def test_redact_url_never_keeps_the_password(password, template):
    assert password not in redact_url(template.format(password)).split("://", 1)[1]


@settings(max_examples=300, deadline=None)
@given(
    password=URL_PASSWORD,
    template=st.sampled_from(TEMPLATES),
    before=st.sampled_from(["", "error: ", "url='", '{"url": "', "<td>"]),
    after=st.sampled_from(["", " then", "'", '"}', "</td>", ", mail a@b.com"]),
)
def test_scrub_never_keeps_a_url_password(password, template, before, after):
    """Any printable password but for whitespace and '"<>' (which no URL holds raw; those
    are masked as learned values, below)."""
    assume(password not in before + template.format("") + after)  # it is only the password
    out = scrub(before + template.format(password) + after)
    assert password not in out.split("://", 1)[1]


# ---- learned values ------------------------------------------------------------------


@pytest.fixture
def learned():
    """A clean slate of learned secrets for one test."""
    scrub_mod.forget()
    yield scrub_mod
    scrub_mod.forget()


def test_env_values_are_learned_by_shape_and_name(tmp_path, learned):
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnop\n"
        "export DB_PASSWORD='pa55w0rd'\nSESSION_TOKEN=\"abcd1234efgh\" # inline\n"
        "REDIS_URL=redis://:s3cr3tpw@127.0.0.1:6379/0\nOTHER=Zx9qLmN4pR7tV2wYk\n"
        "ENVIRONMENT=production\nLOG_LEVEL=INFO\nPORT=8000\nDEBUG=true\n"
        "VECTOR_DB_PATH=./chroma_db\nAPI_KEY=short\nEMPTY_KEY=\nNAME=alimtalk-service\n"
    )
    found = set(learned.env_file_secrets(env))
    assert {"sk-ant-api03-abcdefghijklmnop", "pa55w0rd", "abcd1234efgh", "s3cr3tpw"} <= found
    assert "Zx9qLmN4pR7tV2wYk" in found, "a long token under any name"
    for plain in ("production", "INFO", "8000", "true", "./chroma_db", "short", ""):
        assert plain not in found
    assert "alimtalk-service" not in found, "letters only: a name, not a token"
    learned.learn(found)
    line = "2026-12-01 ERROR [app] upstream refused key=abcd1234efgh (pa55w0rd)"
    assert scrub(line) == "2026-12-01 ERROR [app] upstream refused key=[redacted] ([redacted])"
    assert scrub("env production, level INFO, port 8000") == "env production, level INFO, port 8000"


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x10FF), min_size=8),
    prefix=st.binary(max_size=5),
    suffix=st.binary(max_size=5),
)
def test_learned_values_masked_raw_percent_base64_escaped(secret, prefix, suffix):
    """A learned value is masked raw, percent-encoded, HTML/JSON-escaped and inside any
    base64 string (Basic auth: base64('user:' + password)), at any of its 3 alignments."""
    scrub_mod.forget()
    scrub_mod.learn([secret])
    data = prefix + secret.encode() + suffix
    shapes = [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        html.escape(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode(),
    ]
    for shape in shapes:
        out = scrub(f"x {shape} y")
        assert shape not in out
    scrub_mod.forget()


def test_combined_pattern_is_fast(learned):
    """Thirty learned secrets (their ~600 forms) against 10,000 log excerpts."""
    learned.learn(f"secret-{i:03d}-{'x' * 20}" for i in range(30))
    lines = [
        f"2026-12-01 12:00:{i % 60:02d} ERROR [app] request {i} failed: timeout"
        for i in range(10_000)
    ]
    start = time.perf_counter()
    for line in lines:
        scrub(line)
    assert time.perf_counter() - start < 5.0  # (about 0.05 s here: a generous bound)


# ---- host specs and config errors ----------------------------------------------------


@pytest.mark.parametrize(
    "spec, label",
    [
        ("ssh://app:s3cret@10.0.0.5", "app@10.0.0.5"),
        ("paramiko://app:pw@h?ssh_identity_file=/k", "app@h"),
        ("ssh://app:p@ss/w?rd@host:22", "app@host:22"),
        ("ssh://app@10.0.0.5", "app@10.0.0.5"),
        ("docker://web", "web"),
        ("local://", "local"),
    ],
)
def test_host_label_never_holds_a_password(spec, label):
    assert host_label(spec) == label


def test_host_ids_and_messages_carry_no_password(sandbox, run_checks):
    cfg = sandbox.with_config(
        '[hosts]\ntargets = ["ssh://app:s3cretHostPw@127.0.0.1:1"]\ntimeout_s = 2\n'
    )
    run = run_checks(cfg, "-m", "daily", "-k", "cpu", "-v")
    entry = run.one("cpu_usage")
    assert "[app@127.0.0.1:1]" in entry["nodeid"], entry
    assert entry["outcome"] == "failed" and "host app@127.0.0.1:1:" in entry["message"], entry
    for text in [run.stdout, run.stderr, *_report_texts(run)]:
        assert "s3cretHostPw" not in text


def _report_texts(run) -> list[str]:
    return [p.read_text(errors="replace") for p in run.reports_dir.rglob("*") if p.is_file()]


def test_url_password_with_slash_is_redacted_in_every_output(sandbox, run_checks):
    """The issue's case: `http://ops:pa/ss@host` was printed whole in stdout, the JSON
    `target`, the HTML and the XML."""
    url = "http://ops:pa/ss#w?x@127.0.0.1:9"
    run = run_checks(sandbox.config, "-m", "daily", "-k", "health", "--base-url", url, "-v")
    assert run.report["target"] == "http://127.0.0.1:9"
    for text in [run.stdout, run.stderr, *_report_texts(run)]:
        assert "pa/ss" not in text


def test_a_secret_that_begins_another_never_half_masks_it(learned):
    learned.learn(["abcdefgh1", "abcdefgh12345", "abcdefgh1X"])
    assert scrub("a abcdefgh12345 b abcdefgh1X c abcdefgh1") == (
        "a [redacted] b [redacted] c [redacted]"
    )
