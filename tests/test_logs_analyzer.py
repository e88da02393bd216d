"""The log analyser on real files: right counts, right windows, and a stated outcome for
every kind of bad input (bad bytes, cut lines, huge lines, rotation, disorder)."""

from __future__ import annotations

import gzip
import math
import random
import shutil
import subprocess
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from opscheck import lifecycle
from opscheck.probes import ProbeError
from opscheck.probes.logs import files, scan
from opscheck.probes.logs.summary import Hist

T0 = datetime(2026, 11, 25, 13, 0, 0)


def line(ts: datetime, logger: str, level: str, msg: str) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} - {logger} - {level} - {msg}"


def request(ts: datetime, status: int = 200, secs: float = 0.5) -> list[str]:
    out = [line(ts, "src.api.main", "INFO", "Request: POST /api/v1/templates/generate")]
    if status >= 500:
        out.append(line(ts, "src.api.main", "ERROR", f"Request failed: boom - {secs:.3f}s"))
    else:
        out.append(line(ts, "src.api.main", "INFO", f"Response: {status} - {secs:.3f}s"))
    return out


def write(path: Path, lines: list[str], newline_at_end: bool = True) -> Path:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def summarize(path: Path, cache: Path | None = None, **kw):
    return files.summarize(str(path), cache, **kw)


def test_counts_statuses_latency_and_request_failed(tmp_path):
    lines = (
        request(T0, 200, 1.0)
        + request(T0, 422, 0.01)
        + request(T0 + timedelta(hours=1), 500, 0.004)
    )
    s, _ = summarize(write(tmp_path / "app.log", lines))
    h13, h14 = s.hours["2026-11-25 13"], s.hours["2026-11-25 14"]
    assert (h13.requests, dict(h13.status)) == (2, {"2xx": 1, "4xx": 1})
    assert (h14.requests, h14.errors_5xx) == (1, 1)
    assert h13.generations == 2 and h13.endpoints["POST /api/v1/templates/generate"] == 2
    assert s.levels == {"ERROR": 1}
    assert s.latency_source == "app log (server side)"


def test_percentile_within_one_percent():
    rng = random.Random(3)
    values = [rng.lognormvariate(7.5, 0.6) for _ in range(20000)]
    h = Hist()
    for v in values:
        h.add(v)
    exact = sorted(values)[math.ceil(0.95 * len(values)) - 1]
    assert abs(h.quantile_ms(0.95) - exact) / exact <= 0.01
    assert abs(h.mean_ms - sum(values) / len(values)) < 1e-6 * exact


def test_signatures_normalise_ids_numbers_quotes_hex_and_fold_tracebacks(tmp_path):
    lines = [
        line(
            T0,
            "src.api.routes.templates",
            "ERROR",
            "Template generation failed: timeout after 30.5s (request_id req_0a1b2c3d4e5f) "
            "for 'user 42' at 0xdeadbeef uuid 123e4567-e89b-12d3-a456-426614174000",
        ),
        "Traceback (most recent call last):",
        '  File "/app/src/x.py", line 3, in run',
        "anthropic.APITimeoutError: Request timed out.",
        line(
            T0,
            "src.api.routes.templates",
            "ERROR",
            "Template generation failed: timeout after 12s (request_id req_ffee00112233) "
            "for 'user 7' at 0x1234 uuid 00000000-0000-0000-0000-000000000000",
        ),
    ]
    s, _ = summarize(write(tmp_path / "app.log", lines))
    errors = s.hours["2026-11-25 13"].errors
    assert errors == {
        "Template generation failed: timeout after <n>s (request_id <id>) for '…' at <hex> uuid "
        "<uuid> [anthropic.APITimeoutError]": 1,
        "Template generation failed: timeout after <n>s (request_id <id>) for '…' at <hex> uuid "
        "<uuid>": 1,
    }
    assert s.continuation == 3, "traceback lines are folded, not counted as log lines"


def test_undecodable_bytes_and_korean(tmp_path):
    path = tmp_path / "app.log"
    good = line(T0, "src.agents.x", "WARNING", "느린 응답: 사용자 요청 처리 지연")
    path.write_bytes(
        good.encode()
        + b" \xff\xfe junk\n"
        + b"\x00\x01\x02 binary junk line\n"
        + line(T0, "src.api.main", "INFO", "Response: 200 - 0.100s").encode()
        + b"\n"
    )
    s, _ = summarize(path)
    h = s.hours["2026-11-25 13"]
    assert h.requests == 1
    (sig,) = h.warnings
    assert sig.startswith("느린 응답") and "\ufffd" in sig


def test_truncated_last_line_of_the_active_log_waits_for_next_run(tmp_path):
    path = write(tmp_path / "app.log", request(T0) + request(T0), newline_at_end=False)
    s, _ = summarize(path, tmp_path / "cache")
    assert s.hours["2026-11-25 13"].requests == 1, "the line still being written is left"
    with open(path, "ab") as f:
        f.write(b"\n")
    s, stats = summarize(path, tmp_path / "cache")
    assert s.hours["2026-11-25 13"].requests == 2
    assert stats["resumed_files"] == 1


def test_rotated_file_keeps_its_unterminated_last_line_when_gzipped(tmp_path):
    data = ("\n".join(request(T0) + request(T0))).encode()  # no final newline
    (tmp_path / "app.log.2.gz").write_bytes(gzip.compress(data))
    write(tmp_path / "app.log", [])
    s, _ = summarize(tmp_path / "app.log")
    assert s.hours["2026-11-25 13"].requests == 2


def test_ten_megabyte_line_is_cut_and_counted(tmp_path):
    path = tmp_path / "app.log"
    with open(path, "wb") as f:
        f.write((request(T0)[0] + "\n").encode())
        f.write(b"2026-11-25 13:00:00,000 - x - ERROR - " + b"A" * (10 << 20) + b"\n")
        f.write(("\n".join(request(T0)) + "\n").encode())
    s, _ = summarize(path)
    assert s.overlong == 1
    assert s.hours["2026-11-25 13"].requests == 1


def test_missing_and_empty_logs(tmp_path):
    with pytest.raises(ProbeError, match="does not exist"):
        summarize(tmp_path / "nope" / "app.log")
    with pytest.raises(ProbeError, match="nor any rotated copy"):
        summarize(tmp_path / "app.log")
    s, _ = summarize(write(tmp_path / "app.log", []))
    assert s.lines <= 1 and not s.hours


def test_lines_out_of_order_and_clock_jumps_land_in_their_own_hours(tmp_path):
    rng = random.Random(5)
    lines = []
    for n in range(300):
        lines += request(T0 + timedelta(minutes=n))
    lines.append(line(T0 + timedelta(days=400), "src.api.main", "INFO", "Response: 200 - 0.1s"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ordered, _ = summarize(write(tmp_path / "a" / "app.log", lines))
    rng.shuffle(lines)
    shuffled, _ = summarize(write(tmp_path / "b" / "app.log", lines))
    assert {k: h.requests for k, h in ordered.hours.items()} == {
        k: h.requests for k, h in shuffled.hours.items()
    }
    assert "2027-12-30 13" in shuffled.hours, "a clock jump is kept in its own (future) hour"


def test_gzip_cut_short_is_a_stated_outcome(tmp_path):
    data = gzip.compress(("\n".join(request(T0) * 2000) + "\n").encode())
    (tmp_path / "app.log.2.gz").write_bytes(data[: len(data) // 2])
    write(tmp_path / "app.log", request(T0))
    s, _ = summarize(tmp_path / "app.log")
    assert any("app.log.2.gz: read stopped early" in n for n in s.notes)
    assert s.hours["2026-11-25 13"].requests >= 1


def test_rotation_reuses_summaries_by_content(tmp_path):
    """logrotate renames app.log to app.log.1, later gzips it: neither is read again."""
    cache = tmp_path / "cache"
    log = tmp_path / "logs"
    log.mkdir()
    write(log / "app.log", [x for n in range(2000) for x in request(T0 + timedelta(seconds=n))])
    summarize(log / "app.log", cache)
    with open(log / "app.log", "a") as f:  # written after the run, before logrotate
        f.write("\n".join(request(T0 + timedelta(hours=2))) + "\n")
    (log / "app.log").rename(log / "app.log.1")
    write(log / "app.log", request(T0 + timedelta(days=1)))
    _, stats2 = summarize(log / "app.log", cache)
    assert stats2["resumed_files"] == 1, "app.log.1 is the old app.log: read from where we were"
    assert stats2["read_bytes"] < 400
    (log / "app.log.2.gz").write_bytes(gzip.compress((log / "app.log.1").read_bytes()))
    (log / "app.log.1").unlink()
    third, stats3 = summarize(log / "app.log", cache)
    assert stats3["cached_files"] == 1 and stats3["resumed_files"] == 1
    assert stats3["read_bytes"] < 100, "only app.log's last record is read again"
    assert sum(h.requests for h in third.hours.values()) == 2002


def test_a_traceback_written_after_a_run_joins_its_error(tmp_path):
    """The active log's last record counts in every run, but is remembered only once
    the next record begins: its traceback may still be being written."""
    cache = tmp_path / "cache"
    error = line(T0, "src.api.routes", "ERROR", "Template generation failed: boom")
    path = write(tmp_path / "app.log", [*request(T0), error])
    first, _ = summarize(path, cache)
    assert first.hours["2026-11-25 13"].errors == {"Template generation failed: boom": 1}
    with open(path, "a") as f:
        f.write('Traceback (most recent call last):\n  File "x.py", line 1\nValueError: x\n')
        f.write("\n".join(request(T0 + timedelta(seconds=5))) + "\n")
    second, _ = summarize(path, cache)
    want = {"Template generation failed: boom [ValueError]": 1}
    assert second.hours["2026-11-25 13"].errors == want
    assert second.continuation == 3 and second.hours["2026-11-25 13"].requests == 2


def test_rewritten_file_with_the_same_head_is_read_again(tmp_path):
    cache = tmp_path / "cache"
    head = [x for n in range(1000) for x in request(T0 + timedelta(seconds=n))]
    path = write(tmp_path / "app.log", [*head, *request(T0, 200)])
    summarize(path, cache)
    write(path, [*head, *request(T0, 500), *request(T0, 500)])
    s, _ = summarize(path, cache)
    assert s.hours["2026-11-25 13"].errors_5xx == 2


def test_parallel_split_equals_one_pass(tmp_path, monkeypatch):
    lines = [
        x
        for n in range(20000)
        for x in request(T0 + timedelta(seconds=n), 200 + (n % 7 == 0) * 300, 0.1 + n % 50 / 10)
    ]
    lines.insert(12345, "sk-ant-api03-" + "x" * 40)
    traceback = ["Traceback (most recent call last):", '  File "x.py", line 1', "KeyError: k"]
    lines = [y for x in lines for y in ([x, *traceback] if "Request failed" in x else [x])]
    first_failure = next(i for i, x in enumerate(lines) if "Request failed" in x)
    lines[first_failure + 1 : first_failure + 1] = [f"  frame {n}" for n in range(110000)]
    path = write(tmp_path / "app.log", lines)
    one, _ = files.summarize(str(path), None, workers=1)
    monkeypatch.setattr(files, "POOL_MIN_BYTES", 0)  # spawned workers, however small
    for workers in (2, 3, 7):  # ranges meet between records, even past a long traceback
        many, _ = files.summarize(str(path), None, workers=workers, split_min=1)
        assert one.to_json() == many.to_json()
    assert one.key_hits == [f"app.log:{lines.index('sk-ant-api03-' + 'x' * 40) + 1}"]
    assert one.continuation == 3 * sum("Request failed" in x for x in lines) + 110000
    assert {k for h in one.hours.values() for k in h.errors} == {
        "Request failed: boom - <n>s [KeyError]"
    }


def test_a_worker_that_dies_costs_time_not_counts(tmp_path, monkeypatch):
    """A spawned worker killed mid-scan (the OOM killer): its ranges are read here."""
    lines = [x for n in range(3000) for x in request(T0 + timedelta(seconds=n))]
    path = write(tmp_path / "app.log", lines)
    one, _ = files.summarize(str(path), None, workers=1)

    class DyingPool(lifecycle._Pool):
        def submit(self, fn, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("worker killed"))
            return future

    monkeypatch.setattr(lifecycle, "_Pool", DyingPool)
    monkeypatch.setattr(files, "POOL_MIN_BYTES", 0)
    two, _ = files.summarize(str(path), None, workers=3, split_min=1)
    assert one.to_json() == two.to_json()


def test_access_log_format(tmp_path):
    rows = [
        '203.0.113.9 - - [25/Nov/2026:13:05:00 +0900] "POST /api/v1/templates/generate?x=1 '
        'HTTP/1.1" 200 812 "-" "curl/8" 2.501',
        '203.0.113.9 - - [25/Nov/2026:13:05:01 +0900] "GET /health HTTP/1.1" 502 0 "-" "-" 0.010',
        '198.51.100.7 - - [25/Nov/2026:13:05:02 +0900] "GET /.env HTTP/1.1" 200 10 "-" "-"',
        "garbage line",
    ]
    s, _ = files.summarize(str(write(tmp_path / "access.log", rows)), None, fmt="access")
    h = s.hours["2026-11-25 04"]  # 13:05 +0900 is 04:05 UTC
    assert h.requests == 3 and h.errors_5xx == 1 and h.generations == 1
    assert h.latency.n == 2 and s.untimed == 1, "a combined line in a timed log has no duration"
    assert set(h.endpoint_latency) == {"POST /api/v1/templates/generate", "GET /health"}
    assert s.probe_hits == {"2026-11-25 04|198.51.100.7 /.env 200": 1}
    assert (s.unparsed, s.unparsed_sample) == (1, "garbage line")
    assert s.latest == "2026-11-25 04:05:02"


def test_unreadable_log_is_a_probe_error_with_reason(tmp_path):
    """Permission denied for real: the summary runs without root's read-anything
    capabilities, on a rotated copy it may not read."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    write(tmp_path / "app.log", request(T0))
    write(tmp_path / "app.log.1", request(T0)).chmod(0)
    code = (
        "import sys\n"
        "from opscheck.probes import ProbeError\n"
        "from opscheck.probes.logs.files import summarize\n"
        "try:\n    summarize(sys.argv[1], None)\n"
        "except ProbeError as e:\n    print(e)\n"
    )
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code,
         str(tmp_path / "app.log")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout.strip() == f"log {tmp_path / 'app.log.1'}: cannot read: Permission denied"


def test_vanished_file_is_a_note(tmp_path):
    out = files._scan_task((str(tmp_path / "gone.log"), False, 0, None, "gone.log", 0, "app"))
    assert "gone.log: read stopped early" in out["notes"][0]


def test_signature_cache_is_bounded():
    assert scan._signature.cache_info().maxsize == 1 << 16
