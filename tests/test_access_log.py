"""The access log parser on real files: formats as nginx.conf writes them, each line's
own offset, exact codes, the client behind a balancer, 60 s windows, probe paths after
normalisation, and a stated outcome for lines that do not parse."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscheck import config
from opscheck.probes.logs import access, files
from opscheck.probes.logs.access import PRESETS, compile_format, normalise

KST = timezone(timedelta(hours=9))
T0 = datetime(2026, 11, 25, 13, 5, 0, tzinfo=KST)  # 04:05 UTC
MAIN_CONF = """log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                  '$status $body_bytes_sent "$http_referer" '
                  '"$http_user_agent" "$http_x_forwarded_for"';"""


def stamp(t: datetime) -> str:
    return t.strftime("%d/%b/%Y:%H:%M:%S %z")


def combined(t, path="/health", status=200, client="203.0.113.9", method="GET", ua="curl/8"):
    return f'{client} - - [{stamp(t)}] "{method} {path} HTTP/1.1" {status} 12 "-" "{ua}"'


def timed(t, secs=0.010, **kw) -> str:
    return f"{combined(t, **kw)} {secs:.3f}"


def summarize(tmp_path: Path, lines: list[str] | bytes, fmt: str = "timed", **kw):
    path = tmp_path / "access.log"
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return files.summarize(str(path), None, fmt="access", access_format=fmt, **kw)[0]


def scan(data: bytes, fmt: str, vector: bool = True):
    """One pass straight over bytes (numpy first, or every line one by one)."""
    import io

    return access.scan_access(io.BytesIO(data), "access.log", None, 0, fmt, vector)


def canon(s) -> dict:
    """A Summary as plain data (the order of counters and histograms left out)."""
    out = {k: v for k, v in s.__dict__.items() if k != "hours"}
    out["levels"], out["probe_hits"] = dict(s.levels), dict(s.probe_hits)
    out["hours"] = {
        k: {
            "requests": h.requests,
            "status": dict(h.status),
            "codes": dict(h.codes),
            "latency": (dict(h.latency.counts), h.latency.n, round(h.latency.total_ms, 3)),
            "endpoints": dict(h.endpoints),
            "generations": h.generations,
            "by_endpoint": {
                e: (dict(x.counts), x.n, round(x.total_ms, 3))
                for e, x in h.endpoint_latency.items()
            },
        }
        for k, h in s.hours.items()
    }
    return out


def codes(s) -> dict[str, int]:
    total: dict[str, int] = {}
    for h in s.hours.values():
        for c, n in h.codes.items():
            total[c] = total.get(c, 0) + n
    return total


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "source", "time_var"),
    [
        ("combined", "", "time_local"),
        ("timed", "access log ($request_time, client side)", "time_local"),
        ("main", "", "time_local"),
        ("json", "access log ($request_time, client side)", "time_iso8601"),
    ],
)
def test_presets_compile_to_a_numpy_plan(name, source, time_var):
    fmt = compile_format(name)
    assert (fmt.latency_source, fmt.time_var) == (source, time_var)
    assert fmt.plan is not None
    assert fmt.escape == ("json" if name == "json" else "default")


def test_format_as_written_in_nginx_conf():
    """The whole directive, its quoted strings, or the bare text: one format."""
    assert compile_format(MAIN_CONF).text == PRESETS["main"]
    quoted = MAIN_CONF.split("main", 1)[1].strip().rstrip(";")
    assert compile_format(quoted).text == PRESETS["main"]
    braces = PRESETS["timed"].replace("$request_time", "${request_time}")
    assert compile_format(braces).duration_var == "request_time"
    j = compile_format(f"log_format j escape=json '{PRESETS['json']}';")
    assert (j.text, j.escape) == (PRESETS["json"], "json")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('$remote_addr [$time_local] "$request"', "the format has no $status"),
        ('$remote_addr "$request" $status', "the format has no time"),
        ("$remote_addr [$time_local] $status", "the format has no $request"),
        ('[$time_local] "$request" $status', "the format has no client"),
        ('\'$remote_addr [$time_local] "$request" $status', "unterminated quote"),
        ("fancy", "'fancy' is not a format name (combined, timed, main, json)"),
        ("", "the format is empty"),
        ('$remote_addr [$time_local] "$request" $status $', "a $ without a variable name"),
    ],
)
def test_bad_format_is_a_one_line_config_error(tmp_path, text, reason):
    path = tmp_path / "opscheck.toml"
    path.write_text(f"[paths]\naccess_log_format = {json.dumps(text)}\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: [paths] access_log_format: {reason}"), msg
    assert "\n" not in msg


def test_config_default_is_timed():
    assert config.Paths().access_log_format == "timed"


def test_timing_anywhere_and_unknown_variables(tmp_path):
    fmt = '$remote_addr [$time_local] $request_time "$request" $status $my_thing "$http_user_agent"'
    assert compile_format(fmt).plan is not None
    line = f'1.2.3.4 [{stamp(T0)}] 2.500 "POST /api/v1/templates/generate HTTP/1.1" 200 x9 "a b"'
    s = summarize(tmp_path, [line] * 3, fmt)
    h = s.hours["2026-11-25 04"]
    assert (s.unparsed, h.generations, h.latency.n) == (0, 3, 3)
    assert h.latency.mean_ms == pytest.approx(2500, rel=0.01)


def test_ambiguous_format_is_read_line_by_line(tmp_path):
    """An unquoted user agent (spaces) before another value: no numpy plan, same counts."""
    fmt = '$remote_addr [$time_local] "$request" $status $http_user_agent rt=$request_time'
    assert compile_format(fmt).plan is None
    line = f'203.0.113.9 [{stamp(T0)}] "GET /health HTTP/1.1" 200 Mozilla/5.0 (X11; Linux) rt=0.250'
    s = summarize(tmp_path, [line], fmt)
    assert (s.unparsed, s.hours["2026-11-25 04"].latency.n) == (0, 1)


# ---------------------------------------------------------------- what a line says


def test_each_line_in_utc_by_its_own_offset(tmp_path):
    lines = [
        timed(T0),  # 13:05 +0900 = 04:05 UTC
        timed(datetime(2026, 11, 24, 23, 30, tzinfo=timezone(timedelta(hours=-5)))),  # 04:30 UTC
        timed(datetime(2026, 11, 25, 4, 59, 59, tzinfo=UTC)),
    ]
    s = summarize(tmp_path, lines)
    assert {k: h.requests for k, h in s.hours.items()} == {"2026-11-25 04": 3}
    assert s.latest == "2026-11-25 04:59:59"


def test_dst_fall_back_hour_is_two_utc_hours(tmp_path):
    """01:30 happens twice in New York on 2026-11-01: -0400 then -0500."""
    ny = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ny)
    second = first.replace(fold=1)
    assert stamp(first).endswith("-0400") and stamp(second).endswith("-0500")
    s = summarize(tmp_path, [timed(first), timed(second)])
    assert {k: h.requests for k, h in s.hours.items()} == {"2026-11-01 05": 1, "2026-11-01 06": 1}


def test_iso8601_and_msec_times(tmp_path):
    iso = '$remote_addr $time_iso8601 "$request" $status $request_time'
    msec = '$remote_addr $msec "$request" $status $request_time'
    s = summarize(tmp_path, ['1.2.3.4 2026-11-25T13:05:00+09:00 "GET / HTTP/1.1" 200 0.5'], iso)
    assert set(s.hours) == {"2026-11-25 04"}
    epoch = T0.timestamp()
    s = summarize(tmp_path, [f'1.2.3.4 {epoch:.3f} "GET / HTTP/1.1" 200 0.5'], msec)
    assert (set(s.hours), s.latest) == ({"2026-11-25 04"}, "2026-11-25 04:05:00")


def test_499_and_504_are_exact_codes(tmp_path):
    lines = [timed(T0, status=c) for c in (200, 200, 499, 499, 499, 504, 502, 404)]
    s = summarize(tmp_path, lines)
    h = s.hours["2026-11-25 04"]
    assert dict(h.codes) == {"200": 2, "499": 3, "504": 1, "502": 1, "404": 1}
    assert dict(h.status) == {"2xx": 2, "4xx": 4, "5xx": 2}


def test_combined_has_no_latency_and_says_so(tmp_path):
    """Without timings: no histogram (not 0 ms), every response counted as untimed."""
    s = summarize(tmp_path, [combined(T0 + timedelta(seconds=n)) for n in range(5)], "combined")
    h = s.hours["2026-11-25 04"]
    assert (h.requests, h.latency.n, h.latency.mean_ms, h.latency.quantile_ms(0.95)) == (
        5, 0, None, None
    )  # fmt: skip
    assert (s.untimed, s.latency_source) == (5, "")


@pytest.mark.parametrize(
    ("value", "ms"),
    [("0.120", 120.0), ("0.001, 0.002", 3.0), ("0.001 : 0.010", 11.0), ("-, 0.004", 4.0),
     ("-", None), ("", None)],
)  # fmt: skip
def test_upstream_response_time_is_summed(tmp_path, value, ms):
    fmt = '$remote_addr [$time_local] "$request" $status "$upstream_response_time"'
    s = summarize(tmp_path, [f'1.2.3.4 [{stamp(T0)}] "GET / HTTP/1.1" 502 "{value}"'], fmt)
    lat = s.hours["2026-11-25 04"].latency
    assert s.latency_source == "access log ($upstream_response_time, upstream side)"
    assert (lat.n, s.untimed) == ((0, 1) if ms is None else (1, 0))
    if ms is not None:
        assert lat.total_ms == pytest.approx(ms)


@pytest.mark.parametrize(
    ("xff", "client"),
    [("-", "10.0.0.2"), ("198.51.100.9", "198.51.100.9"),
     ("198.51.100.9, 10.0.0.1", "198.51.100.9"), ("", "10.0.0.2")],
)  # fmt: skip
def test_client_is_the_first_forwarded_address(tmp_path, xff, client):
    line = f'10.0.0.2 - - [{stamp(T0)}] "GET /.env HTTP/1.1" 200 5 "-" "curl" "{xff}"'
    s = summarize(tmp_path, [line], "main")
    assert dict(s.probe_hits) == {f"2026-11-25 04|{client} /.env 200": 1}


def test_time_out_of_range_is_unparsed_not_a_crash(tmp_path):
    msec = '$remote_addr $msec "$request" $status $request_time'
    s = summarize(tmp_path, ['1.2.3.4 99999999999999.000 "GET / HTTP/1.1" 200 0.5'], msec)
    assert (s.lines, s.unparsed) == (1, 1)
    s = summarize(tmp_path, [timed(T0).replace("2026", "0999")])
    assert (s.lines, s.unparsed) == (1, 1)


def test_request_method_and_uri_format(tmp_path):
    fmt = '$remote_addr [$time_local] $request_method "$request_uri" $status $request_time'
    rows = [f'1.2.3.4 [{stamp(T0)}] POST "/api/v1/templates/generate?a=1" 200 2.5'] * 2
    s = summarize(tmp_path, rows, fmt)
    h = s.hours["2026-11-25 04"]
    assert (h.generations, dict(h.endpoints)) == (2, {"POST /api/v1/templates/generate": 2})


def test_crlf_lines(tmp_path):
    data = "\r\n".join(timed(T0, status=c) for c in (200, 500)).encode() + b"\r\n"
    s = summarize(tmp_path, data)
    assert (s.unparsed, dict(s.hours["2026-11-25 04"].codes)) == (0, {"200": 1, "500": 1})


def test_cached_summary_is_per_format(tmp_path):
    """The same file read as timed then as combined is read again, not served from cache."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(timed(T0) for _ in range(3)) + "\n")
    cache = tmp_path / "cache"
    a, _ = files.summarize(str(log), cache, fmt="access", access_format="timed")
    b, stats = files.summarize(str(log), cache, fmt="access", access_format="combined")
    assert (a.untimed, a.unparsed) == (0, 0)
    assert (stats["cached_files"], b.unparsed, b.lines) == (0, 3, 3)
    _, again = files.summarize(str(log), cache, fmt="access", access_format="timed")
    assert again["cached_files"] == 1


# ---------------------------------------------------------------- any 60 s


def _burst(start: datetime, n: int, seconds: float, status: int = 401) -> list[str]:
    step = seconds / max(n - 1, 1)
    return [
        timed(start + timedelta(seconds=round(i * step)), status=status, client="198.51.100.66",
              method="POST", path="/api/v1/templates/generate")
        for i in range(n)
    ]  # fmt: skip


def test_auth_burst_across_a_minute_boundary_is_one_burst(tmp_path):
    """40 401s in 52 s, 20 each side of 12:01:00: 40 in a minute (per clock minute: 20)."""
    start = datetime(2026, 11, 25, 12, 0, 34, tzinfo=UTC)
    lines = _burst(start, 40, 52)
    assert sum(":12:00:" in x for x in lines) == 20
    s = summarize(tmp_path, lines)
    assert s.auth_bursts == {"2026-11-25 12|198.51.100.66": 40}
    assert s.clients_over_rate == {"2026-11-25 12|198.51.100.66": 40}


def test_auth_failures_spread_over_minutes_are_no_burst(tmp_path):
    s = summarize(tmp_path, _burst(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), 40, 234))
    assert s.auth_bursts == {"2026-11-25 12|198.51.100.66": 10}


def test_rate_across_a_minute_boundary(tmp_path):
    """120 requests in 50 s astride a minute (60 + 60): the window holds all 120."""
    start = datetime(2026, 11, 25, 12, 0, 35, tzinfo=UTC)
    s = summarize(tmp_path, _burst(start, 120, 50, status=200))
    assert s.clients_over_rate == {"2026-11-25 12|198.51.100.66": 120}


def test_window_is_less_than_60_seconds(tmp_path):
    """Requests 60 s apart are two windows; 59 s apart, one."""
    t = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    apart = [timed(t, client="c")] * 20 + [timed(t + timedelta(seconds=60), client="c")] * 20
    assert summarize(tmp_path, apart).clients_over_rate == {"2026-11-25 12|c": 20}
    near = [timed(t, client="c")] * 20 + [timed(t + timedelta(seconds=59), client="c")] * 20
    assert summarize(tmp_path, near).clients_over_rate == {"2026-11-25 12|c": 40}


def test_window_is_keyed_by_the_hour_it_ends_in(tmp_path):
    t = datetime(2026, 11, 25, 12, 59, 40, tzinfo=UTC)
    lines = [timed(t + timedelta(seconds=i), client="c") for i in range(30)]
    assert summarize(tmp_path, lines).clients_over_rate == {
        "2026-11-25 12|c": 20,
        "2026-11-25 13|c": 30,
    }


@pytest.mark.parametrize("far", [False, True])
def test_window_over_any_span_of_time_in_one_buffer(far):
    """Times too far apart for one sort key are counted the slow way: the same peaks."""
    peaks: dict[str, int] = {}
    keys = access.Keys()
    w = access.Windows(3, peaks, keys)
    a, b, c = keys.id(b"a"), keys.id(b"b"), keys.id(b"c")
    t = np.array([0, 1000, 2000, 59_999, 60_000, 5, 6, 7, 3 << 60 if far else 10**9])
    w.add(t, np.array([a, a, a, a, a, c, c, c, b]))
    assert peaks == {"1970-01-01 00|a": 4, "1970-01-01 00|c": 3}


def test_window_holds_across_buffers_and_split_ranges(tmp_path, monkeypatch):
    """A burst where the file is cut between two workers, and between two buffers."""
    rng = random.Random(5)
    t = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    quiet = [timed(t + timedelta(seconds=i * 7), client=f"203.0.113.{rng.randrange(50)}")
             for i in range(3000)]  # fmt: skip
    burst = _burst(t + timedelta(seconds=3000 * 7), 80, 40, status=403)
    later = timed(t + timedelta(hours=6), client="x")
    lines = quiet + burst + [later] * (len("\n".join(quiet)) // (len(later) + 1))
    one = summarize(tmp_path, lines)
    assert one.auth_bursts == {"2026-11-25 15|198.51.100.66": 80}
    # the middle of the file falls inside the burst: two ranges, two processes
    log = tmp_path / "access.log"
    data = log.read_bytes()
    first, last = data.index(burst[0].encode()), data.index(burst[-1].encode())
    assert first < len(data) // 2 < last
    monkeypatch.setattr(files, "POOL_MIN_BYTES", 0)
    two, _ = files.summarize(str(log), None, workers=2, fmt="access", split_min=1)
    assert two.auth_bursts == one.auth_bursts
    monkeypatch.setattr("opscheck.probes.logs.scan.CHUNK", 4096)  # many buffers
    small = scan(data, "timed")
    assert small.auth_bursts == one.auth_bursts and canon(small)["hours"] == canon(one)["hours"]


# ---------------------------------------------------------------- probe paths


@pytest.mark.parametrize(
    "path",
    ["/.env", "/%2eenv", "/%2Eenv", "//.env", "/static/../.env", "/%252eenv", "/.%65nv",
     "/static/..%2f.env", "/a/./b/../../.git/config", "/static/..\\.env",
     "http://example.com/.env", "/%2E%67it/HEAD", "/./wp-admin/", "/x/%2e%2e/phpmyadmin/"],
)  # fmt: skip
def test_probe_path_matched_after_normalising(tmp_path, path):
    s = summarize(tmp_path, [timed(T0, path=path)])
    assert dict(s.probe_hits) == {f"2026-11-25 04|203.0.113.9 {path} 200": 1}


@pytest.mark.parametrize(
    "path", ["/health", "/api/v1/templates/generate", "/docs/.env-guide", "/%2e%2e/", "/envoy"]
)
def test_ordinary_paths_are_no_probe(tmp_path, path):
    assert not summarize(tmp_path, [timed(T0, path=path)]).probe_hits


def test_probe_path_escaped_by_nginx(tmp_path):
    """nginx writes a backslash as \\x5C: read as the byte it was."""
    s = summarize(tmp_path, [timed(T0, path="/static/..\\x5C.env")])
    assert dict(s.probe_hits) == {"2026-11-25 04|203.0.113.9 /static/..\\.env 200": 1}


_SEGMENT = st.text("abcxyz019-_.~é한", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_SEGMENT, min_size=1, max_size=5), st.data())
@settings(max_examples=200, deadline=None)
def test_normalise_ignores_encoding_dots_and_slashes(segments, data):
    plain = "/" + "/".join(segments)
    noisy = ""
    for seg in segments:
        noisy += data.draw(st.sampled_from(["/", "//", "/./", "/zz/../", "\\"]))
        for char in seg:
            encode = char.isascii() and data.draw(st.booleans())
            noisy += f"%{ord(char):02X}" if encode else char
    assert normalise(noisy) == normalise(plain) == plain


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_normalised_path_is_clean(path):
    out = normalise(path)
    assert out.startswith("/")
    assert "//" not in out and "/./" not in out and "/../" not in out
    assert not out.endswith(("/.", "/.."))


# ---------------------------------------------------------------- bad lines


def test_random_bytes_are_counted_unparsed_never_a_crash(tmp_path):
    rng = random.Random(9)
    junk = bytes(rng.randrange(256) for _ in range(300_000))
    s = summarize(tmp_path, junk + b"\n" + timed(T0).encode() + b"\n")
    assert s.lines == junk.count(b"\n") + 2 and s.unparsed == s.lines - 1
    assert s.hours["2026-11-25 04"].requests == 1
    assert 0 < len(s.unparsed_sample) <= 200


def test_unparsed_sample_is_scrubbed(tmp_path):
    key = "sk-ant-api03-" + "A" * 40
    s = summarize(tmp_path, [f"oops {key} " + "x" * 500, timed(T0)])
    assert s.unparsed == 1 and key not in s.unparsed_sample
    assert s.unparsed_sample.startswith("oops sk-ant-") and len(s.unparsed_sample) <= 200
    assert s.key_hits == ["access.log:1"]


# ---------------------------------------------------------------- numpy = one by one


def _esc_default(text: str) -> str:
    """nginx's default escaping: ", \\ and bytes outside 32..126 as \\xHH."""
    out = []
    for b in text.encode():
        out.append(f"\\x{b:02X}" if b in (34, 92) or b < 32 or b > 126 else chr(b))
    return "".join(out)


def _esc_json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=90)
_PATHS = st.one_of(
    st.sampled_from(["/health", "/api/v1/templates/generate", "/.env", "//.env", "/%2eenv",
                     "/static/../.git/config", "/" + "a" * 70, "/x?q=1", "/y?" + "b" * 80]),
    st.text("abc/.%?=&2e", max_size=70).map(lambda p: "/" + p),
)  # fmt: skip


@st.composite
def _line_values(draw):
    when = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 40 * 86400)))
    zone = timezone(timedelta(minutes=15 * draw(st.integers(-48, 56))))
    return {
        "t": when.astimezone(zone),
        "client": draw(st.sampled_from(["203.0.113.9", "198.51.100.66", "::1", "10.0.0.2"])),
        "request": draw(
            st.one_of(
                st.builds(
                    lambda m, p: f"{m} {p} HTTP/1.1",
                    st.sampled_from(["GET", "POST", "HEAD"]),
                    _PATHS,
                ),
                st.sampled_from(["-", "GET /", "\x16\x03\x01", "GET /a b HTTP/1.1"]),
            )
        ),
        "status": draw(st.sampled_from([200, 201, 301, 401, 403, 404, 422, 499, 500, 502, 504])),
        "secs": draw(st.one_of(st.floats(0, 100).map(lambda x: f"{x:.3f}"), st.just("0.000"))),
        "ua": draw(_TEXT),
        "xff": draw(st.sampled_from(["-", "", "198.51.100.9", "198.51.100.9, 10.0.0.1"])),
        "upstream": draw(st.sampled_from(["-", "0.004", "0.001, 0.250", "0.5 : 0.25"])),
    }


def _render(fmt: str, v: dict) -> str:
    if fmt == "json":
        doc = (
            f'{{"time":"{v["t"].isoformat()}","remote_addr":"{v["client"]}",'
            f'"x_forwarded_for":"{_esc_json(v["xff"])}","request":"{_esc_json(v["request"])}",'
            f'"status":{v["status"]},"body_bytes_sent":12,"request_time":{v["secs"]},'
            f'"upstream_response_time":"{v["upstream"]}","http_referer":"",'
            f'"http_user_agent":"{_esc_json(v["ua"])}"}}'
        )
        return doc
    head = (
        f'{v["client"]} - - [{stamp(v["t"])}] "{_esc_default(v["request"])}" {v["status"]} 12 '
        f'"-" "{_esc_default(v["ua"])}"'
    )
    return {
        "combined": head,
        "timed": f"{head} {v['secs']}",
        "main": f'{head} "{v["xff"] or "-"}"',
        "upstream": f'{head} "{v["upstream"]}"',
    }[fmt]


UPSTREAM = PRESETS["combined"] + ' "$upstream_response_time"'


@pytest.mark.parametrize("fmt", ["combined", "timed", "main", "json", "upstream"])
@given(rows=st.lists(_line_values(), min_size=1, max_size=60), junk=st.binary(max_size=200))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_numpy_reads_what_one_by_one_reads(fmt, rows, junk):
    """Escaped quotes, backslashes, Korean, control bytes, long paths and junk: numpy's
    reading of every line is the regex's (and every valid line is read)."""
    spec = UPSTREAM if fmt == "upstream" else fmt
    data = "\n".join(_render(fmt, v) for v in rows).encode() + b"\n" + junk
    fast, slow = scan(data, spec), scan(data, spec, vector=False)
    assert canon(fast) == canon(slow)
    assert fast.lines - fast.unparsed >= len(rows)
    found = codes(fast)
    for status in {r["status"] for r in rows}:
        assert found[str(status)] >= sum(r["status"] == status for r in rows)


def test_numpy_path_is_taken_for_regular_lines(tmp_path, monkeypatch):
    """Plain lines never go one by one (that would be slow)."""
    calls = []
    real = access.AccessScanner._parse_line
    monkeypatch.setattr(access.AccessScanner, "_parse_line",
                        lambda self, line: calls.append(line) or real(self, line))  # fmt: skip
    for name in ("combined", "timed", "main", "json"):
        values = {"t": T0, "client": "203.0.113.9", "request": "GET /health HTTP/1.1",
                  "status": 200, "secs": "0.010", "ua": "curl/8", "xff": "-",
                  "upstream": "-"}  # fmt: skip
        data = ("\n".join(_render(name, values) for _ in range(50)) + "\n").encode()
        s = scan(data, name)
        assert s.hours["2026-11-25 04"].requests == 50
    assert calls == []


def test_lines_of_the_old_format_after_a_change(tmp_path):
    """A rotated file written before `timed` was set (combined) is read, untimed."""
    s = summarize(tmp_path, [combined(T0), timed(T0)])
    assert (s.unparsed, s.untimed, s.hours["2026-11-25 04"].requests) == (0, 1, 2)


def test_json_line_with_other_key_order_is_read_by_json(tmp_path):
    line = json.dumps({"status": 404, "request": "GET /x HTTP/1.1", "remote_addr": "1.2.3.4",
                       "time": "2026-11-25T13:05:00+09:00", "request_time": 0.2})  # fmt: skip
    s = summarize(tmp_path, [line], "json")
    assert (s.unparsed, dict(s.hours["2026-11-25 04"].codes)) == (0, {"404": 1})
