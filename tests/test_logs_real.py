"""The app log reader on what real tools leave behind: logrotate's numbered, dateext,
xz and olddir rotations, time zones (TZ, service.timezone, a DST fall-back night), the
service's httpx and multi-line lines, and every way a log can be only partly readable
(random bytes, a line with no end, a FIFO, a cut archive, a file deleted mid-read)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opscheck.probes import ProbeError, logs
from opscheck.probes.logs import files, scan
from opscheck.probes.logs.llm import Calls

T0 = datetime(2026, 11, 25, 13, 0, 0)
NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def line(ts: datetime, logger: str, level: str, msg: str) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} - {logger} - {level} - {msg}"


def request(ts: datetime, status: int = 200, secs: float = 0.5) -> list[str]:
    return [
        line(ts, "src.api.main", "INFO", "Request: POST /api/v1/templates/generate"),
        line(ts, "src.api.main", "INFO", f"Response: {status} - {secs:.3f}s"),
    ]


def traffic(start: datetime, n: int, step_s: float = 10.0) -> list[str]:
    return [x for i in range(n) for x in request(start + timedelta(seconds=i * step_s))]


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def total(s) -> int:
    return sum(h.requests for h in s.hours.values())


def _logrotate(tmp: Path, conf_body: str, log: Path) -> Path:
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed")
    conf = tmp / "logrotate.conf"
    conf.write_text(f"{log} {{\n{conf_body}\n}}\n")
    conf.chmod(0o644)
    return conf


def rotate(conf: Path, state: Path) -> None:
    """Run the real logrotate, forced (one rotation), with its own state file. (dateext
    names carry the epoch seconds, -%Y%m%d-%s, so that rotations within a second of
    each other get names of their own.)"""
    proc = subprocess.run(
        ["logrotate", "-f", "-s", str(state), str(conf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "policy",
    [
        "rotate 30\ncompress\ndelaycompress\nmissingok\nnotifempty",
        "rotate 30\ncompress\nmissingok",
        "rotate 30\ndateext\ndateformat -%Y%m%d-%s\ncompress\ncompresscmd /usr/bin/xz\n"
        "uncompresscmd /usr/bin/unxz\ncompressext .xz\nmissingok",
        "rotate 30\ndateext\ndateformat -%Y%m%d-%s\ncompress\ncompresscmd /usr/bin/bzip2\n"
        "uncompresscmd /usr/bin/bunzip2\ncompressext .bz2",
        "rotate 30\ndateext\ndateformat -%Y%m%d-%s\ncompress\ncompresscmd /usr/bin/zstd\n"
        "uncompresscmd /usr/bin/unzstd\ncompressext .zst\ncompressoptions -q --rm",
        "rotate 30\nolddir old\ncompress\ndelaycompress",
    ],
    ids=["numbered-delaycompress", "numbered-gz", "dateext-xz", "dateext-bz2", "dateext-zst",
         "olddir"],
)  # fmt: skip
def test_every_line_is_counted_across_real_logrotate_rotations(tmp_path, policy):
    """Four days written and rotated by logrotate itself: every response is counted once,
    whatever the names and compression logrotate chose (today dateext, xz, bz2, zstd and
    olddir were not read at all: error_rate passed at 0 % on a few hours of data)."""
    if "zstd" in policy and shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "old").mkdir()
    log = logdir / "app.log"
    conf = _logrotate(tmp_path, policy, log)
    state = tmp_path / "state"
    written = 0
    for day in range(4):
        append(log, traffic(T0 + timedelta(days=day), 50 + day))
        written += 50 + day
        rotate(conf, state)
        if "dateext" in policy:
            time.sleep(1.05)  # a dateext name is unique per second
    append(log, traffic(T0 + timedelta(days=4), 7))
    written += 7
    names = sorted(p.name for p in logdir.rglob("app.log*"))
    s, st = files.summarize(str(log), tmp_path / "cache", olddirs=files.olddirs(str(conf)))
    assert total(s) == written, names
    assert st["files"] == 5, names
    assert not logs.blind_spots(s, "app log", NOW)
    again, st2 = files.summarize(str(log), tmp_path / "cache", olddirs=files.olddirs(str(conf)))
    assert total(again) == written and st2["cached_files"] >= 3, "rotated copies not read twice"


def test_a_name_logrotate_never_gives_is_an_error_not_a_skip(tmp_path):
    append(tmp_path / "app.log", traffic(T0, 3))
    (tmp_path / "app.log.1.lz4").write_bytes(b"\x04\x22\x4d\x18 compressed")
    (tmp_path / "app.log_errors").write_text("another log, not a copy\n")
    with pytest.raises(ProbeError, match=r"app\.log\.1\.lz4: not a name logrotate gives"):
        files.summarize(str(tmp_path / "app.log"), None)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_active_log_that_is_not_a_file_is_an_error(tmp_path, kind):
    """A FIFO or a directory named app.log beside rotated copies was skipped (exit 0)."""
    append(tmp_path / "app.log.1", traffic(T0, 3))
    if kind == "fifo":
        os.mkfifo(tmp_path / "app.log")
    else:
        (tmp_path / "app.log").mkdir()
    what = "a FIFO" if kind == "fifo" else "a directory"
    with pytest.raises(ProbeError, match=f"app.log is {what}, not a regular file"):
        files.summarize(str(tmp_path / "app.log"), None)


def test_random_bytes_as_the_only_log_are_seen_as_unparsed(tmp_path):
    """50 MB of random bytes as the only app log passed every check with exit 0."""
    (tmp_path / "app.log").write_bytes(os.urandom(50 << 20))
    s, _ = files.summarize(str(tmp_path / "app.log"), None, workers=2)
    problems = logs.blind_spots(s, "app log", NOW)
    assert any("could not be parsed, limit 1 %" in p for p in problems), problems
    with pytest.raises(ProbeError, match=r"cannot see the whole log: app log: .* lines"):
        logs.seen(s, "app log", NOW)


def test_a_line_without_end_is_said_not_skipped(tmp_path):
    """One long line with no newline: 0 bytes were read and nothing was said."""
    (tmp_path / "app.log").write_bytes(b"2026-11-25 13:00:00,000 - x - INFO - " + b"a" * (20 << 20))
    s, _ = files.summarize(str(tmp_path / "app.log"), None)
    problems = logs.blind_spots(s, "app log", NOW)
    assert any("hold no newline" in p and "not read" in p for p in problems), problems


def test_an_other_format_log_is_not_a_quiet_log(tmp_path):
    """JSON lines where the service's format is expected: nothing parses, so nothing passes."""
    (tmp_path / "app.log").write_text('{"time": "2026-11-25T13:00:00", "msg": "Response"}\n' * 50)
    s, _ = files.summarize(str(tmp_path / "app.log"), None)
    assert any("none of its 50 lines" in p for p in logs.blind_spots(s, "app log", NOW))


def test_cut_archive_is_a_blind_spot_naming_the_file(tmp_path):
    """app.log.2.gz cut to half passed with exit 0."""
    data = gzip.compress(("\n".join(traffic(T0, 4000)) + "\n").encode())
    (tmp_path / "app.log.2.gz").write_bytes(data[: len(data) // 2])
    append(tmp_path / "app.log", traffic(T0 + timedelta(days=1), 3))
    s, _ = files.summarize(str(tmp_path / "app.log"), None)
    problems = logs.blind_spots(s, "app log", NOW)
    assert any("app.log.2.gz" in p and "stopped early" in p for p in problems), problems


def test_log_deleted_while_read_is_one_line(tmp_path, monkeypatch):
    """A file deleted between listing and reading gave a raw FileNotFoundError traceback."""
    append(tmp_path / "app.log", traffic(T0, 3))
    append(tmp_path / "app.log.1", traffic(T0, 3))
    real = files._complete_end

    def deleted_first(f, *args):
        f.path.unlink(missing_ok=True)
        return real(f, *args)

    monkeypatch.setattr(files, "_complete_end", deleted_first)
    with pytest.raises(ProbeError, match=r"vanished while it was read .* run again$"):
        files.summarize(str(tmp_path / "app.log"), None)


def test_kst_log_on_a_utc_machine_asks_for_the_zone(tmp_path):
    """An app log in KST on a UTC box hid the last 9 h; now its stamps are ahead of now
    and the check says to set service.timezone. With it set, hours are UTC."""
    now = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 15:00 in Seoul
    append(tmp_path / "app.log", traffic(datetime(2026, 11, 25, 14, 30), 100))  # KST
    s, _ = files.summarize(str(tmp_path / "app.log"), None, tz="UTC")
    problems = logs.blind_spots(s, "app log", now)
    assert any("ahead of now" in p and "set service.timezone" in p for p in problems), problems
    seoul, _ = files.summarize(str(tmp_path / "app.log"), None, tz="Asia/Seoul")
    assert not logs.blind_spots(seoul, "app log", now)
    assert set(seoul.hours) == {"2026-11-25 05"}
    assert seoul.window(logs.hours_back(now, 24)).requests == 100


def test_machine_zone_from_tz_is_used_when_the_config_names_none(tmp_path):
    append(tmp_path / "app.log", traffic(datetime(2026, 11, 25, 14, 30), 5))
    code = (
        "import sys\nfrom opscheck.probes.logs import files\n"
        "s, _ = files.summarize(sys.argv[1], None)\nprint(sorted(s.hours))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "app.log")],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "Asia/Seoul"},
        timeout=60,
    )
    assert proc.stdout.strip() == "['2026-11-25 05']", proc.stderr


def test_dst_fall_back_hour_is_counted_once(tmp_path):
    """New York, 2026-11-01: 01:00-01:59 happens twice. One request a minute from 00:00 to
    03:59 wall clock (300 minutes of real time): the last 24 h hold exactly 300."""
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, 0, 0, tzinfo=ny)
    lines = []
    for m in range(300):
        wall = (start.astimezone(UTC) + timedelta(minutes=m)).astimezone(ny)
        lines += request(wall.replace(tzinfo=None))
    append(tmp_path / "app.log", lines)
    s, _ = files.summarize(str(tmp_path / "app.log"), None, tz="America/New_York")
    now = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert s.window(logs.hours_back(now, 24)).requests == 300
    assert not logs.blind_spots(s, "app log", now)


def test_multi_line_request_failed_is_a_5xx_with_its_duration(tmp_path):
    """ResponseValidationError's text spans lines and the duration ends the last one:
    it was not counted at all."""
    lines = [
        *request(T0),
        line(T0, "src.api.main", "ERROR", "Request failed: 1 validation error:"),
        "  {'type': 'list_type', 'loc': ('response', 'template'), 'msg': 'Input should be'}",
        '  File "/app/src/api/routes/templates.py", line 88, in generate - 0.004s',
        *request(T0),
    ]
    append(tmp_path / "app.log", lines)
    s, _ = files.summarize(str(tmp_path / "app.log"), None)
    h = s.hours["2026-11-25 13"]
    assert (h.requests, h.errors_5xx, h.latency.n) == (3, 1, 3)
    assert h.latency.over(100.0) == 2, "the 4 ms one is the failure's"


def test_signatures_tell_failures_apart_by_status_and_error_type():
    """A 401 merged into an old 500: a revoked key was "not new"."""
    body = (
        "Error generating response: Error code: {} - {{'type': 'error', 'error': {{'type': '{}'}}}}"
    )
    sigs = {
        scan.signature(body.format(code, kind).encode())
        for code, kind in [(401, "authentication_error"), (500, "api_error"),
                           (529, "overloaded_error"), (500, "api_error")]
    }  # fmt: skip
    assert len(sigs) == 3, sigs
    assert any("401" in s and "authentication_error" in s for s in sigs)
    assert scan.signature(b"req_123456789 took 35 ms") == scan.signature(b"req_987654321 took 1 ms")


def test_httpx_lines_count_llm_and_embeddings_calls_by_status(tmp_path):
    llm = 'HTTP Request: POST https://api.anthropic.com/v1/messages "HTTP/1.1 {}"'
    emb = 'HTTP Request: POST https://api.openai.com/v1/embeddings "HTTP/1.1 {}"'
    lines = [
        *request(T0),
        line(T0, "httpx", "INFO", llm.format("200 OK")),
        line(T0, "httpx", "INFO", llm.format("500 Internal Server Error")),
        line(T0, "anthropic._base_client", "INFO", "Retrying request to /v1/messages in 0.37 s"),
        line(T0, "httpx", "INFO", llm.format("401 Unauthorized")),
        line(T0, "httpx", "INFO", emb.format("200 OK")),
        line(T0, "httpx", "INFO", 'HTTP Request: GET http://127.0.0.1/health "HTTP/1.1 200 OK"'),
    ]  # fmt: skip
    append(tmp_path / "app.log", lines)
    s, _ = files.summarize(str(tmp_path / "app.log"), None)
    calls = Calls.of(s.hours["2026-11-25 13"].calls)
    assert (calls.total(), calls.total("llm"), calls.total("embeddings")) == (4, 3, 1)
    assert calls.rejected() == {("api.anthropic.com/v1/messages", "401"): 1}
    assert sum(calls.failed().values()) == 2
