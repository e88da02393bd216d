"""The vectorised log scanner against plain Python: its byte readers (numbers, stamps,
prefixes, hashes) against `float()`, regexes and `bytes.startswith`, and the whole
app-log scan against a line-by-line reading of the same file, on a log made to be
awkward (disorder, clock jumps, CR LF, bad bytes, level words inside messages, other
loggers' Request lines, long paths and numbers, tracebacks after any level), read
in small chunks so that many lines straddle a chunk boundary."""

from __future__ import annotations

import io
import math
import random
import re
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest

from opscheck.probes.logs import scan
from opscheck.probes.logs.columns import PAD, Words
from opscheck.probes.logs.summary import bucket


def padded(parts: list[bytes]) -> tuple[bytes, list[int]]:
    """The parts joined by newlines after a leading newline, padded; their positions."""
    buf, pos = b"\n", []
    for p in parts:
        pos.append(len(buf))
        buf += p + b"\n"
    return buf + bytes(PAD), pos


def test_decimals_are_float_or_nan():
    rng = random.Random(5)
    alphabet = "0123456789" * 3 + ".. x-e"
    texts = [f"{rng.uniform(0, 99):.{rng.randint(0, 6)}f}" for _ in range(500)]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 18))) for _ in range(800)]
    texts += ["7", ".5", "5.", "..", "", "1234567890123456", "12345678901234567", "0.000"]
    buf, pos = padded([t.encode() for t in texts])
    got = Words(buf).decimals(np.array(pos), np.array([len(t) for t in texts]))
    for text, value in zip(texts, got.tolist(), strict=True):
        try:
            want = float(text) if re.fullmatch(r"\d*\.?\d*", text) and len(text) <= 16 else None
        except ValueError:
            want = None
        assert (value == want) if want is not None else math.isnan(value), text


def test_hours_and_hour_groups_agree_with_a_regex():
    rng = random.Random(6)
    heads = []
    for _ in range(600):
        t = datetime(2026, 11, 25) + timedelta(minutes=rng.randint(0, 3000))
        head = f"{t:%Y-%m-%d %H:%M:%S},123 - x - INFO - m"
        if rng.random() < 0.2:  # damage one byte
            i = rng.randrange(14)
            head = head[:i] + rng.choice("a -:9/") + head[i + 1 :]
        heads.append(head.encode())
    buf, pos = padded(heads)
    words = Words(buf)
    stamp = re.compile(rb"([12]\d{3})-(\d\d)-(\d\d) (\d\d):")
    want = [int(b"".join(m.groups())) if (m := stamp.match(h)) else -1 for h in heads]
    assert words.hours(np.array(pos)).tolist() == want
    for order in (sorted(range(len(pos)), key=want.__getitem__), list(range(len(pos)))):
        codes, group = words.hour_groups(np.array(pos)[order])
        assert codes[group].tolist() == [want[i] for i in order]


def test_starts_with_and_text_hash():
    rng = random.Random(7)
    texts = [bytes(rng.choice(b"ab- :R") for _ in range(rng.randint(0, 70))) for _ in range(400)]
    buf, pos = padded(texts)
    words = Words(buf)
    for probe in (b"a", b"ab- ", b"R- ab:ab", b"ab- :Rab- :R", b"- a"):
        got = words.starts_with(np.array(pos), probe).tolist()
        assert got == [t.startswith(probe) for t in texts]
    short = [i for i, t in enumerate(texts) if len(t) <= 64]
    h = words.text_hash(np.array(pos)[short], np.array([len(texts[i]) for i in short]))
    by_text = {}
    for i, digest in zip(short, h.tolist(), strict=True):
        assert by_text.setdefault(texts[i], digest) == digest
    assert len(set(by_text.values())) == len(by_text)


T0 = datetime(2026, 11, 25, 9, 0, 0)
ENDPOINTS = ["POST /api/v1/templates/generate", "GET /health", "GET /api/v1/stats"]


def awkward_log(seed: int, n: int = 4000) -> bytes:
    """An app log with every oddity the scanner must get right."""
    rng = random.Random(seed)
    out: list[bytes] = []
    t = T0
    for _ in range(n):
        t += timedelta(seconds=rng.randint(0, 40))
        when = t if rng.random() > 0.03 else t - timedelta(hours=rng.randint(1, 30))
        stamp = f"{when:%Y-%m-%d %H:%M:%S},{rng.randint(0, 999):03d}".encode()
        kind = rng.random()
        if kind < 0.25:
            ep = rng.choice([*ENDPOINTS, "GET /" + "x" * rng.randint(60, 90)])
            msg = f"INFO - Request: {ep}"
        elif kind < 0.5:
            secs = rng.choice([f"{rng.uniform(0, 30):.3f}", "7", "12345678901234567.1", "1..2"])
            msg = f"INFO - Response: {rng.choice([200, 200, 422, 404, 503])} - {secs}s"
        elif kind < 0.6:
            status = rng.choice(
                ["200 OK", "200 OK", "500 Internal Server Error", "401 Unauthorized"]
            )
            host = rng.choice(["api.anthropic.com/v1/messages", "api.openai.com/v1/embeddings"])
            msg = f'INFO - HTTP Request: POST https://{host} "HTTP/1.1 {status}"'
        elif kind < 0.68:
            ident = "".join(rng.choice("abcdef0123456789") for _ in range(12))
            msg = f"ERROR - Template generation failed: overloaded (request_id req_{ident})"
        elif kind < 0.72:
            msg = f"ERROR - Request failed: boom - {rng.uniform(0, 2):.3f}s"
        elif kind < 0.76:
            msg = f"WARNING - HTTP Exception: 422 - field {rng.randint(1, 9)} missing"
        elif kind < 0.78:
            msg = "CRITICAL - store gone"
        elif kind < 0.8:
            msg = "INFO - said ERROR - inside a message, and WARNING - too"
        elif kind < 0.82:
            msg = "INFO - 정책 문서 검색: k=5, 결과 5건"
        else:
            msg = f"INFO - Response: {rng.randint(200, 299)} - {rng.uniform(0, 5):.3f}s"
        logger = rng.choice(["src.api.main", "httpx", "src.agents.template_generator"])
        line = stamp + f" - {logger} - {msg}".encode()
        if rng.random() < 0.05:
            line += b"\r"
        if rng.random() < 0.02:
            line += b" \xff\xfe bad bytes"
        out.append(line)
        if rng.random() < 0.05:  # a traceback (or any continuation) after any line
            out += [b"Traceback (most recent call last):", b'  File "x.py", line 3, in f']
            out.append(rng.choice([b"ValueError: bad", b"anthropic.APIError: 529", b""]))
        if rng.random() < 0.01:
            out.append(b"key sk-ant-api03-" + b"A" * 30 + b" leaked")
    return b"\n".join(out) + b"\n"


RECORD = re.compile(
    rb"([12]\d{3})-(\d\d)-(\d\d) (\d\d):(?:(?! - ).)* - (?:(?! - ).)* - "
    rb"(ERROR|WARNING|CRITICAL) - (.*)"
)
RESPONSE = re.compile(rb"INFO - Response: (\d)\d\d - ([\d.]+)s\r?$")
REQUEST = re.compile(rb"INFO - Request: ([A-Z]+) (/\S*)\s*$")
CALL = re.compile(rb'INFO - HTTP Request: [A-Z]+ https://(\S+) "HTTP/1.1 (\d{3})')
STAMP = re.compile(rb"([12]\d{3})-(\d\d)-(\d\d) (\d\d):")
CONTINUES = re.compile(rb"(?![12]\d{3}-).+")


def reference(data: bytes) -> dict:
    """The same figures, read line by line in plain Python."""
    lines = data.split(b"\n")[:-1]
    hours: dict[str, dict] = {}
    levels, continuation = Counter(), 0
    keys = [f"app.log:{n}" for n, ln in enumerate(lines, 1) if b"sk-ant-" in ln]

    def hour(m) -> dict:
        key = "{}-{}-{} {}".format(*(g.decode() for g in m.groups()[:4]))
        return hours.setdefault(key, {"status": Counter(), "lat": Counter(), "ep": Counter()})

    i = 0
    while i < len(lines):
        ln, i = lines[i], i + 1
        m = STAMP.match(ln)
        if not m:
            continue
        rec = RECORD.match(ln)
        if rec:
            tail = []
            while i < len(lines) and CONTINUES.fullmatch(lines[i]):
                tail.append(lines[i])
                i += 1
            continuation += len(tail)
            level = rec.group(5).decode()
            levels[level] += 1
            msg = rec.group(6)
            kind = "warnings" if level == "WARNING" else "errors"
            sig = scan.signature(msg, b"" if kind == "warnings" else b"\n" + b"\n".join(tail))
            hour(m).setdefault(kind, Counter())[sig] += 1
            # the duration ends the record's last line (else its first): "... - 0.004s"
            ends = tail[-1] if tail else msg
            failed = re.search(rb"- ([\d.]+)s\s*$", ends) or re.search(rb"- ([\d.]+)s\s*$", msg)
            if kind == "errors" and msg.startswith(b"Request failed:"):
                hour(m)["status"]["5xx"] += 1
                hour(m)["untimed"] = hour(m).get("untimed", 0) + (not failed)
            if kind == "errors" and msg.startswith(b"Request failed:") and failed:
                hour(m)["lat"][bucket(float(failed.group(1)) * 1000.0)] += 1
                hour(m)["ms"] = hour(m).get("ms", 0.0) + float(failed.group(1)) * 1000.0
            continue
        r = RESPONSE.search(ln)
        secs = r.group(2) if r else b""
        if r and len(secs) <= 16 and secs.count(b".") <= 1 and secs.strip(b"."):
            hour(m)["status"][r.group(1).decode() + "xx"] += 1
            hour(m)["lat"][bucket(float(secs) * 1000.0)] += 1
            hour(m)["ms"] = hour(m).get("ms", 0.0) + float(secs) * 1000.0
        elif r := REQUEST.search(ln):
            path = r.group(2).decode("utf-8", "replace")[:80]
            hour(m)["ep"][f"{r.group(1).decode()} {path}"] += 1
        elif r := CALL.search(ln):
            hour(m).setdefault("calls", Counter())[f"{r[1].decode()} {r[2].decode()}"] += 1
    return {"lines": len(lines), "levels": levels, "continuation": continuation,
            "keys": keys, "hours": hours}  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scan_agrees_with_a_line_by_line_reading(seed, monkeypatch):
    monkeypatch.setattr(scan, "CHUNK", 8192)  # many lines straddle a chunk boundary
    monkeypatch.setattr(scan, "_OPEN_HOURS", 3)  # and hours move to the Summary early
    data = awkward_log(seed)
    got = scan.scan_app(io.BytesIO(data), "app.log")
    want = reference(data)
    assert (got.lines, got.levels, got.continuation) == (
        want["lines"],
        want["levels"],
        want["continuation"],
    )
    assert got.key_hits == want["keys"]
    assert sorted(got.hours) == sorted(want["hours"])
    for key, w in want["hours"].items():
        h = got.hours[key]
        assert h.status == w["status"], key
        assert h.latency.counts == w["lat"], key
        assert h.requests == h.latency.n + w.get("untimed", 0) == sum(w["status"].values()), key
        assert math.isclose(h.latency.total_ms, w.get("ms", 0.0), rel_tol=1e-9), key
        assert h.endpoints == w["ep"], key
        assert h.generations == w["ep"]["POST /api/v1/templates/generate"], key
        assert h.errors == w.get("errors", Counter()), key
        assert h.warnings == w.get("warnings", Counter()), key
        assert h.calls == w.get("calls", Counter()), key


@pytest.mark.parametrize("seed", range(6))
def test_junk_never_breaks_the_scan(seed, monkeypatch):
    """Byte soup thick with the bytes and fragments the scanner looks for (R, k, newlines,
    digits, "INFO - Response: ", stamps, "sk-"), cut anywhere: every line counted, no
    exception, whatever was parsed has a valid shape."""
    monkeypatch.setattr(scan, "CHUNK", rng_chunk := random.Random(seed).randint(64, 4096))
    rng = random.Random(seed)
    pieces = [b"R", b"k", b"\n", b"\r", b"-", b" ", b".", b"s", b"0", b"9", b"\xff", b"\x00",
              b"INFO - Response: ", b"INFO - Request: ", b" - ERROR - ", b" - WARNING - ",
              b"2026-11-25 13:", b"2026-11-25 13:00:00,000 - x - ", b"sk-ant-", b"200 - 1.5s",
              b"GET /", b"Traceback", b"CRITICAL"]  # fmt: skip
    data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 20000)))
    got = scan.scan_app(io.BytesIO(data), "app.log")
    assert got.lines == data.count(b"\n") + (not data.endswith(b"\n")), rng_chunk
    for key, h in got.hours.items():
        assert re.fullmatch(r"[12]\d{3}-\d\d-\d\d \d\d", key)
        assert h.requests == h.latency.n == sum(h.status.values())
        assert all(re.fullmatch(r"[A-Z]+ /\S*", ep) for ep in h.endpoints)
