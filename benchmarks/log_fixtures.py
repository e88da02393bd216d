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
