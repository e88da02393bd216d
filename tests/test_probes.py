"""Probes on real sockets and files: they measure or say why not, never raise or hang."""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from opscheck.probes.host import LocalHost, host_for, host_label
from opscheck.probes.http import get_json


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        if self.path == "/text":
            body = b"<html>not json</html>"
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                time.sleep(0.1)
            return
        else:
            body = b'{"success": false, "error": {"code": "HEALTH_CHECK_FAILED"}}'
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def silent_port():
    """A socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_connection_refused_is_a_reason():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = get_json(f"http://127.0.0.1:{port}", "/health", 2)
    assert not res.answered and res.error == "cannot connect: Connection refused"


def test_silent_server_times_out_within_the_limit(silent_port):
    start = time.perf_counter()
    res = get_json(f"http://127.0.0.1:{silent_port}", "/health", 0.5)
    assert time.perf_counter() - start < 2
    assert not res.answered
    assert res.error == "no answer within 0.5 s (status line and headers not complete)"


def test_trickling_body_cannot_stretch_the_deadline(server):
    start = time.perf_counter()
    res = get_json(server, "/trickle", 0.5)
    assert time.perf_counter() - start < 1.5
    assert re.fullmatch(r"body not complete within 0\.5 s \(\d+ bytes read\)", res.error)


def test_non_json_body_and_error_envelope(server):
    assert get_json(server, "/text", 2).body is None
    fail = get_json(server, "/fail", 2)
    assert fail.status == 500 and fail.status_text == "500 (HEALTH_CHECK_FAILED)"


def test_unresolvable_host_is_a_reason():
    res = get_json("http://no-such-host.invalid", "/health", 2)
    assert not res.answered and res.error.startswith("cannot connect")


def test_file_states(tmp_path):
    host = LocalHost()
    f = tmp_path / "secret"
    f.write_text("x")
    f.chmod(0o640)
    state = host.file(str(f))
    assert state.exists and not state.is_dir and state.mode_text == "640" and state.owner
    assert host.file(str(tmp_path)).is_dir
    missing = host.file(str(tmp_path / "nope"))
    assert not missing.exists and missing.error == "does not exist"
    blocked = host.file(str(f / "below-a-file"))
    assert not blocked.exists and blocked.error == "Not a directory"


def test_disk_usage_and_mounts(tmp_path):
    host = LocalHost()
    assert host.mount_of(str(tmp_path / "does" / "not" / "exist")) == host.mount_of(str(tmp_path))
    usage = host.disk_usage(str(tmp_path))
    assert 0 <= usage.space_percent <= 100 and usage.free_bytes > 0
    assert usage.inodes_percent is None or 0 <= usage.inodes_percent <= 100


def test_cpu_and_memory_are_percentages():
    host = LocalHost()
    assert 0 <= host.cpu_percent(0.2) <= 100
    assert 0 < host.memory_percent() < 100


def test_host_specs():
    assert isinstance(host_for("local://"), LocalHost)
    assert host_label("ssh://app@10.0.0.5") == "app@10.0.0.5"
    remote = host_for("ssh://app@10.0.0.5")
    assert remote.name == "app@10.0.0.5" and not isinstance(remote, LocalHost)
