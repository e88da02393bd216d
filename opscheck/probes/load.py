"""A Locust run against the service, headless, in its own process, bounded in time.

Locust's gevent monkey-patching must not enter pytest's process, so Locust runs as
`python -m locust` in a subprocess with `--csv` and `--html`; its CSV statistics are
read back. While it runs, a separate client in this process samples `/health`, so
"does /health still answer under load" is measured outside Locust's own users.
A run that overruns its hard wall-clock limit is killed (its process group) and
reported; a load generator that saturated its CPU (Locust's own warning) is flagged,
since its response times are not the service's.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from opscheck.probes.http import get_json

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
SATURATION = "CPU usage above"  # Locust: "CPU usage above 90%! This may constrain ..."


@dataclass(frozen=True)
class Profile:
    users: int
    spawn_rate: float
    duration_s: float
    processes: int = 0  # > 0: Locust forks this many worker processes (--processes)


@dataclass
class Stats:
    """One row of Locust's statistics: an endpoint, or "Aggregated"."""

    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None

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
    error: str = ""  # no verdict possible: why
    seconds: float = 0.0
    html: Path | None = None
    health: HealthSamples = field(default_factory=HealthSamples)


def run(
    base_url: str,
    profile: Profile,
    html: Path | None,
    health_timeout_s: float,
    ca_bundle: str = "",
    slack_s: float = 30.0,
) -> LoadRun:
    """Drive `profile` against `base_url`; the Locust process gets at most
    duration + `slack_s` seconds before it is killed."""
    result = LoadRun(html=html)
    with tempfile.TemporaryDirectory(prefix="opscheck-locust-") as tmp:
        prefix = Path(tmp) / "run"
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
            "--csv",
            str(prefix),
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            "5",
        ]
        if html is not None:
            cmd += ["--html", str(html)]
        if profile.processes > 0:
            cmd += ["--processes", str(profile.processes)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
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
        sampler.start()
        limit = profile.duration_s + slack_s
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
            stop.set()
            sampler.join(timeout=health_timeout_s + 5)
        result.seconds = time.monotonic() - start
        result.saturated = SATURATION in (err or "")
        if not result.error and proc.returncode not in (0, None):
            tail = " ".join((err or "").strip().splitlines()[-3:])[:300]
            result.error = f"Locust exited with {proc.returncode}: {tail}"
        stats_file = Path(f"{prefix}_stats.csv")
        if not result.error:
            if stats_file.exists():
                rows = read_stats(stats_file)
                result.total = next((r for r in rows if r.name == "Aggregated"), None)
                result.endpoints = [r for r in rows if r.name != "Aggregated"]
            else:
                result.error = "Locust wrote no statistics"
    return result


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


def _num(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_stats(path: Path) -> list[Stats]:
    """Locust's `<prefix>_stats.csv`: one Stats per endpoint, plus "Aggregated"."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append(
                Stats(
                    name=row["Name"],
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=float(row["Requests/s"]),
                    p50_ms=_num(row.get("50%")),
                    p95_ms=_num(row.get("95%")),
                    p99_ms=_num(row.get("99%")),
                    avg_ms=_num(row.get("Average Response Time")),
                )
            )
    return rows
