"""The sandbox's Redis: a real `redis-server` on a free loopback port, with a password.

Private dir under `run/redis/`, no persistence, started and stopped by PID with the
sandbox (`run/redis.pid`). It holds keys shaped like the service's (`policy:`,
`template:`, `analysis:`, `temp:`), each with a TTL within the guide's policy, and has
served enough GETs for a healthy hit ratio. The `redis-*` faults break one thing each.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from opscheck.sandbox.layout import Layout

POLICY = {"policy:*": 3600, "template:*": 1800, "analysis:*": 900, "temp:*": 300}
SHAPES = {"policy": 8, "template": 200, "analysis": 100, "temp": 40}
IDLE_LIMIT_S = 2  # the redis-idle fault's cache_idle_days, in seconds
IDLE_WAIT_S = 4  # ... and how long its keys sit untouched before the checks run
FAULTS = (
    "redis-no-ttl",
    "redis-ttl-over",
    "redis-idle",
    "redis-low-hits",
    "redis-no-auth",
    "redis-down",
    "redis-lfu",
)


def password(lay: Layout) -> str:
    """The password of the `.env`'s REDIS_URL (the service's own), else a fresh one."""
    try:
        text = lay.env_file.read_text()
    except OSError:
        text = ""
    m = re.search(r"^REDIS_URL=redis://[^:/@]*:([^@\s]+)@", text, re.M)
    return m.group(1) if m else secrets.token_hex(12)


def url(port: int, pw: str | None) -> str:
    auth = f":{pw}@" if pw else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_conf(
    folder: Path, port: int, pw: str | None, lfu: bool, maxmemory: str = "64mb"
) -> Path:
    """A redis.conf (mode 600: it holds the password) for a private, unpersisted server."""
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f'dir "{folder}"',
        'save ""',
        "appendonly no",
        "daemonize no",
        f'logfile "{folder / "redis.log"}"',
        f"maxmemory {maxmemory}",
        f"maxmemory-policy {'allkeys-lfu' if lfu else 'volatile-lru'}",
    ]
    if pw:
        lines.append(f"requirepass {pw}")
    path = folder / "redis.conf"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start(
    lay: Layout, pw: str | None, lfu: bool = False, wait_s: float = 10.0, maxmemory: str = "64mb"
) -> int:
    """Start redis-server on a free port, record its PID, wait for PING; return the port."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("the sandbox needs redis-server (apt install redis-server)")
    folder = lay.run / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = _free_port()
        proc = subprocess.Popen(
            [exe, str(server_conf(folder, port, pw, lfu, maxmemory))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        (lay.run / "redis.pid").write_text(f"{proc.pid}\n")
        if _ready(proc, port, pw, wait_s):
            return port
    log = (folder / "redis.log").read_text(errors="replace")[-300:]
    raise SystemExit(f"the sandbox redis-server did not start: {log}")


def _ready(proc: subprocess.Popen, port: int, pw: str | None, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # e.g. the port was taken meanwhile
        try:
            with redis.Redis(port=port, password=pw, socket_timeout=1) as r:
                if r.ping():
                    return True
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    return False


def _value(kind: str, n: int) -> bytes:
    doc = {"kind": kind, "id": n, "text": f"알림톡 {kind} 캐시 {n}", "score": 80 + n % 20}
    return json.dumps(doc, ensure_ascii=False).encode()


def populate(r: redis.Redis, rng: random.Random) -> dict[str, list[str]]:
    """Keys shaped like the service's, TTLs between half and all of the policy's."""
    names: dict[str, list[str]] = {}
    p = r.pipeline(transaction=False)
    for kind, count in SHAPES.items():
        limit = POLICY[f"{kind}:*"]
        names[kind] = [f"{kind}:{rng.getrandbits(64):016x}" for _ in range(count)]
        for n, key in enumerate(names[kind]):
            p.set(key, _value(kind, n), ex=rng.randint(limit // 2, limit))
    p.execute()
    return names


def lookups(r: redis.Redis, keys: list[str], hits: int, misses: int) -> None:
    """`hits` GETs of existing keys and `misses` GETs of absent ones, as the service does."""
    p = r.pipeline(transaction=False)
    for n in range(hits):
        p.get(keys[n % len(keys)])
    for n in range(misses):
        p.get(f"template:absent-{n}")
    p.execute()


def apply(r: redis.Redis, names: dict[str, list[str]], faults: tuple[str, ...]) -> None:
    """The key-level faults, then the service's lookups (healthy: a 0.9 hit ratio)."""
    if "redis-no-ttl" in faults:
        for key in names["template"][:5]:
            r.persist(key)
        r.set("session:7f3a", b"{}")  # matches no pattern, never expires
    if "redis-ttl-over" in faults:
        for key in names["policy"][:4]:
            r.expire(key, 86400)
    hot = names["template"] + names["analysis"]
    if "redis-low-hits" in faults:
        lookups(r, hot, hits=30, misses=300)
    else:
        lookups(r, hot, hits=300, misses=30)


def up(lay: Layout, faults: tuple[str, ...], seed: int = 7) -> str:
    """Start and fill the sandbox's Redis as `faults` say; return the URL for the config."""
    pw = None if "redis-no-auth" in faults else password(lay)
    if "redis-down" in faults:
        return url(_free_port(), pw)
    port = start(lay, pw, lfu="redis-lfu" in faults)
    with redis.Redis(port=port, password=pw, socket_timeout=5) as r:
        apply(r, populate(r, random.Random(seed)), faults)
    if "redis-idle" in faults:
        time.sleep(IDLE_WAIT_S)
    return url(port, pw)


def config_text(redis_url: str, faults: tuple[str, ...]) -> str:
    """The config's [redis] section (and the idle fault's tiny cache_idle_days)."""
    text = f"\n[redis]\nurl = {json.dumps(redis_url)}\n"
    if "redis-idle" in faults:
        text += f"\n[thresholds]\ncache_idle_days = {IDLE_LIMIT_S / 86400!r}\n"
    return text
