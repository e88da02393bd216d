"""Alerts, recoveries and the heartbeat, proven against real receivers on 127.0.0.1: an
HTTP server (Apprise `json://`, and the heartbeat) and an SMTP server (aiosmtpd, Apprise
`mailto://` with a login, no TLS), during real `pytest -m daily` runs of the sandbox."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from opscheck import alerts, config
from opscheck.severity import classify
from tests.conftest import Run, load_report, run_pytest

# the whole daily list but the host-load checks (this machine is shared: its CPU is busy)
STEADY = "not cpu_usage and not memory_usage"

SMTP_PW = "canary-smtp-Pw7/x@y"  # holds '/' and '@', as real passwords do
HOOK_PW = "canary-hook-Qz9wK3"
HC_KEY = "canary-hc-Zr5tY2"
CANARIES = [SMTP_PW, quote(SMTP_PW, safe=""), HOOK_PW, HC_KEY]


# -- receivers -----------------------------------------------------------------------


@dataclass
class Http:
    """A local HTTP receiver: records every request; `delay_s` makes it slow."""

    port: int = 0
    requests: list[dict] = field(default_factory=list)
    delay_s: float = 0.0

    def posts(self, prefix: str) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(prefix)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http() -> Iterator[Http]:
    rec = Http()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec.requests.append(
                {"method": self.command, "path": self.path, "body": body.decode("utf-8")}
            )
            time.sleep(rec.delay_s)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = _any

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # a client that gave up on the slow receiver

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@dataclass
class Smtp:
    port: int
    mails: list[email.message.EmailMessage] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [m.get_body(("plain",)).get_content() for m in self.mails]


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    rec = Smtp(_free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            rec.mails.append(
                email.message_from_bytes(envelope.content, policy=email.policy.default)
            )
            return "250 OK"

    def login(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"ops" and auth_data.password == SMTP_PW.encode()
        return AuthResult(success=ok)

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=rec.port, authenticator=login, auth_require_tls=False
    )
    controller.start()
    yield rec
    controller.stop()


# -- runs ----------------------------------------------------------------------------


def alert_config(sandbox, tmp_path: Path, alerts_toml: str, name: str = "alerts") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(sandbox.config.read_text() + "\n" + alerts_toml)
    return path


def daily(cfg: Path, reports: Path, *args: str, env: dict | None = None) -> Run:
    cli = ["-m", "daily", "-k", STEADY, "--reports-dir", str(reports), "--ops-config", str(cfg)]
    # a password in a URL is percent-encoded, as Apprise (and every URL parser) reads it
    smtp_pw = quote(SMTP_PW, safe="")
    proc = run_pytest([*cli, *args], env={"SMTP_PASSWORD": smtp_pw, **(env or {})})
    newest = max((reports / "daily").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    report = json.loads(newest.read_text())
    return Run(proc.returncode, proc.stdout, proc.stderr, reports, report)


def leaks(run: Run, *more: str) -> list[str]:
    texts = {
        "stdout": run.stdout,
        "stderr": run.stderr,
        **{f"extra{i}": t for i, t in enumerate(more)},
    }
    for path in run.reports_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return [f"{c} in {where}" for where, text in texts.items() for c in CANARIES if c in text]


# -- the tests -----------------------------------------------------------------------


@pytest.mark.slow
def test_one_message_a_run_warnings_to_chat_only_then_recovery(
    sandbox_factory, http, smtp, tmp_path
):
    broken = sandbox_factory("env-mode", "stale-backup")
    toml = (
        "[alerts]\n"
        'urls = ["mailto://ops:${SMTP_PASSWORD}@127.0.0.1:'
        f'{smtp.port}?from=opscheck@example.com&to=oncall@example.com", '
        f'{{ url = "json://hook:{HOOK_PW}@127.0.0.1:{http.port}/alert", tags = ["chat"] }}]\n'
        f'heartbeat_url = "http://127.0.0.1:{http.port}/ping/{HC_KEY}/{{label}}"\n'
    )
    reports = tmp_path / "reports"
    run = daily(alert_config(broken, tmp_path, toml), reports)
    assert run.exit_code == 1, run.stdout[-3000:]
    assert run.failed_ids() == {"env_file_mode", "backup_fresh"}

    # severity: marked critical vs not, in the JSON, the XML and the HTML
    assert run.one("backup_fresh")["severity"] == "critical"
    assert run.one("backup_fresh")["severity_reason"] == "marked critical"
    assert run.one("env_file_mode")["severity"] == "warning"
    stem = reports / "daily" / Path(run.report["reports"]["html"]).stem
    xml = stem.with_suffix(".xml").read_text()
    assert '<property name="severity" value="critical"' in xml
    assert '<property name="severity" value="warning"' in xml
    html_path = stem.with_suffix(".html")
    assert "(critical)" in html_path.read_text() and "(warning)" in html_path.read_text()

    # chat (json://) got one message with both failures, values and limits, the report
    (hook,) = http.posts("/alert")
    chat = json.loads(hook["body"])
    text = chat["title"] + "\n" + chat["message"]
    assert "2 failed (1 critical)" in chat["title"] and chat["type"] == "failure"
    assert "[critical] backup_fresh" in text and "[warning] env_file_mode" in text
    env = run.one("env_file_mode")["evidence"]
    mode = next(e for e in env if e["limit"] is not None)
    assert f"{mode['name']}: {mode['value']} (expected {mode['limit']})" in text
    age = next(e for e in run.one("backup_fresh")["evidence"] if "age" in e["name"])
    assert age["name"] in text and "limit 24 h" in text
    assert f"Report: {html_path}" in text

    # mail (no tag) got one message with the critical failure only
    (mail_text,) = smtp.texts()
    assert "backup_fresh" in mail_text and "env_file_mode" not in mail_text
    assert f"Report: {html_path}" in mail_text
    assert smtp.mails[0]["To"] == "oncall@example.com"

    deliveries = run.report["alerts"]["deliveries"]
    assert [d["status"] for d in deliveries] == ["sent", "sent"]
    assert deliveries[0]["url"] == f"urls[0] mailto://127.0.0.1:{smtp.port}"
    assert deliveries[0]["failed"] == ["backup_fresh [local]"]
    assert deliveries[1]["tags"] == ["chat"]
    assert sorted(deliveries[1]["failed"]) == ["backup_fresh [local]", "env_file_mode [local]"]

    # heartbeat: /start, then /fail (exit code 1), with the failed ids in the body
    pings = http.posts("/ping/")
    assert [p["path"].rsplit("/", 2)[-2:] for p in pings] == [["daily", "start"], ["daily", "fail"]]
    assert "backup_fresh" in pings[1]["body"] and "exit code 1" in pings[1]["body"]
    assert run.report["heartbeat"]["start"] == {"status": "sent"}
    assert run.report["heartbeat"]["finish"] == {"status": "sent"}
    bodies = [p["body"] for p in pings]  # (their paths hold the key: that is the receiver)
    assert not leaks(run, json.dumps(run.report), hook["body"], mail_text, *bodies)

    # the next run is healthy: a recovery message, to chat both, to mail the critical one
    healthy = sandbox_factory()
    again = daily(alert_config(healthy, tmp_path, toml, "healthy"), reports)
    assert again.exit_code == 0, again.stdout[-3000:]
    assert len(http.posts("/alert")) == 2 and len(smtp.mails) == 2
    recovery = json.loads(http.posts("/alert")[1]["body"])
    assert recovery["type"] == "success" and "2 recovered" in recovery["title"]
    assert "- backup_fresh" in recovery["message"] and "- env_file_mode" in recovery["message"]
    mail_text = smtp.texts()[1]
    assert "- backup_fresh" in mail_text and "env_file_mode" not in mail_text
    assert (
        again.report["alerts"]["previous_report"]
        == Path(run.report["reports"]["html"]).with_suffix(".json").name
    )
    assert [p["path"].rsplit("/", 1)[-1] for p in http.posts("/ping/")[2:]] == ["start", "daily"]
    assert not leaks(again)

    # a third healthy run: nothing failed, nothing recovered, nothing sent
    third = daily(alert_config(healthy, tmp_path, toml, "healthy"), reports)
    assert third.exit_code == 0
    assert len(http.posts("/alert")) == 2 and len(smtp.mails) == 2
    assert third.report["alerts"]["deliveries"] == []


@pytest.mark.slow
def test_undeliverable_alerts_never_change_the_run(sandbox_factory, http, tmp_path):
    """Refused, slow and unknown receivers: the run completes with the exit code it has
    without alerts, and the JSON and stderr name each failed delivery, redacted."""
    broken = sandbox_factory("stale-backup")
    plain = daily(broken.config, tmp_path / "plain")
    assert plain.exit_code == 1 and "alerts" not in plain.report

    http.delay_s = 5
    refused = _free_port()
    toml = (
        "[alerts]\n"
        "timeout_s = 1\n"
        f'urls = ["json://hook:{HOOK_PW}@127.0.0.1:{refused}/x", '
        f'"json://hook:{HOOK_PW}@127.0.0.1:{http.port}/slow", "nosuch://{HOOK_PW}"]\n'
        f'heartbeat_url = "http://127.0.0.1:{refused}/{HC_KEY}"\n'
    )
    started = time.monotonic()
    run = daily(alert_config(broken, tmp_path, toml), tmp_path / "reports")
    assert time.monotonic() - started < 120
    assert run.exit_code == plain.exit_code == run.report["exit_code"]
    assert run.outcomes() == plain.outcomes()
    down, slow, unknown = run.report["alerts"]["deliveries"]
    assert down["status"] == "failed" and down["url"] == f"urls[0] json://127.0.0.1:{refused}"
    assert slow["status"] in ("failed", "timed out") and slow["error"], slow
    assert unknown["status"] == "failed" and unknown["url"] == "urls[2] nosuch://…"
    assert "Connection error" in down["error"] and "nosuch" not in down["error"], down
    assert run.report["heartbeat"]["start"]["status"] == "failed"
    assert run.report["heartbeat"]["finish"]["status"] == "failed"
    assert f"alert to urls[0] json://127.0.0.1:{refused} failed" in run.stderr
    assert f"alert to urls[1] json://127.0.0.1:{http.port} {slow['status']}" in run.stderr
    assert "heartbeat start ping failed" in run.stderr
    assert "opscheck: alert to urls[0]" in run.stdout, "the terminal summary says it too"
    assert "Traceback" not in run.stderr + run.stdout
    assert not leaks(run)


@pytest.mark.slow
def test_a_value_past_the_alert_threshold_is_critical(sandbox_factory, tmp_path):
    """Generations take ~7 s: mean and p95 fail their limits (3000 and 5000 ms); each is
    critical exactly when its value is past 5000 ms ([alerts.thresholds])."""
    slow = sandbox_factory("slow-log")
    k = "avg_response_time or p95_response_time"
    for limit in (5000, 100000):
        cfg = alert_config(
            slow, tmp_path, f"[alerts.thresholds]\nresponse_time_ms = {limit}\n", str(limit)
        )
        proc = run_pytest(
            [
                "-m",
                "daily",
                "-k",
                k,
                "--reports-dir",
                str(tmp_path / f"r{limit}"),
                "--ops-config",
                str(cfg),
            ]
        )
        doc = load_report(tmp_path / f"r{limit}")
        assert proc.returncode == 1
        for check in doc["checks"]:
            assert check["outcome"] == "failed", check
            (value,) = [e["value"] for e in check["evidence"] if e["unit"] == "ms"]
            want = "critical" if value > limit else "warning"
            assert check["severity"] == want, (limit, check)
            if want == "critical":
                assert "past the alert threshold 5000 ms" in check["severity_reason"]
        if limit == 100000:
            assert {c["severity"] for c in doc["checks"]} == {"warning"}


def test_classify_follows_the_alert_thresholds():
    t = config.AlertThresholds()
    cpu = [{"name": "CPU busy", "value": 93.0, "unit": "%", "limit": 80}]
    assert classify("cpu_usage", False, True, cpu, t)[0] == "critical"
    assert classify("cpu_usage", False, False, cpu, t) == ("warning", "")
    rate = [{"name": "failed share", "value": 3.0, "unit": "%", "limit": 1.0}]
    assert classify("memory_usage", False, True, rate, t)[0] == "warning"  # 3 % < 85 %
    assert classify("error_rate", False, True, rate, t)[0] == "warning"  # 3 % < 5 %
    rate[0]["value"] = 6.5
    assert classify("error_rate", False, True, rate, t)[0] == "critical"
    counts = [{"name": "5xx responses", "value": 900, "unit": "", "limit": None}]
    assert classify("error_rate", False, True, counts, t)[0] == "warning"  # not compared
    assert classify("env_file_mode", True, True, [], t) == ("critical", "marked critical")


def test_alert_urls_accept_strings_and_tagged_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[alerts]\nurls = ["mailtos://a.example", { url = "slack://T/B/C", tags = ["chat"] }]\n'
    )
    cfg = config.load(path).config
    assert [(t.url, t.tags) for t in cfg.alerts.targets()] == [
        ("mailtos://a.example", []),
        ("slack://T/B/C", ["chat"]),
    ]
    path.write_text('[alerts]\nurls = [{ tags = ["chat"] }]\n')
    with pytest.raises(config.ConfigError, match=r"\[alerts\] urls: entry 1: no url"):
        config.load(path)
    path.write_text('[alerts]\nurls = ["a://b", { url = "c://d", tag = ["chat"] }]\n')
    with pytest.raises(config.ConfigError, match=r"entry 2: unknown key 'tag'"):
        config.load(path)


def test_a_hung_delivery_is_timed_out_not_waited_for():
    """A plugin that never returns (no socket timeout of its own): the run waits until
    the deadline, then says "timed out"; the thread is a daemon, so it cannot hold the exit."""
    release = threading.Event()
    attempt = alerts.Attempt("urls[0] x://…", lambda: "" if release.wait(30) else "late").start()
    attempt.wait(time.monotonic() + 0.2, 0.2)
    assert attempt.status == "timed out" and attempt.error == "no answer within 0.2 s"
    assert attempt.thread is not None and attempt.thread.daemon
    release.set()


def test_shown_urls_keep_no_credential():
    assert alerts.shown("mailto://ops:pw@smtp.example.com:587?to=x@y", 0) == (
        "urls[0] mailto://smtp.example.com:587"
    )
    assert alerts.shown("slack://TOKENA/TOKENB/TOKENC") == "slack://…"
    assert alerts.shown("json://127.0.0.1:9/hook/secret-path") == "json://127.0.0.1:9"


def test_previous_run_is_the_newest_earlier_report(tmp_path):
    label = tmp_path / "daily"
    label.mkdir()
    for stem, outcome in [
        ("20261130T020000Z", "failed"),
        ("20261130T020000Z-2", "passed"),
        ("20261201T020000Z", "failed"),
    ]:
        doc = {"checks": [{"id": "x", "nodeid": "n", "outcome": outcome}]}
        (label / f"{stem}.json").write_text(json.dumps(doc))
    (label / "20261201T020000Z-2.json").write_text('{"status": "running"')  # cut short
    name, checks = alerts.previous_run(label / "20261201T020000Z-3.json")
    assert name == "20261201T020000Z.json" and checks["n"]["outcome"] == "failed"
    name, _ = alerts.previous_run(label / "20261201T020000Z.json")
    assert name == "20261130T020000Z-2.json"
    assert alerts.previous_run(label / "20261130T020000Z.json") == ("", {})


def test_a_full_disk_at_the_rewrite_keeps_the_report(tmpfs, http, capsys):
    """ENOSPC when the JSON gains the delivery status: the report stays as written."""
    mnt = tmpfs("size=64k")
    report = mnt / "daily" / "20261201T020000Z.json"
    report.parent.mkdir()
    doc = {
        "label": "daily",
        "host": "ops-1",
        "exit_code": 1,
        "checks": [
            {
                "id": "disk_usage",
                "nodeid": "d",
                "severity": "critical",
                "outcome": "failed",
                "message": "/ is 93 % full",
                "evidence": [],
            }
        ],
    }
    written = json.dumps(doc)
    report.write_text(written)
    fd = os.open(mnt / "filler", os.O_CREAT | os.O_WRONLY)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    cfg = config.Config.model_validate(
        {"alerts": {"urls": [f"json://127.0.0.1:{http.port}/alert"], "timeout_s": 5}}
    )
    paths = SimpleNamespace(json=report, html=report.with_suffix(".html"))
    state = SimpleNamespace(
        loaded=SimpleNamespace(config=cfg),
        label="daily",
        doc=doc,
        paths=paths,
        guard=SimpleNamespace(failed=set()),
        started=None,
    )
    out = alerts.Outbound(state)
    out.finish()
    assert len(http.posts("/alert")) == 1, "the alert went out before the rewrite"
    assert report.read_text() == written
    assert [p.name for p in report.parent.iterdir()] == [report.name], "no temp file left"
    assert "alert and heartbeat status not added" in capsys.readouterr().err


def test_heartbeat_paths_keep_the_query():
    assert alerts._below("https://hc-ping.com/k/opscheck-daily?create=1", "start") == (
        "https://hc-ping.com/k/opscheck-daily/start?create=1"
    )
    assert alerts._below("http://127.0.0.1:9/ping/", "fail") == "http://127.0.0.1:9/ping/fail"
