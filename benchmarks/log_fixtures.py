"""A large app log in the service's format, made once (about 1 % ERROR lines besides the
telemetry noise, tracebacks, Korean text, a few undecodable bytes)."""

from __future__ import annotations

import os
import random
import re
from datetime import datetime, timedelta
from pathlib import Path

from opscheck.sandbox.traffic import MONTHS, Traffic, day_logs

BENCH_DIR = Path(os.environ.get("OPSCHECK_BENCH_DIR", "/tmp/opscheck-bench"))


def app_log(name: str, size: int, seed: int = 3) -> Path:
    """A log of at least `size` bytes spread over 8 days, rotated like the service's."""
    folder = BENCH_DIR / name
    out = folder / "app.log"
    if out.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = out.with_suffix(".part")
    start = datetime(2026, 11, 18)
    written, day = 0, 0
    with open(tmp, "wb") as f:
        while written < size:
            when = start + timedelta(days=day)
            app, _ = day_logs(
                when,
                when + timedelta(days=1),
                Traffic(requests=40000, error_share=0.02, telemetry=0.04),
                rng,
                when,
            )
            block = ("\n".join(app) + "\n").encode("utf-8")
            if day % 7 == 3:
                block = block.replace(b"\xea\xb2\x80", b"\xff", 3)  # a few bad bytes
            f.write(block)
            written += len(block)
            day += 1
    tmp.rename(out)
    return out


def one_day(src: Path, name: str) -> Path:
    """`src` with its timestamps squeezed into one day, order kept: the same bytes a
    busy service writes between two nightly rotations."""
    out = BENCH_DIR / name / "app.log"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        first = _seconds(f.readline())
        f.seek(-(1 << 20), os.SEEK_END)
        last = max(s for s in map(_seconds, f.read().split(b"\n")) if s is not None)
    squeeze = (last - first) / 86000.0
    base = datetime(2026, 11, 25)
    tmp = out.with_suffix(".part")
    with open(src, "rb") as f, open(tmp, "wb") as w:
        for line in f:
            secs = _seconds(line)
            if secs is not None:
                t = base + timedelta(seconds=(secs - first) / squeeze)
                line = t.strftime("%Y-%m-%d %H:%M:%S").encode() + line[19:]
            w.write(line)
    tmp.rename(out)
    return out


def _seconds(line: bytes) -> float | None:
    """Seconds since 2026-11-01 of a line's "YYYY-mm-dd HH:MM:SS" stamp, or None."""
    if len(line) < 19 or line[4:5] != b"-" or line[13:14] != b":" or not line[:4].isdigit():
        return None
    try:
        t = datetime(int(line[:4]), int(line[5:7]), int(line[8:10]), int(line[11:13]),
                     int(line[14:16]), int(line[17:19]))  # fmt: skip
    except ValueError:
        return None
    return (t - datetime(2026, 11, 1)).total_seconds()


def access_log(name: str, size: int, seed: int = 4) -> Path:
    """An nginx access log (combined + `$request_time`) of at least `size` bytes."""
    out = BENCH_DIR / name / "access.log"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp, start, written, day = out.with_suffix(".part"), datetime(2026, 11, 18), 0, 0
    with open(tmp, "wb") as f:
        while written < size:
            when = start + timedelta(days=day)
            traffic = Traffic(requests=40000, error_share=0.02, telemetry=0.04)
            _, access = day_logs(when, when + timedelta(days=1), traffic, rng, when)
            block = ("\n".join(access) + "\n").encode("utf-8")
            f.write(block)
            written, day = written + len(block), day + 1
    tmp.rename(out)
    return out


_TIMED = re.compile(
    r'(\S+) - - \[(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)\] "([^"]*)" (\d{3}) '
    r'(\d+) "([^"]*)" "([^"]*)" ([\d.]+)'
)
_MONTHS = {m: i for i, m in enumerate(MONTHS, 1)}


def access_log_as(fmt: str, size: int) -> Path:
    """`size` bytes of the `access_log` traffic in another nginx format: "combined",
    "main" (every fourth client behind a balancer at 10.0.0.2, the client in
    X-Forwarded-For) or "json" (the `json` preset, `escape=json`)."""
    src = access_log(f"access-{size // 1_000_000}mb", size)
    out = BENCH_DIR / f"access-{size // 1_000_000}mb-{fmt}" / "access.log"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    written = 0
    with open(src, encoding="utf-8") as f, open(tmp, "w", encoding="utf-8") as w:
        for n, line in enumerate(f):
            written += w.write(_convert(fmt, _TIMED.match(line), n) + "\n")
            if written >= size:
                break
    tmp.rename(out)
    return out


def _convert(fmt: str, m: re.Match, n: int) -> str:
    client, day, mon, year, clock, zh, zm, request, status, size, ref, agent, rt = m.groups()
    if fmt == "combined":
        return m.group(0).rsplit(" ", 1)[0]
    if fmt == "main":
        lb = n % 4 == 0
        addr, xff = ("10.0.0.2", f"{client}, 10.0.0.2") if lb else (client, "-")
        head = m.group(0).rsplit(" ", 1)[0].replace(client, addr, 1)
        return f'{head} "{xff}"'
    when = f"{year}-{_MONTHS[mon]:02d}-{day}T{clock}{zh}:{zm}"
    upstream = "-" if request.startswith("GET /health") else f"{max(float(rt) - 0.002, 0):.3f}"
    return (
        f'{{"time":"{when}","remote_addr":"{client}","x_forwarded_for":"",'
        f'"request":"{request}","status":{status},"body_bytes_sent":{size},'
        f'"request_time":{rt},"upstream_response_time":"{upstream}",'
        f'"http_referer":"{"" if ref == "-" else ref}","http_user_agent":"{agent}"}}'
    )
