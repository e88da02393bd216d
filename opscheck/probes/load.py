"""A Locust run against the service, headless, in its own process, bounded in time.

Locust's gevent monkey-patching must not enter pytest's process, so Locust runs as
`python -m locust` in a subprocess. Its statistics are read back as Locust serializes
them (per endpoint: counts and its histogram of response times; percentiles are
computed from it as Locust computes them), written at quit by each Locust process's
locustfile into the run's temp dir: Locust's own `_stats.csv` is written once a second
and misses the requests that end while its users stop, and in distributed mode
(`--processes`) the master's statistics, `--json` included, miss the workers' last
reports. In local mode Locust's own `--json-file` must agree with them.

The locustfile also counts the requests its users started and those still in flight
when Locust killed its users at the end of the run and its stop timeout (a generation
slower than the run): Locust's statistics do not hold those at all.

While it runs, a separate client in this process samples `/health`, so "does /health
still answer under load" is measured outside Locust's own users. A run that overruns
its hard wall-clock limit is killed (its process group) and reported; a load generator
too busy to time the service is flagged `saturated`, with the reason, since its response
times are then the machine's, not the service's: Locust's own CPU warning, a Locust
process above 90 % of a core (psutil, sampled while it runs), or the timer its
locustfile runs waking late (p95 over 5 % of the median response time, at least 10 ms:
every response it timed waited as long before Locust read the clock). How busy the
whole machine was is measured too: a target on the same saturated cores answers late,
really, so that is its latency there, not a timing error of the generator.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from opscheck import lifecycle, scrub
from opscheck.probes.http import get_json

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
COUNTS_ENV = "OPSCHECK_LOCUST_COUNTS"  # as loadtests/locustfile.py reads it
AUTH_ENV = "OPSCHECK_LOCUST_USERINFO"  # the base URL's user:password, never on the command line
SATURATION = "CPU usage above"  # Locust: "CPU usage above 90%! This may constrain ..."
LAG_MIN_MS = 10.0  # Locust's percentile step below 1 s
LAG_SHARE = 0.05  # of the median response time: the error a p95 within 5 % allows
CPU_LIMIT = 90.0  # % of one core, as Locust's own warning
TICK_MS = 50  # loadtests/locustfile.py's lag timer
AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class Profile:
    users: int
    spawn_rate: float
    duration_s: float
    processes: int = 0  # > 0: Locust forks this many worker processes (--processes)
    stop_timeout_s: float = 5.0  # how long a request running at the end may still finish


@dataclass
class Stats:
    """One endpoint's completed requests, or all of them ("Aggregated")."""

    name: str
    requests: int  # completed (answered or failed), as Locust recorded them
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None
    started: int = 0  # by Locust's users
    in_flight: int = 0  # still running when Locust killed its users at the end: unmeasured
    server_p95_ms: float | None = None  # the service's own X-Process-Time, where it sent one

    @property
    def failure_percent(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0


@dataclass
class HealthSamples:
    count: int = 0
    failures: list[str] = field(default_factory=list)
    worst_ms: float = 0.0


@dataclass
class LoadRun:
    endpoints: list[Stats] = field(default_factory=list)
    total: Stats | None = None
    saturated: bool = False
    saturation: str = ""  # why the generator's times are not the service's, when saturated
    generator_lag_p95_ms: float | None = None  # how late its timer woke (worst process)
    generator_cpu_percent: float | None = None  # % of one core (busiest Locust process)
    machine_cpu_percent: float | None = None  # all cores of the generator's machine, busy %
    error: str = ""  # no verdict possible: why
    seconds: float = 0.0
    html: Path | None = None
    health: HealthSamples = field(default_factory=HealthSamples)
    locust_json_requests: int | None = None  # local mode: Locust's own --json-file total


class StatsError(Exception):
    """Locust's statistics could not be read; the message says why, in one line."""


def run(
    base_url: str,
    profile: Profile,
    html: Path | None,
    health_timeout_s: float,
    ca_bundle: str = "",
    slack_s: float = 30.0,
) -> LoadRun:
    """Drive `profile` against `base_url`; the Locust process gets at most
    duration + stop timeout + `slack_s` seconds before it is killed."""
    result = LoadRun(html=html)
    scrub.learn(scrub.url_secrets(base_url))
    with tempfile.TemporaryDirectory(prefix="opscheck-locust-") as tmp:
        folder = Path(tmp)
        cmd = _command(scrub.redact_url(base_url), profile, html, folder)
        env = {**os.environ, "PYTHONWARNINGS": "ignore", COUNTS_ENV: str(folder)}
        env.update(_auth_env(base_url))
        if ca_bundle:
            env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = ca_bundle
        stop = threading.Event()
        sampler = threading.Thread(
            target=_sample_health,
            daemon=True,
            args=(base_url, health_timeout_s, ca_bundle, stop, result.health),
        )
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        lifecycle.register(proc.pid, "Locust", group=True)  # stopped on SIGTERM/SIGINT
        sampler.start()
        cpu = _CpuWatch(proc.pid)
        watcher = threading.Thread(target=cpu.run, daemon=True, args=(stop,))
        watcher.start()
        limit = profile.duration_s + _stop_timeout(profile) + slack_s
        try:
            _, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill(proc)
            result.error = (
                f"Locust overran its hard limit of {limit:g} s "
                f"(run time {profile.duration_s:g} s) and was killed"
            )
            err = ""
        finally:
            lifecycle.forget(proc.pid)
            stop.set()
            sampler.join(timeout=health_timeout_s + 5)
            watcher.join(timeout=5)
        result.seconds = time.monotonic() - start
        result.generator_cpu_percent = cpu.busiest()
        result.machine_cpu_percent = cpu.machine()
        if not result.error and proc.returncode not in (0, None):
            tail = scrub.scrub(" ".join((err or "").strip().splitlines()[-3:]))[:300]
            result.error = f"Locust exited with {proc.returncode}: {tail}"
        if not result.error:
            _read_into(result, folder, profile)
        _judge_generator(result, SATURATION in (err or ""))
    if html is not None:
        scrub.scrub_file(html)
    return result


def _auth_env(base_url: str) -> dict[str, str]:
    """The base URL's userinfo for the locustfile, through the child's environment (which
    only its user can read), not its command line (which `ps` shows to everyone)."""
    _, sep, rest = base_url.partition("://")
    if not sep or "@" not in rest:
        return {}
    return {AUTH_ENV: rest[: rest.rfind("@")]}


def _judge_generator(result: LoadRun, locust_warned: bool) -> None:
    """Flag a generator too busy to time the service: Locust's own CPU warning, a Locust
    process above CPU_LIMIT % of a core, or its timer waking later than LAG_SHARE of the
    median response time (at least LAG_MIN_MS): every response it timed waited as long."""
    why = []
    if locust_warned:
        why.append("Locust warned: CPU usage above 90 %")
    cpu = result.generator_cpu_percent
    if cpu is not None and cpu >= CPU_LIMIT:
        why.append(f"a Locust process used {cpu:.0f} % of a core (limit {CPU_LIMIT:g} %)")
    lag = result.generator_lag_p95_ms
    if lag is not None and lag > lag_limit_ms(result):
        why.append(
            f"its event loop woke {lag:g} ms late (p95 of a {TICK_MS} ms timer; "
            f"limit {lag_limit_ms(result):g} ms)"
        )
    if why:
        result.saturated = True
        result.saturation = (
            f"load generator saturated: {'; '.join(why)}: its response times "
            "are not a measure of the service (use [load] workers, fewer users, or "
            "a machine of its own)"
        )


def lag_limit_ms(result: LoadRun) -> float:
    """The generator delay that would shift the reported times by more than 5 %."""
    p50 = result.total.p50_ms if result.total and result.total.p50_ms else 0.0
    return max(LAG_MIN_MS, LAG_SHARE * p50)


class _CpuWatch:
    """The CPU share of every process of the Locust run (by its session), sampled once a
    second while it runs; psutil cannot read a process once it has exited."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first: dict[int, tuple[float, float]] = {}  # pid -> (wall, cpu seconds)
        self.last: dict[int, tuple[float, float]] = {}
        self.host: list[tuple[float, float]] = []  # (busy, total) CPU seconds, all cores

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.sample()
            t = psutil.cpu_times()
            idle = t.idle + getattr(t, "iowait", 0.0)
            total = sum(t)
            self.host.append((total - idle, total))

    def machine(self) -> float | None:
        """Busy % of all cores between the first and last sample (None: under 2 s)."""
        if len(self.host) < 3:
            return None
        (b0, t0), (b1, t1) = self.host[0], self.host[-1]
        return round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else None

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            point = (time.monotonic(), t.user + t.system)
            self.first.setdefault(p.pid, point)
            self.last[p.pid] = point

    def busiest(self) -> float | None:
        shares = [
            100.0 * (self.last[pid][1] - cpu0) / (self.last[pid][0] - wall0)
            for pid, (wall0, cpu0) in self.first.items()
            if self.last[pid][0] - wall0 >= 2.0
        ]
        return round(max(shares), 1) if shares else None


def _stop_timeout(profile: Profile) -> int:
    return max(1, math.ceil(profile.stop_timeout_s))


def _command(base_url: str, profile: Profile, html: Path | None, folder: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        base_url,
        "-u",
        str(profile.users),
        "-r",
        str(profile.spawn_rate),
        "-t",
        f"{max(1, round(profile.duration_s))}s",
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        str(_stop_timeout(profile)),
    ]
    if html is not None:
        cmd += ["--html", str(html)]
    if profile.processes > 0:
        cmd += ["--processes", str(profile.processes)]
    else:  # local mode only: under --processes the workers write it too, over the master's
        cmd += ["--json-file", str(folder / "locust")]
    return cmd


def _read_into(result: LoadRun, folder: Path, profile: Profile) -> None:
    """The run's statistics into `result`, or the reason they cannot be read."""
    processes = profile.processes + 1 if profile.processes > 0 else 1
    try:
        result.endpoints, result.total = read_counts(folder, processes)
        result.generator_lag_p95_ms = read_lag(folder)
        if profile.processes == 0:
            result.locust_json_requests = read_locust_json(folder / "locust.json")
    except StatsError as exc:
        result.error = str(exc)
        return
    if result.locust_json_requests not in (None, result.total.requests):
        result.error = (
            f"Locust's own final statistics (--json-file) hold {result.locust_json_requests} "
            f"requests, its users recorded {result.total.requests}"
        )


def _kill(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _sample_health(
    base_url: str, timeout_s: float, ca_bundle: str, stop: threading.Event, out: HealthSamples
) -> None:
    """GET /health once a second from this process until `stop` is set."""
    while not stop.wait(1.0):
        res = get_json(base_url, "/health", timeout_s, ca_bundle)
        out.count += 1
        out.worst_ms = max(out.worst_ms, res.elapsed_ms)
        if not res.answered:
            out.failures.append(res.error)
        elif res.status != 200:
            out.failures.append(f"answered {res.status_text}")


def percentile(times: dict[int, int], count: int, percent: float) -> int:
    """As Locust's `calculate_response_time_percentile`: the response time (a key of
    Locust's rounded histogram, ms) that `percent` (0-1) of `count` requests finished within."""
    wanted = int(count * percent)
    processed = 0
    for ms in sorted(times, reverse=True):
        processed += times[ms]
        if count - processed <= wanted:
            return ms
    return 0


@dataclass
class _Entry:
    """One endpoint's requests as Locust's StatsEntry serializes them, summed over processes."""

    requests: int = 0
    none_requests: int = 0  # recorded without a response time
    failures: int = 0
    total_ms: float = 0.0
    times: Counter[int] = field(default_factory=Counter)  # Locust's rounded ms -> requests
    last: float = 0.0  # epoch seconds of the last request recorded

    def add(self, doc: dict[str, Any]) -> None:
        self.requests += int(doc["num_requests"])
        self.none_requests += int(doc.get("num_none_requests") or 0)
        self.failures += int(doc["num_failures"])
        self.total_ms += float(doc["total_response_time"])
        for ms, n in doc["response_times"].items():
            self.times[round(float(ms))] += int(n)
        self.last = max(self.last, float(doc.get("last_request_timestamp") or 0))

    def merge(self, other: _Entry) -> None:
        self.requests += other.requests
        self.none_requests += other.none_requests
        self.failures += other.failures
        self.total_ms += other.total_ms
        self.times.update(other.times)
        self.last = max(self.last, other.last)

    def stats(self, name: str, started: int, in_flight: int, window_s: float) -> Stats:
        timed = self.requests - self.none_requests
        p = {
            q: float(percentile(self.times, timed, q)) if timed else None for q in (0.5, 0.95, 0.99)
        }
        return Stats(
            name=name,
            requests=self.requests,
            failures=self.failures,
            rps=self.requests / window_s if window_s > 0 else 0.0,
            p50_ms=p[0.5],
            p95_ms=p[0.95],
            p99_ms=p[0.99],
            avg_ms=self.total_ms / timed if timed else None,
            started=started,
            in_flight=in_flight,
        )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StatsError(f"cannot read Locust's statistics {path.name}: {exc}") from None


def read_counts(folder: Path, processes: int) -> tuple[list[Stats], Stats]:
    """Per endpoint and "Aggregated", from the `counts-<pid>.json` each of the run's
    `processes` Locust processes wrote at quit (loadtests/locustfile.py)."""
    files = sorted(folder.glob("counts-*.json"))
    if len(files) < processes:
        raise StatsError(
            f"{processes - len(files)} of {processes} Locust processes wrote no statistics"
        )
    started: Counter[str] = Counter()
    killed: Counter[str] = Counter()
    server: dict[str, Counter[int]] = {}
    entries: dict[str, _Entry] = {}
    stats_start = None
    for path in files:
        doc = _load_json(path)
        try:
            started.update({str(k): int(v) for k, v in doc["started"].items()})
            killed.update({str(k): int(v) for k, v in doc["killed"].items()})
            for item in doc["stats"]:
                entries.setdefault(str(item["name"]), _Entry()).add(item)
            stats_start = doc.get("stats_start", stats_start)
            for name, times in (doc.get("server_ms") or {}).items():
                hist = server.setdefault(str(name), Counter())
                hist.update({round(float(ms)): int(n) for ms, n in times.items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StatsError(
                f"Locust's statistics {path.name} are not as expected: {exc!r}"
            ) from None
    if stats_start is None:
        raise StatsError("Locust's statistics say nothing of when they began")
    total = _Entry()
    for entry in entries.values():
        total.merge(entry)
    window_s = total.last - float(stats_start)
    endpoints = [
        entries.get(name, _Entry()).stats(name, started[name], killed[name], window_s)
        for name in sorted(set(started) | set(entries))
    ]
    aggregate = total.stats(AGGREGATED, sum(started.values()), sum(killed.values()), window_s)
    for s in endpoints:
        s.server_p95_ms = _p95(server.get(s.name, Counter()))
    aggregate.server_p95_ms = _p95(sum(server.values(), Counter()))
    return endpoints, aggregate


def _p95(times: Counter[int]) -> float | None:
    n = sum(times.values())
    return float(percentile(times, n, 0.95)) if n else None


def read_lag(folder: Path) -> float | None:
    """The p95 of how late the 50 ms timer woke, in the worst Locust process (ms)."""
    worst = None
    for path in sorted(folder.glob("counts-*.json")):
        doc = _load_json(path)
        try:
            lags = {int(k): int(v) for k, v in (doc.get("lag_ms") or {}).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise StatsError(f"Locust's statistics {path.name}: lag_ms {exc!r}") from None
        n = sum(lags.values())
        if n:
            p95 = float(percentile(lags, n, 0.95))
            worst = p95 if worst is None else max(worst, p95)
    return worst


def read_locust_json(path: Path) -> int:
    """The requests in Locust's own `--json-file` final statistics."""
    doc = _load_json(path)
    try:
        return sum(int(item["num_requests"]) for item in doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise StatsError(f"Locust's {path.name} is not as expected: {exc!r}") from None
