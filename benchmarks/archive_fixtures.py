"""Large backup archives for the benchmarks, made once and kept in $OPSCHECK_BENCH_DIR.

Their content mimics a Chroma store: float vectors (barely compressible), SQLite-ish
rows and Korean log text (very compressible), packed with real `tar` and gzip -6.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

BENCH_DIR = Path(os.environ.get("OPSCHECK_BENCH_DIR", "/tmp/opscheck-bench"))
TEXT = (
    "2026-11-25 14:03:07,123 - src.api.main - INFO - Request: POST /api/v1/templates/generate\n"
    "안녕하세요 #{고객명}님, 피자 주문 완료 안내입니다. 주문번호 #{주문번호} 확인 부탁드립니다.\n"
).encode()


def _fill(folder: Path, raw_bytes: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written, n = 0, 0
    while written < raw_bytes:
        size = min(64 << 20, raw_bytes - written)
        path = folder / f"part{n:04d}.bin"
        with open(path, "wb") as f:
            left = size
            while left > 0:
                block = min(1 << 20, left)
                vectors, pages = block * 45 // 100, block // 10
                f.write(rng.randbytes(vectors))  # float vectors: incompressible
                f.write(bytes(pages))  # free pages: zeros
                rest = block - vectors - pages
                f.write((TEXT * (rest // len(TEXT) + 1))[:rest])  # rows and log text
                left -= block
        written += size
        n += 1


def archive(name: str, compressed_target: int, seed: int = 1) -> Path:
    """A .tar.gz of about `compressed_target` bytes, built once."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    out = BENCH_DIR / name
    if out.exists():
        return out
    work = BENCH_DIR / f"{name}.src"
    shutil.rmtree(work, ignore_errors=True)
    _fill(work / "app" / "chroma_db", int(compressed_target * 2.1), seed)
    tmp = out.with_suffix(".part")
    compressor = "pigz -6" if shutil.which("pigz") else "gzip -6"
    subprocess.run(["tar", "-I", compressor, "-cf", tmp, "-C", work, "app/chroma_db"], check=True)
    shutil.rmtree(work)
    tmp.rename(out)
    return out
