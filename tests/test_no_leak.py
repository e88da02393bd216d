"""No leak: canary secrets planted everywhere a secret lives never appear in any output.

Planted in the sandbox's `.env` (and quoted bare, base64'd and percent-encoded in its
app log, so the log checks show them as evidence), in `[alerts] urls`, in a `[hosts]
targets` spec, in the base URL's password and in environment variables the config
takes through `${VAR}`. A real `pytest -m daily` run, and a run stopped by a config
error, must show none of them, in any form, in stdout, stderr or any file under the
reports dir (HTML, XML, JSON, the suite's state).
"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from opscheck.sandbox import applog

ENV_KEY = "Cnry/Env+Key=qXw"  # under a secret-looking name, with URL/base64 characters
ENV_TOKEN = "zQ8mW2nR5tY7uI3oP1"  # under a plain name: a token by its shape
VAR_SECRET = "Cn4ryVar/Pw?7#z"  # a ${VAR} in the config
BASE_PW = "Cn4ryBase/Pw#1?"  # the base URL's password
HOST_PW = "Cn4ryHost@Pw/2"  # a host spec's password
ALERT_PW = "Cn4ryAlertPw3x"  # an alert URL's password
WEBHOOK = "https://hooks.example.com/services/T0CANARY/B0CANARY/Cn4ryWebhookToken"
ALL = [ENV_KEY, ENV_TOKEN, VAR_SECRET, BASE_PW, HOST_PW, ALERT_PW, WEBHOOK]


def forms(secret: str) -> list[str]:
    """The secret raw, percent-encoded and base64-encoded (alone, as Basic auth, and at
    each alignment inside a longer base64 string)."""
    shapes = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    shapes.add(re.sub(r"\d+", "<n>", secret))  # as a log signature shows it
    data = secret.encode()
    for user in (b"", b"ops:", b"app:"):
        shapes.add(base64.b64encode(user + data).decode())
    for k in range(3):
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            shapes.add(enc(b"\0" * k + data).decode()[start:end])
    return sorted(shapes)


def plant(sandbox) -> None:
    """The canaries in the sandbox's `.env` and quoted in fresh ERROR lines of its log."""
    env = sandbox.root / "app" / ".env"
    with env.open("a") as f:
        f.write(f"PAYMENT_API_KEY={ENV_KEY}\nWEBHOOK_ID={ENV_TOKEN}\n")
    records = []
    for secret in (ENV_KEY, ENV_TOKEN):
        basic = base64.b64encode(f"app:{secret}".encode()).decode()
        records += [
            ("app.payments", "ERROR", f"upstream refused key={secret}"),
            ("app.payments", "ERROR", f"retry with Authorization: Basic {basic}"),
            ("app.payments", "ERROR", f"callback https://pay.example/cb?k={quote(secret)} failed"),
            ("app.payments", "WARNING", f"token {base64.b64encode(secret.encode()).decode()}"),
        ]
    log = applog.AppLog(sandbox.root / "app" / "logs" / "app.log")
    for _ in range(3):
        log.write(*records)


def config_with_canaries(sandbox) -> Path:
    url = tomllib.loads(sandbox.config.read_text())["service"]["base_url"]
    scheme, rest = url.split("://", 1)
    return sandbox.with_config(
        f'[service]\nbase_url = "{scheme}://ops:{quote(BASE_PW, safe="")}@{rest}"\n'
        '[redis]\nurl = "redis://:${OPSCHECK_CANARY}@127.0.0.1:6379/0"\n'
        f'[alerts]\nurls = ["https://ops:{ALERT_PW}@alerts.example/hook", "{WEBHOOK}"]\n'
        f'[hosts]\ntargets = ["local://", "ssh://app:{quote(HOST_PW, safe="")}@10.0.0.5"]\n'
    )


def outputs(run) -> dict[str, str]:
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    if run.reports_dir.exists():
        for path in run.reports_dir.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def history_text(sandbox) -> str:
    """The sandbox's history database (and its WAL), as text: every stored row's strings."""
    files = sorted((sandbox.root / "history").glob("history.sqlite*"))
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in files)


def leaks(run, secrets: list[str]) -> list[str]:
    found = []
    for where, text in outputs(run).items():
        for secret in secrets:
            found += [
                f"{form!r} of {secret!r} in {where}" for form in forms(secret) if form in text
            ]
    return found


@pytest.mark.slow
def test_daily_run_shows_no_canary_anywhere(sandbox, run_checks):
    plant(sandbox)
    env = {"OPSCHECK_CANARY": VAR_SECRET}
    run = run_checks(config_with_canaries(sandbox), "-m", "daily", "-v", "-rA", env=env)
    assert run.report.get("checks"), run.stdout[-2000:]
    here = [c for c in run.checks("error_log_review") if c["nodeid"].endswith("[local]")]
    assert here and here[0]["outcome"] == "failed", "the planted lines were read"
    hosts = run.checks("cpu_usage")
    assert any("app@10.0.0.5" in c["nodeid"] for c in hosts), hosts
    assert not leaks(run, ALL)
    assert "[redacted]" in outputs(run)["stdout"] + str(run.report), "something was masked"
    stored = history_text(sandbox)
    assert "error_log_review" in stored, "the run was stored in the history"
    assert not [f for s in ALL for f in forms(s) if f in stored], "a canary in a history row"


@pytest.mark.parametrize(
    "key", ["[service]\ntimezone", "[paths]\naccess_log_format", "[service]\ntimeout_s"]
)
def test_config_error_run_shows_no_canary(sandbox, run_checks, key):
    path = sandbox.with_config(f'{key} = "${{OPSCHECK_CANARY}}"\n')
    run = run_checks(path, "-m", "daily", env={"OPSCHECK_CANARY": VAR_SECRET})
    assert run.exit_code == 4, run.stderr
    assert "the value comes from the environment: not shown" in run.stderr
    assert not leaks(run, [VAR_SECRET])


@pytest.mark.slow
def test_weekly_run_shows_no_redis_password(sandbox, run_checks):
    """The cache checks name their Redis in every message: neither the sandbox's real
    password (the `.env`'s REDIS_URL) nor a wrong one shows, whether Redis answers
    (right password), refuses (wrong one) or the URL does not parse (a `/` in a `${VAR}`
    password, which redis-py's error would quote in part)."""
    real = tomllib.loads(sandbox.config.read_text())["redis"]["url"]
    real_pw = real.split("://:", 1)[1].split("@", 1)[0]
    address = real.rsplit("@", 1)[1]
    env = {"OPSCHECK_CANARY": VAR_SECRET}
    good = run_checks(sandbox.config, "-m", "weekly and not load", "-v", "-rA")
    assert good.one("cache_ttl_policy")["outcome"] == "passed", good.stdout[-2000:]
    assert not leaks(good, [real_pw])
    for pw, said in (("${OPSCHECK_CANARY}", "not a Redis URL"), (ALERT_PW, "refused")):
        wrong = sandbox.with_config(f'[redis]\nurl = "redis://:{pw}@{address}"\n')
        bad = run_checks(wrong, "-m", "weekly and not load", "-v", "-rA", env=env)
        assert said in bad.one("cache_ttl_policy")["message"]
        assert not leaks(bad, [real_pw, VAR_SECRET, ALERT_PW, "Cn4ryVar"])
