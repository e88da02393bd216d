"""The app log window of one request, read from real files rotated by real logrotate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from opscheck.probes import logwindow

LLM = "https://api.anthropic.com/v1/messages"
EMBEDDINGS = "https://api.openai.com/v1/embeddings"
AUTH = (
    "{'type': 'error', 'error': {'type': 'authentication_error', 'message': 'invalid x-api-key'}}"
)


def rec(name: str, level: str, message: str) -> str:
    return f"2026-12-01 06:42:06,102 - {name} - {level} - {message}"


def call(url: str, status: str) -> str:
    return rec("httpx", "INFO", f'HTTP Request: POST {url} "HTTP/1.1 {status}"')


REQUEST = rec("src.api.main", "INFO", "Request: POST /api/v1/templates/generate")
RESPONSE = rec("src.api.main", "INFO", "Response: 200 - 2.333s")
HEALTHY = [REQUEST, call(LLM, "200 OK"), call(EMBEDDINGS, "200 OK"), RESPONSE]
FAILING = [
    REQUEST,
    call(LLM, "500 Internal Server Error"),
    rec("anthropic._base_client", "INFO", "Retrying request to /v1/messages in 0.376926 seconds"),
    call(LLM, "529 <none>"),
    call(EMBEDDINGS, "401 Unauthorized"),
    rec("src.utils.llm_client", "ERROR", f"Error generating response: Error code: 401 - {AUTH}"),
    rec("src.utils.llm_client", "ERROR", "Error parsing request analysis: Expecting value: line 1"),
    call("https://us.i.posthog.com/batch/", "500 Internal Server Error"),  # not an LLM call
    RESPONSE,
]
EARLIER = call(LLM, "500 Internal Server Error") + "\n"


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_text(EARLIER * 50)  # before the mark: never counted
    return path


def test_only_the_lines_after_the_mark_are_read(log):
    m = logwindow.mark(str(log))
    append(log, HEALTHY)
    w = logwindow.since(m)
    assert (w.local, w.lines, w.generate_requests, w.unseen, w.notes) == (True, 4, 1, [], [])
    assert w.describe_calls() == "LLM 200: 1, embeddings 200: 1"
    assert w.describe_failures() == ""


def test_failed_calls_and_llm_client_errors_are_named(log):
    m = logwindow.mark(str(log))
    append(log, FAILING)
    w = logwindow.since(m)
    assert w.describe_failures() == (
        "1 LLM call answered 500, 1 LLM call answered 529, 1 embeddings call answered 401, "
        '2 src.utils.llm_client ERROR lines (first: "Error generating response: Error code: '
        "401 - {'type': 'error', 'error': {'type': 'authentication_error', 'message': "
        "'invalid x-api-key'}}\")"
    )
    assert w.describe_calls() == "LLM 500: 1, LLM 529: 1, embeddings 401: 1"


def test_a_key_in_an_error_line_is_scrubbed(log):
    m = logwindow.mark(str(log))
    key = "sk-ant-api03-" + "A" * 40
    append(log, [f"2026-12-01 06:42:08,020 - src.utils.llm_client - ERROR - bad key {key}"])
    w = logwindow.since(m)
    assert key not in w.describe_failures() and "sk-ant-…[redacted]" in w.describe_failures()


def test_no_app_log_on_this_machine(tmp_path):
    w = logwindow.since(logwindow.mark(str(tmp_path / "nope" / "app.log")))
    assert not w.local and w.unseen == []


def test_an_app_log_that_is_a_directory_is_said(tmp_path):
    (tmp_path / "app.log").mkdir()
    w = logwindow.since(logwindow.mark(str(tmp_path / "app.log")))
    assert w.unseen == [f"the app log {tmp_path}/app.log is not a regular file"]


def test_a_window_over_the_bound_reads_the_bound_and_says_so(log):
    m = logwindow.mark(str(log))
    append(log, HEALTHY * 100)
    w = logwindow.since(m, limit=1000)
    assert w.bytes_read == 1000
    assert len(w.unseen) == 1 and w.unseen[0].startswith(f"{log} grew by 0.0 MiB")
    assert "read only the first 0.0 MiB" in w.unseen[0]


def logrotate(tmp_path: Path, log: Path, options: str) -> None:
    conf = tmp_path / "rotate.conf"
    conf.write_text(f"{log} {{\n    rotate 3\n    {options}\n}}\n")
    proc = subprocess.run(
        ["logrotate", "-f", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


needs_logrotate = pytest.mark.skipif(not shutil.which("logrotate"), reason="needs logrotate")


@needs_logrotate
def test_a_rotation_in_the_window_reads_the_old_file_rest_and_the_new_file(tmp_path, log):
    """logrotate (create, delaycompress) renames app.log to app.log.1 mid-request."""
    m = logwindow.mark(str(log))
    append(log, FAILING[:3])
    logrotate(tmp_path, log, "create\n    compress\n    delaycompress")
    append(log, FAILING[3:])
    w = logwindow.since(m)
    assert w.unseen == []
    assert w.notes == [
        "rotated during the request: read the rest of app.log.1",
        "read the new app.log from its start",
    ]
    assert w.lines == len(FAILING)
    assert w.describe_calls() == "LLM 500: 1, LLM 529: 1, embeddings 401: 1"


@needs_logrotate
def test_a_rotation_that_compressed_the_old_file_says_what_is_not_seen(tmp_path, log):
    m = logwindow.mark(str(log))
    append(log, FAILING[:3])
    logrotate(tmp_path, log, "create\n    compress")
    append(log, FAILING[3:])
    w = logwindow.since(m)
    assert w.unseen == [
        f"{log} was rotated during the request and the old file was not found beside it: "
        "the lines written before the rotation are not seen"
    ]
    assert w.notes == ["read the new app.log from its start"]
    assert w.lines == len(FAILING) - 3


@needs_logrotate
def test_copytruncate_in_the_window_says_what_is_not_seen(tmp_path, log):
    m = logwindow.mark(str(log))
    append(log, FAILING[:3])
    logrotate(tmp_path, log, "copytruncate")
    append(log, FAILING[3:])
    w = logwindow.since(m)
    assert w.unseen == [
        f"{log} was truncated during the request (copytruncate?): the lines written "
        "before that are not seen"
    ]
    assert w.lines == len(FAILING) - 3


def test_a_log_deleted_in_the_window_is_said(log):
    m = logwindow.mark(str(log))
    log.unlink()
    w = logwindow.since(m)
    assert w.unseen == [
        f"{log} was rotated during the request and the old file was not found beside it: "
        "the lines written before the rotation are not seen",
        f"{log} is gone (deleted or rotated without a new file)",
    ]
