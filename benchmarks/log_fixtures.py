"""A large app log in the service's format, made once (about 1 % ERROR lines besides the
telemetry noise, tracebacks, Korean text, a few undecodable bytes)."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path

from opscheck.sandbox.traffic import Traffic, day_logs

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
