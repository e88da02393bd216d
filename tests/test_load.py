"""The Locust load checks proven against the sandbox: green, slow, erroring, too few
requests per second, requests still in flight at the end, too few samples; the p95 they
report is accurate; every completed request is counted (local and distributed mode).

Real Locust runs, loopback only, each bounded to its run time plus stop timeout plus 30 s.
An endpoint gets 1 request in 5 (health, validate), each user taking them in turn: runs
are sized so that each gets a few, and `min_requests` is set low unless a test is about it."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import re
import threading
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import psutil
import pytest

from opscheck.probes import load

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # Locust's timings measure the machine
WEEKLY = "-m", "weekly and load"
GENERATE = "POST /api/v1/templates/generate"
HEALTH, VALIDATE = "GET /health", "POST /api/v1/templates/validate"
MIX = (GENERATE, HEALTH, GENERATE, VALIDATE, GENERATE)  # loadtests/locustfile.py's, in turn


def load_config(sb, users=8, duration=6, min_requests: int | None = 1, **extra) -> object:
    lines = [f"users = {users}", f"spawn_rate = {users}", f"duration_s = {duration}"]
    if min_requests is not None:
        lines.append(f"min_requests = {min_requests}")
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return sb.with_config("[load]\n" + "\n".join(lines) + "\n")


def base_url(sb) -> str:
    return tomllib.loads(sb.config.read_text())["service"]["base_url"]


def generations(sb) -> int:
    """The generations the sandbox finished, by its own count (GET /stats)."""
    with urllib.request.urlopen(base_url(sb) + "/stats", timeout=5) as resp:
        return json.loads(resp.read())["successful_generations"]


def test_load_checks_green(sandbox, run_checks):
    run = run_checks(load_config(sandbox, min_requests=2), *WEEKLY)
    p95, health = run.one("load_test_p95"), run.one("health_under_load")
    assert p95["outcome"] == "passed", p95
    assert health["outcome"] == "passed", health
    names = {e["name"] for e in p95["evidence"]}
    assert {
        "POST /api/v1/templates/generate: p95",
        "GET /health: p95",
        "POST /api/v1/templates/validate: p95",
        "Aggregated: p95",
    } <= names
    locust_html = list(run.reports_dir.rglob("*-locust.html"))
    assert len(locust_html) == 1, "Locust's own report lies beside the run's report"


def test_load_test_p95_red_when_slow(sandbox_factory, run_checks):
    """Every answer takes 6 s: p95 over the 5 s limit, reported with Locust's precision.
    The requests running at the end finish within the stop timeout (timeout_s)."""
    sb = sandbox_factory(fixed_delay_ms=6000, timeout_s=10)
    run = run_checks(load_config(sb, users=16, duration=8), *WEEKLY, "-k", "p95")
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "failed", entry["message"]
    assert re.search(r"Aggregated: p95 is 6[01]00 ms, limit 5000 ms", entry["message"]), entry[
        "message"
    ]


def test_load_test_p95_red_on_errors(sandbox_factory, run_checks):
    sb = sandbox_factory("errors", error_share=0.05)
    run = run_checks(load_config(sb, users=8, duration=10), *WEEKLY, "-k", "p95")
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "failed"
    m = re.search(r"Aggregated: failures is ([\d.]+) %, limit 1 %", entry["message"])
    assert m and float(m.group(1)) > 1, entry["message"]
    assert "GET /health: failures" not in entry["message"], "/health is not faulted"


def test_load_test_p95_red_on_low_rps(sandbox, run_checks):
    run = run_checks(load_config(sandbox, min_rps=500), *WEEKLY, "-k", "p95")
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "failed"
    assert re.fullmatch(r"requests per second is [\d.]+ rps, minimum 500 rps", entry["message"])


def test_health_under_load_red_when_health_fails(sandbox_factory, run_checks):
    sb = sandbox_factory("health-500")
    run = run_checks(load_config(sb), *WEEKLY, "-k", "health_under_load")
    entry = run.one("health_under_load")
    assert entry["outcome"] == "failed"
    assert "/health under load: answered 500 (HEALTH_CHECK_FAILED)" in entry["message"]


def test_health_under_load_red_when_health_is_slow(sandbox_factory, run_checks):
    sb = sandbox_factory("slow", timeout_s=1.0)
    run = run_checks(load_config(sb, users=2, duration=4), *WEEKLY, "-k", "health_under_load")
    entry = run.one("health_under_load")
    assert entry["outcome"] in ("failed", "error"), entry
    assert re.search(
        r"slowest /health under load is 1\d{3} ms, limit 1000 ms|no answer within 1 s",
        entry["message"],
    ), entry["message"]


MACHINE_BUSY = 90.0  # % of all cores: the replica then waits for a CPU too


def _accuracy_run(sandbox_factory, users: int) -> load.LoadRun:
    sb = sandbox_factory(fixed_delay_ms=200)
    # users ramp up over 5 s, as a configured profile does; a burst of 200 users at once
    # measures the burst, not the steady state
    result = load.run(base_url(sb), load.Profile(users, max(2, users / 5), 20), None, 5.0)
    assert not result.error, result
    assert result.generator_lag_p95_ms is not None and result.generator_cpu_percent is not None
    assert result.machine_cpu_percent is not None and result.total.server_p95_ms is not None
    if result.saturated:
        assert result.saturation.startswith("load generator saturated: "), result.saturation
        assert "not a measure of the service" in result.saturation
    return result


@pytest.mark.parametrize("users", [10, 50])
def test_reported_p95_is_accurate(sandbox_factory, users):
    """Against a fixed 200 ms server-side delay, the p95 reported is within 5 % of the
    truth (210 ms is Locust's next 10 ms step above 200), at the concurrency this
    2-core machine sustains with the replica on it. A run whose generator could not
    keep time says so (`saturated`); one on a saturated machine (CPUs 90 % busy, or
    the replica's own X-Process-Time p95 above 210 ms: the truth was not 200 ms) cannot
    test this claim and is skipped saying so, never judged against a looser bound."""
    result = _accuracy_run(sandbox_factory, users)
    server = result.total.server_p95_ms
    if result.saturated or result.machine_cpu_percent >= MACHINE_BUSY or server > 210:
        why = result.saturation or (
            f"its CPUs were {result.machine_cpu_percent:g} % busy, the replica's own "
            f"p95 (X-Process-Time) {server:g} ms"
        )
        pytest.skip(f"{users} users: the machine did not sustain it: {why}")
    for s in [*result.endpoints, result.total]:
        assert 200 <= s.p95_ms <= 210, f"{users} users: {s.name}: {s}, {result}"


def test_beyond_what_the_machine_sustains_the_run_shows_its_measures(sandbox_factory):
    """200 users (150 requests a second) on the 2 cores the replica also uses: Locust
    reported GET /health p95 220 ms while the replica's own X-Process-Time said 200-210,
    with the generator's timer p95 1-2 ms late, its CPU 8 % of a core and the machine
    33-81 % busy: the 10-20 ms come from between the replica's app and Locust's clock
    (uvicorn's loop, loopback, response batches), which no generator measure here
    sees. So no accuracy claim is made at 200 users; what holds: the run reports the
    service's own p95 beside Locust's, and a generator only ever adds time to it."""
    result = _accuracy_run(sandbox_factory, 200)
    for s in [*result.endpoints, result.total]:
        assert 200 <= s.server_p95_ms <= s.p95_ms, s


def test_a_starved_generator_is_flagged_saturated(sandbox_factory):
    """Locust held off its CPU 60 ms in every 150 (SIGSTOP/SIGCONT, as a starved or
    preempted machine holds it): its timer wakes late, and the run says that its times
    are not the service's."""
    sb = sandbox_factory(fixed_delay_ms=200)
    box: list[load.LoadRun] = []
    worker = threading.Thread(
        target=lambda: box.append(load.run(base_url(sb), load.Profile(20, 20, 8), None, 5.0))
    )
    worker.start()
    held: set[int] = set()
    while worker.is_alive():
        procs = []
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "locust" in " ".join(child.cmdline()):
                    procs.append(child)
        for action in ("suspend", "resume"):
            for child in procs:
                with contextlib.suppress(psutil.Error):
                    getattr(child, action)()
                    held.add(child.pid)
            time.sleep(0.06 if action == "suspend" else 0.09)
    worker.join()
    result = box[0]
    assert held and not result.error, result.error
    seen = (result.generator_lag_p95_ms, result.generator_cpu_percent, result.total)
    assert result.saturated, seen
    assert result.saturation.startswith("load generator saturated: its event loop woke "), seen


def test_distributed_mode_with_two_workers(sandbox, run_checks):
    run = run_checks(load_config(sandbox, users=6, duration=8, workers=2), *WEEKLY)
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "passed", entry
    total = next(e for e in entry["evidence"] if e["name"] == "Aggregated: requests / failures")
    assert int(total["value"].split(" / ")[0]) > 10


def test_overrun_is_killed_and_reported(sandbox):
    start = time.monotonic()
    result = load.run(base_url(sandbox), load.Profile(2, 2, 20), None, 5.0, slack_s=-20)
    assert time.monotonic() - start < 15
    assert result.error == "Locust overran its hard limit of 5 s (run time 20 s) and was killed"


def test_load_test_predeploy_green(sandbox, run_checks):
    cfg = sandbox.with_config(
        "[load]\npredeploy_users = 8\npredeploy_duration_s = 5\nmin_requests = 1\n"
    )
    run = run_checks(cfg, "-m", "predeploy and load")
    entry = run.one("load_test_predeploy")
    assert entry["outcome"] == "passed", entry
    assert entry["cadence"] == "predeploy"


def test_load_test_predeploy_red_on_errors(sandbox_factory, run_checks):
    """The deploy gate's short profile fails a build that answers 500 to 1 call in 5."""
    sb = sandbox_factory("errors", error_share=0.2)
    cfg = sb.with_config(
        "[load]\npredeploy_users = 8\npredeploy_duration_s = 6\nmin_requests = 1\n"
    )
    run = run_checks(cfg, "-m", "predeploy and load")
    entry = run.one("load_test_predeploy")
    assert entry["outcome"] == "failed", entry
    m = re.search(r"Aggregated: failures is ([\d.]+) %, limit 1 %", entry["message"])
    assert m and float(m.group(1)) > 1, entry["message"]
    assert run.exit_code == 1


def test_requests_in_flight_at_the_end_give_no_verdict(sandbox_factory, run_checks):
    """Generation takes 6-9 s, the run 3 s plus a 2 s stop timeout: every generation
    started is still running when Locust stops its users, and none is in its statistics."""
    sb = sandbox_factory(latency_scale=3.0, timeout_s=2.0)
    run = run_checks(load_config(sb, users=4, duration=3), *WEEKLY, "-k", "p95")
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "error", entry
    m = re.search(
        r"no verdict: (\d+) requests? still in flight at the end \(slower than the run\): "
        rf"{GENERATE} (\d+)(;|$)",
        entry["message"],
    )
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0, entry["message"]


def test_too_few_samples_give_no_verdict(sandbox, run_checks):
    """The default min_requests (20) against a 3 s run of 2 users."""
    run = run_checks(load_config(sandbox, users=2, duration=3, min_requests=None), *WEEKLY)
    entry = run.one("load_test_p95")
    assert entry["outcome"] == "error", entry
    want = r"setup error: no verdict: too few samples: .*Aggregated \d+ completed, need 20 "
    assert re.fullmatch(want + r"\(\[load\] min_requests\)", entry["message"]), entry["message"]
    assert run.one("health_under_load")["outcome"] == "passed", "the /health sampler is apart"


@pytest.mark.parametrize("workers", [0, 2])
def test_every_completed_request_is_counted(sandbox_factory, workers):
    """Generation takes 1-1.5 s: at the end of a 3 s run users are mid-generation and
    finish within the stop timeout. Locust's `_stats.csv` missed those (31 read 30), and
    under --processes its master misses the workers' last reports. The generations read
    here are the sandbox's own count, but for any request a user began as Locust stopped
    it (Locust kills such a user as it wakes; the request may still reach the sandbox);
    in local mode Locust's own --json-file holds the same total."""
    sb = sandbox_factory(latency_scale=0.5, timeout_s=5.0)
    profile = load.Profile(4, 4, 3, processes=workers, stop_timeout_s=5.0)
    result = load.run(base_url(sb), profile, None, 5.0)
    assert not result.error, result.error
    assert result.total.in_flight == 0
    generate = next(s for s in result.endpoints if s.name == GENERATE)
    abandoned = generate.started - generate.requests
    assert 0 < generate.requests <= generations(sb) <= generate.requests + abandoned
    if workers == 0:
        assert result.locust_json_requests == result.total.requests


def test_percentile_as_locust_computes_it():
    """The issue's case: 20 requests, the last at 2.2 s; p95 is 2200 ms with it, 1600
    without it (what Locust's CSV reported)."""
    times = {100: 18, 1600: 1, 2200: 1}
    assert load.percentile(times, 20, 0.95) == 2200
    assert load.percentile({100: 18, 1600: 1}, 19, 0.95) == 1600
    assert load.percentile(times, 20, 0.5) == 100
    assert load.percentile({}, 0, 0.95) == 0


def _counts_file(folder: Path, pid: int, doc: object) -> None:
    (folder / f"counts-{pid}.json").write_text(json.dumps(doc))


def test_statistics_read_from_every_process(tmp_path):
    """Two workers' statistics merge as Locust's master merges them; a master's file
    (no requests) gives the start of the statistics."""
    entry = {
        "name": GENERATE,
        "num_requests": 2,
        "num_none_requests": 0,
        "num_failures": 1,
        "total_response_time": 4400.0,
        "response_times": {"2200": 2},
        "last_request_timestamp": 110.0,
    }
    master = {"started": {GENERATE: 0}, "killed": {GENERATE: 0}, "stats": [], "stats_start": 100.0}
    _counts_file(tmp_path, 1, master)
    _counts_file(tmp_path, 2, {"started": {GENERATE: 3}, "killed": {GENERATE: 1}, "stats": [entry]})
    _counts_file(tmp_path, 3, {"started": {GENERATE: 2}, "killed": {GENERATE: 0}, "stats": [entry]})
    endpoints, total = load.read_counts(tmp_path, 3)
    assert [(s.name, s.requests, s.started, s.in_flight) for s in endpoints] == [
        (GENERATE, 4, 5, 1)
    ]
    assert (total.requests, total.failures, total.p95_ms, total.avg_ms) == (4, 2, 2200, 2200)
    assert total.rps == pytest.approx(0.4)


def test_missing_or_broken_statistics_are_one_line_reasons(tmp_path):
    _counts_file(tmp_path, 1, {"started": {}, "killed": {}, "stats": [], "stats_start": 1.0})
    with pytest.raises(load.StatsError, match=r"^2 of 3 Locust processes wrote no statistics$"):
        load.read_counts(tmp_path, 3)
    (tmp_path / "counts-2.json").write_text('{"started": ')
    with pytest.raises(load.StatsError, match=r"^cannot read Locust's statistics counts-2.json"):
        load.read_counts(tmp_path, 2)
    _counts_file(tmp_path, 2, {"started": {}, "killed": {}, "stats": [{"name": GENERATE}]})
    with pytest.raises(load.StatsError, match=r"counts-2.json are not as expected: KeyError"):
        load.read_counts(tmp_path, 2)


CANARY_PW = "Canary/Pw#7?x"  # holds the URL delimiters that hid passwords from redact_url


def _with_password(url: str, password: str = CANARY_PW) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://ops:{quote(password, safe='')}@{rest}"


def _forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), base64.b64encode(f"ops:{secret}".encode()).decode()]


def test_base_url_password_never_on_locusts_command_line_nor_in_its_report(sandbox, tmp_path):
    """The password reached Locust as `--host http://ops:pw@...` (shown by `ps` to every
    user) and its HTML report. Now: the child's environment; the report is scrubbed."""
    reports = tmp_path / "reports"
    reports.mkdir()
    html = reports / "run-locust.html"
    seen: list[str] = []
    box: list[load.LoadRun] = []
    worker = threading.Thread(
        target=lambda: box.append(
            load.run(_with_password(base_url(sandbox)), load.Profile(4, 4, 4, 1), html, 5.0)
        )
    )
    worker.start()
    me = psutil.Process()
    while worker.is_alive():
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                seen.append(" ".join(child.cmdline()))
        time.sleep(0.2)
    worker.join()
    assert not box[0].error, box[0].error
    assert any("locust" in cmd for cmd in seen), "the Locust processes were seen running"
    assert any("--processes" in cmd for cmd in seen)
    for text in [*seen, *(p.read_text(errors="replace") for p in reports.rglob("*"))]:
        for form in _forms(CANARY_PW):
            assert form not in text
    assert html.stat().st_size > 1000, "Locust's own report was written"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every call as the service would, noting each Authorization header, and in
    order the endpoints Locust's users called."""

    seen: ClassVar[set[str]] = set()
    calls: ClassVar[list[str]] = []

    def _answer(self) -> None:
        _Recorder.seen.add(self.headers.get("Authorization", ""))
        if not self.headers.get("User-Agent", "").startswith("opscheck/"):  # not the sampler
            _Recorder.calls.append(f"{self.command} {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"status": "healthy", "success": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args) -> None:
        pass


def test_locust_still_sends_the_base_urls_credentials():
    """The credentials moved off the command line still reach the service, as Locust sent
    them from a URL's userinfo: HTTP Basic."""
    server = _recording_server()
    try:
        url = _with_password(f"http://127.0.0.1:{server.server_port}")
        result = load.run(url, load.Profile(2, 2, 2), None, 5.0)
    finally:
        server.shutdown()
    assert not result.error, result.error
    want = "Basic " + base64.b64encode(f"ops:{CANARY_PW}".encode()).decode()
    assert want in _Recorder.seen


def _recording_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_each_user_takes_the_endpoints_in_turn():
    """Not drawn by weight: one user calls the endpoints in the mix's order, so k requests
    hold each endpoint's share of k. Before: the fault matrix's 10 users x 5 s drew
    GET /health 4 times in about 45 one run in some 30, below its min_requests of 5."""
    _Recorder.calls.clear()
    server = _recording_server()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = load.run(url, load.Profile(1, 1, 6), None, 5.0)
    finally:
        server.shutdown()
    assert not result.error, result.error
    calls = list(_Recorder.calls)
    assert len(calls) >= 4, calls
    assert calls == [MIX[i % len(MIX)] for i in range(len(calls))]
