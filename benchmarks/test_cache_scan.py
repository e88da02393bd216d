"""The cache survey over a Redis of 1,000,000 keys, against a bare SCAN walk.

A benchmark-only redis-server (password, no persistence, no memory limit) holds keys
shaped like the service's, all with TTLs within policy. Measured: keys per second of the
weekly survey (SCAN + TTL + OBJECT IDLETIME for every key) against a bare
`SCAN 0 COUNT 1000` walk of the same server over one redis-py connection (goal: at least
0.5x), its total time, and the p99 latency of PINGs sent by another client, in another
process, while the survey runs (goal: under 5 ms).
Run: `python -m pytest benchmarks/test_cache_scan.py --benchmark-only -s`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from opscheck.probes import cache
from opscheck.sandbox import cache as sandbox_cache
from opscheck.sandbox import control
from opscheck.sandbox.layout import Layout

KEYS = 1_000_000
PASSWORD = "bench-5e1f0c"
PINGER = r"""
import json, socket, sys, time
from pathlib import Path
port, pw, stop = int(sys.argv[1]), sys.argv[2].encode(), Path(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw)); s.recv(64)
lat = []
print("ready", flush=True)
while not stop.exists():
    t = time.perf_counter()
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    s.recv(64)
    lat.append(time.perf_counter() - t)
    time.sleep(0.001)
print(json.dumps(lat))
"""


@pytest.fixture(scope="module")
def big_redis(tmp_path_factory) -> int:
    lay = Layout(tmp_path_factory.mktemp("bench-redis"))
    lay.run.mkdir()
    port = sandbox_cache.start(lay, PASSWORD, maxmemory="0")
    try:
        _fill(port)
        yield port
    finally:
        control.down(lay.root)


def _fill(port: int) -> None:
    """1,000,000 SET .. EX in raw pipelined batches of 10,000 (a few seconds)."""
    kinds = list(sandbox_cache.POLICY.items())
    r = redis.Redis(port=port, password=PASSWORD, single_connection_client=True, socket_timeout=60)
    io = cache._Stream(r.connection)
    value = b'{"text": "' + b"x" * 80 + b'"}'
    for start in range(0, KEYS, 10_000):
        out = []
        for n in range(start, start + 10_000):
            pattern, ttl = kinds[n % 4]
            key = pattern[:-1].encode() + b"%012d" % n
            ex = b"%d" % (ttl // 2 + n % (ttl // 2))
            out.append(
                b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$%d\r\n%s\r\n"
                % (len(key), key, len(value), value, len(ex), ex)
            )
        io.send(b"".join(out))
        io.one_line_replies(10_000)
    assert r.dbsize() == KEYS
    r.close()


def _bare_walk(port: int) -> int:
    r = redis.Redis(port=port, password=PASSWORD, single_connection_client=True)
    cursor, n = 0, 0
    while True:
        cursor, keys = r.scan(cursor, count=1000)
        n += len(keys)
        if cursor == 0:
            break
    r.close()
    return n


def _survey(port: int, sample: int) -> cache.Survey:
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    r = cache.connect(url, 5)
    try:
        info = cache.stats(r, url)
        return cache.survey(r, url, sandbox_cache.POLICY, 30 * 86400, info.lfu, sample, 600)
    finally:
        r.close()


def _with_pinger(port: int, tmp: Path, fn):
    """Run `fn()` while another process PINGs every ms; (fn's result, latencies in s)."""
    stop = tmp / "stop"
    stop.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", PINGER, str(port), PASSWORD, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    try:
        result = fn()
    finally:
        stop.write_text("")
    out, _ = proc.communicate(timeout=30)
    return result, json.loads(out)


def test_cache_survey_of_a_million_keys(benchmark, big_redis, tmp_path):
    benchmark.group = "cache survey, 1,000,000 keys"
    bare = []
    for _ in range(3):
        t = time.perf_counter()
        assert _bare_walk(big_redis) == KEYS
        bare.append(time.perf_counter() - t)
    latencies: list[float] = []

    def one() -> cache.Survey:
        s, lat = _with_pinger(big_redis, tmp_path, lambda: _survey(big_redis, KEYS))
        latencies.extend(lat)
        return s

    s = benchmark.pedantic(one, rounds=3, iterations=1)
    assert s.complete and s.inspected == KEYS
    assert all(row.no_ttl == 0 and row.over == 0 for row in s.patterns)
    default = _survey(big_redis, 100_000)
    bare_rate = KEYS / statistics.median(bare)
    rate = KEYS / benchmark.stats.stats.median
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    info = {
        "keys": KEYS,
        "survey_keys_per_s": round(rate),
        "bare_scan_keys_per_s": round(bare_rate),
        "ratio": round(rate / bare_rate, 2),
        "survey_total_s": round(benchmark.stats.stats.median, 2),
        "bare_scan_total_s": round(statistics.median(bare), 2),
        "default_sample_100k_s": round(default.elapsed_s, 2),
        "ping_samples": len(latencies),
        "ping_p99_ms": round(p99, 2),
        "ping_max_ms": round(max(latencies) * 1000, 2),
    }
    benchmark.extra_info.update(info)
    print(json.dumps(info, indent=1))
