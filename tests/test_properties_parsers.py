"""No crash: every parser of the suite survives arbitrary input (hypothesis).

App logs, nginx access logs (the log_format compiler and the line scanner), the
logrotate file, backup names, health and generation bodies and the config: whatever
the bytes, each returns a value (a summary, a failure, a list of problems) or raises
only its module's own error (`ProbeError`, `FormatError`, `ConfigError`), never another
exception. Examples are bounded so each test takes a few seconds.
"""

from __future__ import annotations

import io
import json
import math
import os
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscheck import alimtalk, config
from opscheck.probes import ProbeError, backups, http
from opscheck.probes.logs import files
from opscheck.probes.logs.access import PRESETS, FormatError, compile_format, scan_access
from opscheck.probes.logs.scan import scan_app

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
STAMP = "2026-11-30 10:00:00,123"
CLIENT = "203.0.113.9 - - [30/Nov/2026:10:00:00 +0000]"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
PIECES = [  # fragments of real lines, so examples reach past the first field
    f"{STAMP} - src.api.main - INFO - Request: POST /api/v1/templates/generate\n",
    f"{STAMP} - src.api.main - INFO - Response: 200 - 2.345s\n",
    f"{STAMP} - src.api.main - ERROR - Request failed: boom - 0.100s\n",
    f'{STAMP} - httpx - INFO - HTTP Request: POST {ANTHROPIC} "HTTP/1.1 529 "\n',
    'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n',
    f'{CLIENT} "GET /health HTTP/1.1" 200 12 "-" "curl/8" 0.010\n',
    f'{CLIENT} "POST /api/v1/templates/generate?x=1 HTTP/1.1" 500 -\n',
    '{"time": "2026-11-30T10:00:00+00:00", "status": 200, "request_time": "0.1"}\n',
    "\x00\xff",
    "\n",
    " - ",
    '"',
    "[",
    "]",
    "\\x22",
    "2026-13-45 25:61:61,999 - ",
]
log_bytes = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=40)), max_size=40).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
)
zones = st.sampled_from(["", "UTC", "Asia/Seoul", "America/New_York"])


@FAST
@given(data=log_bytes, tz=zones)
def test_app_log_scan_survives_anything(data, tz):
    summary = scan_app(io.BytesIO(data), "app.log", tz=tz)
    summary.to_json()


@FAST
@given(data=log_bytes, fmt=st.sampled_from(sorted(PRESETS)), vector=st.booleans())
def test_access_log_scan_survives_anything(data, fmt, vector):
    scan_access(io.BytesIO(data), "access.log", log_format=fmt, vector=vector).to_json()


VARIABLES = [
    "$remote_addr",
    "$time_local",
    "$time_iso8601",
    "$request",
    "$status",
    "$request_time",
    "$upstream_response_time",
    "$body_bytes_sent",
    "$msec",
    "$http_user_agent",
    "${request_time}",
    "escape=json",
    "escape=none",
    "'",
    "$",
]
format_text = st.lists(
    st.one_of(st.sampled_from(VARIABLES), st.text(string.printable, max_size=6)), max_size=12
).map(" ".join)


@FAST
@given(spec=st.one_of(format_text, st.text(max_size=80)), data=log_bytes)
def test_log_format_compiles_or_says_why_and_scans(spec, data):
    try:
        compile_format(spec)
    except FormatError as exc:
        assert str(exc).strip()
        return
    scan_access(io.BytesIO(data), "access.log", log_format=spec).to_json()


@FAST
@given(text=st.text(max_size=400))
def test_logrotate_olddirs_survive_anything(text):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
    try:
        assert isinstance(files.olddirs(f.name), tuple)
    finally:
        os.unlink(f.name)


name_chars = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
backup_name = st.one_of(
    st.text(name_chars, min_size=1, max_size=60),
    st.builds(
        lambda kind, stamp, ext: f"{kind}_{stamp}{ext}",
        st.sampled_from(["chroma_db", "config", "template_data", "logs", "x"]),
        st.text("0123456789_", max_size=17),
        st.sampled_from([".tar.gz", ".json", ".tgz", "", ".tar.gz.1"]),
    ),
)


@FAST
@given(names=st.lists(backup_name, max_size=8, unique=True), tz=zones)
def test_backup_names_survive_anything(names, tz):
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if name in (".", "..") or len(name.encode()) > 200:
                continue
            (Path(tmp) / name).write_bytes(b"x")
        try:
            inv = backups.scan(tmp, backups.zone(tz))
        except ProbeError:
            return
        inv.sets()
        for f in inv.files:
            backups.anomalies(f, backups.now())
        for name in names:
            backups.kind_of(name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
health_like = st.fixed_dictionaries(
    {},
    optional={
        "status": json_values,
        "components": json_values,
        "error": json_values,
        "template": json_values,
        "compliance": json_values,
        "workflow_info": json_values,
        "success": json_values,
    },
)


@FAST
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        health_like.map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.one_of(st.none(), st.text(max_size=40)),
    status=st.integers(100, 599),
    location=st.one_of(st.none(), st.text(max_size=60)),
)
def test_health_and_generation_bodies_survive_anything(body, content_type, status, location):
    value, problem = http._parse_json(body, content_type)
    headers = {"Location": location} if location is not None else {}
    res = http.HttpResult("http://127.0.0.1:8000/health", status, 1.0, value, headers)
    res.json_error = problem
    res.status_text, res.object_problem(), res.location, res.object_body
    alimtalk.compliance_score(value)
    alimtalk.generation_problems(value, [], 80)


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=20),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))
SECTIONS = [
    "service",
    "paths",
    "thresholds",
    "redis",
    "load",
    "logs",
    "hosts",
    "reports",
    "history",
    "alerts",
    "x",
]
KEYS = [
    "base_url",
    "timeout_s",
    "timezone",
    "disk_mounts",
    "cpu_percent",
    "ttl_policy",
    "users",
    "ignore_errors",
    "targets",
    "dir",
    "url",
    "urls",
    "access_log_format",
    "smoke_requests",
    "zz",
]


def _toml(doc: dict) -> str:
    lines = []
    for section, values in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return repr(v) if abs(v) != float("inf") else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


configs = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(str.encode),
    st.dictionaries(
        st.sampled_from(SECTIONS),
        st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=4),
        max_size=4,
    ).map(lambda d: _toml(d).encode()),
)


@FAST
@given(data=configs)
def test_config_loads_or_says_why(data):
    with tempfile.NamedTemporaryFile("wb", suffix=".toml", delete=False) as f:
        f.write(data)
    try:
        loaded = config.load(Path(f.name))
    except config.ConfigError as exc:
        assert "\n" not in str(exc).strip(), str(exc)
    else:
        assert not list(_unbounded(loaded.config)), "an inf or nan was accepted"
    finally:
        os.unlink(f.name)


def _unbounded(value):
    """Every float in a config that is inf or nan (a timeout of inf is a hang; a limit
    of inf or nan never fails its check)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield value
    elif isinstance(value, config.BaseModel):
        for name in type(value).model_fields:
            yield from _unbounded(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _unbounded(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _unbounded(item)


@pytest.mark.parametrize("text", ["timeout_s = inf", "timeout_s = nan", "cpu_sample_s = inf"])
def test_no_infinite_timeouts(tmp_path, text):
    """Found by the property above: `timeout_s = inf` was accepted (a run that never
    ends), and a threshold of inf never fails its check."""
    section = "hosts" if text.startswith("cpu") else "service"
    path = tmp_path / "opscheck.toml"
    path.write_text(f"[{section}]\n{text}\n[thresholds]\ncpu_percent = 80\n")
    with pytest.raises(config.ConfigError, match="finite number"):
        config.load(path)


@pytest.mark.parametrize("spec", sorted(PRESETS))
def test_presets_compile(spec):
    compile_format(spec)
