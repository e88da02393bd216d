"""The logrotate parser reads what real logrotate reads: each config is also given to
`logrotate -d` (debug: it changes nothing; a private state file) and the log patterns,
rotate count, frequency or size, compression and create mode are compared."""

from __future__ import annotations

import getpass
import grp
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscheck.probes import logrotate
from opscheck.sandbox.layout import LOGROTATE

pytestmark = pytest.mark.skipif(shutil.which("logrotate") is None, reason="needs logrotate")

USER = getpass.getuser()
GROUP = grp.getgrgid(os.getgid()).gr_name


def real(conf: Path, tmp: Path, force: bool) -> dict[tuple[str, ...], dict[str, str]]:
    """logrotate -d's reading: patterns -> {"frequency", "rotate", "compress", "create"}."""
    args = ["logrotate", "-d", "-s", str(tmp / "state"), *(["-f"] if force else []), str(conf)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert "error:" not in text.replace("error: stat of", ""), text
    found: dict[tuple[str, ...], dict[str, str]] = {}
    parts = re.split(r"^rotating pattern: ", text, flags=re.M)[1:]
    for part in parts:
        m = re.match(
            r"(.*?)\s+(after 1 days|weekly|monthly|yearly|hourly|forced from command "
            r"line|\d+ bytes) \((\d+) rotations\)",
            part,
            re.S,
        )
        assert m, part
        patterns = tuple(shlex.split(m.group(1)))
        info = {"frequency": m.group(2), "rotate": m.group(3)}
        info["compress"] = str("compressing log with" in part)
        create = re.search(r"creating new \S+ mode = 0?(\d+)", part)
        info["create"] = create.group(1) if create else ""
        found[patterns] = info
    return found


def ours(conf: Path) -> dict[tuple[str, ...], dict[str, str]]:
    out = {}
    for b in logrotate.parse(conf).blocks:
        freq = b.get("frequency") or ""
        shown = {"daily": "after 1 days"}.get(freq, freq)
        if freq.startswith("size "):
            shown = f"{logrotate.size_bytes(freq.split()[1])} bytes"
        create = b.get("create")
        out[b.patterns] = {
            "frequency": shown,
            "rotate": b.get("rotate") or "0",
            "compress": str(b.get("compress") is not None),
            "create": logrotate.normal("create", create).split()[0] if create else "",
        }
    return out


def compare(conf: Path, tmp: Path) -> dict:
    """Both readings agree; returns ours."""
    mine, timed, forced = ours(conf), real(conf, tmp, False), real(conf, tmp, True)
    assert set(mine) == set(timed), (mine, timed)
    for patterns, info in mine.items():
        assert info["frequency"] == timed[patterns]["frequency"], patterns
        assert info["rotate"] == timed[patterns]["rotate"], patterns
        assert info["compress"] == forced[patterns]["compress"], patterns
        assert info["create"] == forced[patterns]["create"], patterns
    return mine


def logs(folder: Path, *names: str) -> None:
    """Non-empty logs (notifempty skips empty ones), with an old .1 to compress."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("2026-12-01 00:00:00,000 - x - INFO - a line\n")


def test_the_guides_file_as_the_sandbox_writes_it(tmp_path):
    logs(tmp_path / "logs", "app.log", "app.log.1")
    conf = tmp_path / "kakao-template"
    conf.write_text(LOGROTATE.format(logs=tmp_path / "logs").replace("app app", f"{USER} {GROUP}"))
    mine = compare(conf, tmp_path)
    assert mine == {
        (f"{tmp_path}/logs/*.log",): {
            "frequency": "after 1 days",
            "rotate": "30",
            "compress": "True",
            "create": "644",
        }
    }


def test_include_dir_globals_quotes_size_and_negations(tmp_path):
    """Global compress reaches included blocks; nocompress undoes it; a later size overrides
    weekly; a dpkg leftover in the include dir is not read, a hidden file is (logrotate
    reads it: this test first assumed otherwise)."""
    logs(tmp_path / "logs", "app.log", "app.log.1", "worker.log", "worker.log.1")
    logs(tmp_path / "logs", "hidden.log", "hidden.log.1")
    logs(tmp_path / "other dir", "a.log", "a.log.1")
    inc = tmp_path / "logrotate.d"
    inc.mkdir()
    main = tmp_path / "logrotate.conf"
    main.write_text(
        f"# global defaults\ncompress\nweekly\nrotate 4\ncreate 0600 {USER} {GROUP}\n"
        f"include {inc}\n"
    )
    (inc / "kakao-template").write_text(
        f'{tmp_path}/logs/app.log "{tmp_path}/other dir/a.log"\n{{\n    daily # every day\n'
        "    rotate 30\n    delaycompress\n    notifempty\n    postrotate\n"
        "        echo '}' >/dev/null\n    endscript\n}\n"
    )
    (inc / "worker").write_text(
        f"{tmp_path}/logs/worker*.log {{\n  nocompress\n  size 10M\n  dateext\n  maxage 40\n}}\n"
    )
    (inc / "worker.dpkg-old").write_text(f"{tmp_path}/logs/never.log {{\n  rotate 1\n}}\n")
    (inc / ".hidden").write_text(f"{tmp_path}/logs/hidden.log {{\n  rotate 1\n}}\n")  # read
    mine = compare(main, tmp_path)
    assert mine[(f"{tmp_path}/logs/worker*.log",)] == {
        "frequency": "10485760 bytes",
        "rotate": "4",
        "compress": "False",
        "create": "600",
    }
    app = mine[(f"{tmp_path}/logs/app.log", f"{tmp_path}/other dir/a.log")]
    assert app["rotate"] == "30" and app["compress"] == "True"


def test_weak_policy_reads_weak(tmp_path):
    logs(tmp_path / "logs", "app.log", "app.log.1")
    conf = tmp_path / "weak"
    text = LOGROTATE.format(logs=tmp_path / "logs").replace("app app", f"{USER} {GROUP}")
    conf.write_text(text.replace("rotate 30", "rotate 7").replace("    compress\n", ""))
    mine = compare(conf, tmp_path)
    assert list(mine.values()) == [
        {"frequency": "after 1 days", "rotate": "7", "compress": "False", "create": "644"}
    ]


def test_blocks_for_the_app_log_and_the_expected_policy(tmp_path):
    conf = logrotate.parse_text(f"{tmp_path}/logs/*.log {{\n  rotate 30\n  daily\n}}\n")
    assert logrotate.blocks_for(conf, f"{tmp_path}/logs/app.log")
    assert not logrotate.blocks_for(conf, f"{tmp_path}/logs/sub/app.log")  # * stops at /
    assert logrotate.retention_days(["daily", "rotate 30"]) == 30
    assert logrotate.retention_days(["weekly", "rotate 4"]) == 28
    assert logrotate.retention_days(["daily", "rotate 30", "maxage 10"]) == 10


@pytest.mark.parametrize(
    "text, reason",
    [
        ("/x/app.log {\n rotate 3\n", "is not closed"),
        ("}\n", "without a block"),
        ("/x/app.log {\n postrotate\n  echo\n}\n", "without endscript"),
        ("/x/app.log {\n rotate many\n}\n", "rotate needs a number"),
        ("/x/app.log {\n size huge\n}\n", "size needs a size"),
        ("/x/app.log\n rotate 3\n", "without a '{' block"),
        ("include /nonexistent/logrotate.d\n", "no such file"),
        ('/x/"app.log {\n}\n', "No closing quotation"),
    ],
)
def test_bad_files_raise_our_error_naming_the_line(text, reason):
    with pytest.raises(logrotate.LogrotateParseError, match=reason):
        logrotate.parse_text(text, "conf")


def test_an_include_loop_stops(tmp_path):
    (tmp_path / "a").write_text(f"include {tmp_path / 'a'}\n")
    with pytest.raises(logrotate.LogrotateParseError, match="nested deeper"):
        logrotate.parse(tmp_path / "a")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "{",
                    "}",
                    "/var/log/*.log {",
                    "postrotate",
                    "endscript",
                    "rotate 3",
                    "size 1k",
                    '"/a b" {',
                    "include",
                    "# c",
                    "nocompress",
                    "'",
                    "create 644 a b",
                ]
            ),
        ),
        max_size=20,
    )
)
def test_any_input_parses_or_raises_only_our_error(lines):
    try:
        conf = logrotate.parse_text("\n".join(lines), "fuzz")
    except logrotate.LogrotateParseError:
        return
    for block in conf.blocks:
        assert isinstance(block.patterns, tuple)
        logrotate.blocks_for(conf, "/var/log/app.log")


def test_a_directory_as_the_conf_reads_every_file_in_it(tmp_path):
    (tmp_path / "a").write_text("/x/a.log {\n  rotate 2\n}\n")
    (tmp_path / "b.rpmsave").write_text("/x/b.log {\n  rotate 2\n}\n")
    assert [b.patterns for b in logrotate.parse(tmp_path).blocks] == [("/x/a.log",)]
