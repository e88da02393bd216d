"""The access log as real nginx writes it, in every format at once: requests sent
through Debian's nginx to the sandbox replica, then nginx's own files read back."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from opscheck.probes.logs import files
from opscheck.probes.logs.access import AUTH_FLOOR, RATE_FLOOR
from opscheck.sandbox import control
from tests.conftest import Run, load_report, run_pytest
from tests.realnginx import FORMATS, replica_address, start

GENERATE = {"user_request": "피자 주문 완료 안내 메시지를 만들어 주세요"}
PROBES = ["/%2eenv", "//.env", "/static/../.env"]  # nginx resolves each to /.env: 200


@dataclass
class Traffic:
    logs: dict[str, Path]
    sent: Counter  # status -> requests
    hours: set[str]  # UTC hour keys while it ran
    seconds: float  # how long the requests took
    config: Path  # the sandbox's opscheck.toml


@pytest.fixture(scope="module")
def traffic(goldens, tmp_path_factory) -> Traffic:
    """One run of requests through nginx (in Asia/Seoul: its lines say +0900)."""
    root = tmp_path_factory.mktemp("nginx-traffic")
    config = control.up(root / "sb", control.Options(template=goldens(), latency_scale=0.02))
    ngx = start(root / "nginx", replica_address(config), "Asia/Seoul", root / "sb")
    began = datetime.now(UTC)
    t0 = time.monotonic()
    sent: Counter = Counter()
    try:
        for _ in range(5):
            sent[ngx.request("GET", "/health")] += 1
        for _ in range(3):
            sent[ngx.request("POST", "/api/v1/templates/generate", GENERATE)] += 1
        sent[ngx.request("GET", "/nope?x=1")] += 1
        for path in PROBES:
            sent[ngx.request("GET", path)] += 1
        for _ in range(AUTH_FLOOR + 1):
            sent[ngx.request("GET", "/admin")] += 1
        sent[ngx.request("GET", "/.git/config", headers={"X-Forwarded-For": "203.0.113.77"})] += 1
        agent = 'say "hi" \\ 한'.encode()  # nginx escapes it: \x22 ... or \" in JSON
        xff = {"X-Forwarded-For": "198.51.100.9, 10.0.0.1", "User-Agent": agent}
        sent[ngx.request("GET", "/health", headers=xff)] += 1
        for _ in range(RATE_FLOOR):
            sent[ngx.request("GET", "/health")] += 1
        ngx.slow_replica(3000)
        sent[ngx.request("GET", "/health", timeout=0.5) or 499] += 1  # the client gives up
        sent[ngx.request("GET", "/t/health")] += 1  # nginx gives up after 1 s: 504
        ngx.slow_replica(0)
        time.sleep(0.3)  # nginx writes the 499 line when it sees the client gone
    finally:
        ngx.stop()
        control.down(root / "sb")
    seconds = time.monotonic() - t0
    hours = {(began + timedelta(hours=h)).strftime("%Y-%m-%d %H") for h in (0, 1)}
    hours = {h for h in hours if h <= datetime.now(UTC).strftime("%Y-%m-%d %H")}
    return Traffic({n: ngx.log(n) for n in FORMATS}, sent, hours, seconds, config)


def _summary(traffic: Traffic, name: str):
    s, _ = files.summarize(str(traffic.logs[name]), None, fmt="access", access_format=FORMATS[name])
    return s


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_line_counted_with_its_exact_code(traffic, name):
    s = _summary(traffic, name)
    total = sum(traffic.sent.values())
    assert (s.lines, s.unparsed) == (total, 0), s.unparsed_sample
    codes = Counter()
    for h in s.hours.values():
        codes.update(h.codes)
    assert codes == Counter({str(k): n for k, n in traffic.sent.items()})
    assert codes["499"] == 1 and codes["504"] == 1, "the client that gave up, nginx's timeout"


@pytest.mark.parametrize("name", list(FORMATS))
def test_hours_are_utc_whatever_the_offset_nginx_wrote(traffic, name):
    """nginx wrote +0900 (TZ=Asia/Seoul); hours are UTC, the latest stamp too."""
    text = traffic.logs[name].read_text()
    assert "+0900" in text or "+09:00" in text
    s = _summary(traffic, name)
    assert set(s.hours) <= traffic.hours and s.hours
    assert s.latest[:13] in traffic.hours


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("combined", ""),
        ("main", ""),
        ("timed", "access log ($request_time, client side)"),
        ("json", "access log ($request_time, client side)"),
        ("upstream", "access log ($upstream_response_time, upstream side)"),
    ],
)
def test_latency_where_the_format_has_it_and_said_where_not(traffic, name, source):
    s = _summary(traffic, name)
    total = sum(traffic.sent.values())
    timed = sum(h.latency.n for h in s.hours.values())
    assert s.latency_source == source
    if not source:
        assert (timed, s.untimed) == (0, total), "no timing: every response said so"
    elif name == "upstream":
        nginx_answered = len(PROBES) + AUTH_FLOOR + 1  # /.env and /admin: no upstream ("-")
        assert (timed, s.untimed) == (total - nginx_answered, nginx_answered)
    else:
        assert (timed, s.untimed) == (total, 0)
    if source:
        gen = [h.endpoint_latency.get("POST /api/v1/templates/generate") for h in s.hours.values()]
        assert sum(g.n for g in gen if g) == 3


@pytest.mark.parametrize("name", list(FORMATS))
def test_probe_paths_nginx_resolved_to_env_are_seen(traffic, name):
    s = _summary(traffic, name)
    hits = s.in_hours(s.probe_hits, traffic.hours, add=True)
    for path in PROBES:
        assert hits[f"127.0.0.1 {path} 200"] == 1, hits
    assert not any("/health" in k or "/nope" in k for k in hits)


@pytest.mark.parametrize(
    ("name", "git_client", "other_client"),
    [
        ("combined", "127.0.0.1", "127.0.0.1"),
        ("timed", "127.0.0.1", "127.0.0.1"),
        ("main", "203.0.113.77", "198.51.100.9"),
        ("json", "203.0.113.77", "198.51.100.9"),
    ],
)
def test_client_is_the_first_forwarded_address_when_the_format_has_it(
    traffic, name, git_client, other_client
):
    s = _summary(traffic, name)
    hits = s.in_hours(s.probe_hits, traffic.hours, add=True)
    assert hits == {**hits, f"{git_client} /.git/config 404": 1}
    rates = s.in_hours(s.clients_over_rate, traffic.hours)
    total = sum(traffic.sent.values())
    local = total - (2 if other_client != "127.0.0.1" else 0)
    assert set(rates) == {"127.0.0.1"}
    if traffic.seconds < 55:  # every request within one 60 s window
        assert rates["127.0.0.1"] == local


@pytest.mark.parametrize("name", ["timed", "json"])
def test_403_burst_from_one_client_is_kept(traffic, name):
    s = _summary(traffic, name)
    assert s.in_hours(s.auth_bursts, traffic.hours) == {"127.0.0.1": AUTH_FLOOR + 1}


@pytest.mark.parametrize(("seconds", "peak"), [(52, 40), (234, 10)])
def test_403s_in_any_60_seconds_on_nginx_lines(traffic, tmp_path, seconds, peak):
    """nginx's own 403 line, 40 times over `seconds` across a minute boundary: 40 in
    52 s are one burst (per clock minute it was 20 and 20), 40 in 234 s are not."""
    line = next(x for x in traffic.logs["timed"].read_text().splitlines() if " 403 " in x)
    start = datetime(2026, 11, 25, 12, 0, 34, tzinfo=timezone(timedelta(hours=9)))
    step = seconds / 39
    lines = [
        re.sub(r"\[[^]]+\]", (start + timedelta(seconds=round(i * step))).strftime(
            "[%d/%b/%Y:%H:%M:%S %z]"), line, count=1)
        for i in range(40)
    ]  # fmt: skip
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    s, _ = files.summarize(str(log), None, fmt="access", access_format="timed")
    assert s.auth_bursts == {"2026-11-25 03|127.0.0.1": peak}


def test_abnormal_access_red_on_probes_nginx_answered(traffic, tmp_path):
    """The real check on nginx's JSON log: the resolved /.env probes fail it."""
    base = traffic.config.read_text()
    cfg = tmp_path / "opscheck.toml"
    log = traffic.logs["json"]
    cfg.write_text(
        re.sub(r"access_log = .*", f'access_log = "{log}"\naccess_log_format = "json"', base)
    )
    reports = tmp_path / "reports"
    proc = run_pytest(
        ["-m", "daily", "-k", "test_abnormal_access", "--ops-config", str(cfg),
         "--reports-dir", str(reports)]
    )  # fmt: skip
    run = Run(proc.returncode, proc.stdout, proc.stderr, reports, load_report(reports))
    entry = run.one("abnormal_access")
    assert entry["outcome"] == "failed", entry
    for path in PROBES:
        assert f"127.0.0.1 {path} 200 answered with success 1 time(s)" in entry["message"]


def test_a_zone_behind_utc(real_nginx):
    """nginx in New York writes -0500 (-0400 in summer): the hours are UTC."""
    ngx = real_nginx("America/New_York")
    began = datetime.now(UTC)
    for _ in range(3):
        assert ngx.request("GET", "/health") == 200
    ngx.stop()
    hours = {(began + timedelta(hours=h)).strftime("%Y-%m-%d %H") for h in (0, 1)}
    for name, spec in FORMATS.items():
        text = ngx.log(name).read_text()
        assert re.search(r"-0[45]00\]|-0[45]:00", text), text
        s, _ = files.summarize(str(ngx.log(name)), None, fmt="access", access_format=spec)
        assert set(s.hours) <= hours and sum(h.requests for h in s.hours.values()) == 3
