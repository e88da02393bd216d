"""The one HTTP client of every check, against a misbehaving server on a real loopback
socket: each broken answer is a one-line reason within the deadline, never a hang, a
traceback or a status it did not finish reading."""

from __future__ import annotations

import gc
import re
import socket
import threading
import time
import warnings

import psutil
import pytest

from opscheck.probes.http import get_json, post_json
from opscheck.probes.load import HealthSamples, _sample_health
from tests.badserver import HEALTHY, BadServer

TIMEOUT = 1.0
MARGIN = 3.0  # generous: the deadline itself is asserted by the phase in the message


@pytest.fixture
def bad():
    """`bad("behaviour")` starts a BadServer, stopped after the test."""
    started: list[BadServer] = []

    def start(behaviour: str, **kw: str) -> BadServer:
        started.append(BadServer(behaviour, **kw))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


def timed_get(url: str, path: str = "/health", timeout: float = TIMEOUT, **kw):
    start = time.perf_counter()
    res = get_json(url, path, timeout, **kw)
    took = time.perf_counter() - start
    assert took < timeout + MARGIN, f"{took:.1f} s for a {timeout} s deadline: {res}"
    return res


def test_healthy_answer_is_read_whole(bad):
    res = timed_get(bad("healthy").url)
    assert res.answered and res.status == 200 and not res.error
    assert res.body == HEALTHY and res.object_body == HEALTHY and res.object_problem() == ""
    assert res.header("content-type") == "application/json"


def test_redirect_to_a_login_page_is_an_answer_not_followed(bad):
    srv = bad("redirect-login")
    res = timed_get(srv.url)
    assert res.status == 301 and not res.error
    assert res.location == f"http://127.0.0.1:{srv.port}/login?next=/health"
    assert "hunter2" not in res.status_text and "admin" not in res.status_text
    assert res.status_text == f"301 redirect to http://127.0.0.1:{srv.port}/login?next=/health"
    assert srv.requests == ["GET /health HTTP/1.1"], "the login page was not requested"


def test_redirect_to_a_healthy_port_is_not_followed(bad):
    healthy = bad("healthy")
    srv = bad("redirect", redirect_to=f"{healthy.url}/health")
    res = timed_get(srv.url)
    assert res.status == 302 and res.location == f"{healthy.url}/health"
    assert healthy.requests == [], "the redirect was followed"


def test_headers_trickled_at_one_byte_a_second_end_at_the_deadline(bad):
    """Each byte comes well within the timeout: only a total deadline ends it."""
    res = timed_get(bad("trickle-headers").url, timeout=2)
    assert not res.answered
    assert res.error == "no answer within 2 s (status line and headers not complete)"
    assert 1900 < res.elapsed_ms < 1000 * (2 + MARGIN)


def test_a_silent_server_has_no_status_line(bad):
    res = timed_get(bad("silent").url, timeout=0.5)
    assert not res.answered
    assert res.error == "no answer within 0.5 s (status line and headers not complete)"


def test_answer_cut_mid_headers_has_no_status(bad):
    res = timed_get(bad("cut-headers").url)
    assert res.status is None and not res.answered
    assert res.error == (
        "connection closed mid-headers (after the status '200 OK'): no complete answer"
    )


def test_broken_chunking_is_a_reason(bad):
    res = timed_get(bad("broken-chunked").url)
    assert not res.answered
    assert res.error == "broken chunked encoding: Invalid character in chunk size: b'zz'"


def test_a_broken_chunk_after_the_head_is_a_reason_within_the_deadline(bad):
    """aiohttp 3.14's C parser does not hand a chunk error that comes after the head to the
    body's reader (the Python parser does): the request then ends at the deadline. Either
    way it is a one-line reason in time, never a hang or an answer."""
    res = timed_get(bad("broken-chunked-late").url)
    assert not res.answered
    assert re.fullmatch(
        r"body not complete within 1 s \(5 bytes read\)|broken chunked encoding: .+", res.error
    ), res.error


def test_connection_cut_inside_a_chunk(bad):
    res = timed_get(bad("chunk-cut").url)
    assert not res.answered
    assert res.error == "body cut: connection closed after 10 bytes (chunked)"


def test_content_length_larger_than_the_body(bad):
    res = timed_get(bad("short-body").url)
    assert not res.answered
    assert res.error == "body cut: connection closed after 14 of 1000 bytes"


@pytest.mark.parametrize("behaviour", ["endless", "endless-chunked"])
def test_an_endless_body_stops_at_the_cap_with_memory_bounded(bad, behaviour):
    rss_before = psutil.Process().memory_info().rss
    res = timed_get(bad(behaviour).url, timeout=10, max_body_bytes=4 * 1024 * 1024)
    assert not res.answered
    assert res.error == "over the cap of 4 MiB ([service] max_body_bytes)"
    assert psutil.Process().memory_info().rss - rss_before < 64 * 1024 * 1024


def test_a_huge_content_length_fails_before_reading(bad):
    res = timed_get(bad("huge-length").url)
    assert res.error == (
        "a body of 10000000000 bytes (Content-Length), "
        "over the cap of 8 MiB ([service] max_body_bytes)"
    )


def test_a_gzip_body_is_decoded_within_the_cap(bad):
    assert timed_get(bad("gzip-anyway").url).body == HEALTHY
    res = timed_get(bad("gzip-bomb").url, timeout=5)
    assert res.error == "the decompressed body is over the cap of 8 MiB ([service] max_body_bytes)"


def test_a_json_list_is_answered_but_not_an_object(bad):
    res = timed_get(bad("json-list").url)
    assert res.answered and res.status == 200
    assert res.body == ["healthy", "healthy"] and res.object_body is None
    assert res.object_problem() == (
        'the answer is a JSON list, not an object: ["healthy", "healthy"]'
    )


def test_a_json_string_and_a_non_json_body(bad):
    res = timed_get(bad("json-string").url)
    assert res.object_problem() == 'the answer is a JSON string, not an object: "healthy"'
    res = timed_get(bad("redirect-login").url)
    assert res.body is None
    assert res.object_problem() == "the answer is not JSON (text/html, 47 bytes)"


def test_post_sends_the_json_body(bad):
    srv = bad("healthy")
    res = post_json(srv.url, "/api/v1/templates/generate", {"user_request": "안녕"}, TIMEOUT)
    assert res.status == 200
    assert srv.requests == ["POST /api/v1/templates/generate HTTP/1.1"]


def test_credentials_in_the_base_url_never_reach_a_message(bad):
    res = timed_get(f"http://ops:s3cret@127.0.0.1:{bad('silent').port}", timeout=0.3)
    assert "s3cret" not in res.url + res.error
    assert res.object_problem() == "no answer within 0.3 s (status line and headers not complete)"


@pytest.mark.parametrize("behaviour", ["broken-chunked", "short-body", "cut-headers"])
def test_the_load_tests_health_sampler_records_a_reason(bad, behaviour):
    """The sampler thread of the load test sees the same breakage as a failure string."""
    out, stop = HealthSamples(), threading.Event()
    thread = threading.Thread(
        target=_sample_health, args=(bad(behaviour).url, TIMEOUT, "", stop, out), daemon=True
    )
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(timeout=TIMEOUT + MARGIN)
    assert not thread.is_alive()
    assert out.count >= 1 and len(out.failures) == out.count
    assert all(isinstance(f, str) and f and "\n" not in f for f in out.failures)


def test_a_name_lookup_that_hangs_ends_at_the_deadline(monkeypatch):
    """A dead DNS server cannot run here: getaddrinfo is replaced by one that hangs. The
    request still ends at its deadline (asyncio.run would wait for the lookup's thread)."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(*args, **kw):
        release.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        res = timed_get("http://opscheck.invalid:9", timeout=0.5)
    finally:
        release.set()
    assert res.error == "cannot connect: opscheck.invalid not resolved within 0.5 s"


def test_no_socket_thread_or_warning_is_left_behind(bad):
    """Answered, cut, over the cap, timed out: from two threads at once, every path closes
    its session and connection."""
    threads_before = threading.active_count()
    servers = [bad(b) for b in ("healthy", "short-body", "endless", "silent", "cut-headers")]
    ports = {srv.port for srv in servers}

    def client_sockets() -> list:
        conns = getattr(psutil.Process(), "net_connections", psutil.Process().connections)
        return [c for c in conns(kind="tcp") if c.raddr and c.raddr.port in ports]

    def run() -> None:
        for _ in range(3):
            for srv in servers:
                get_json(srv.url, "/health", 0.3, max_body_bytes=1024 * 1024)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workers = [threading.Thread(target=run) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        gc.collect()
    assert client_sockets() == []
    for srv in servers:
        srv.stop()
    assert threading.active_count() <= threads_before, threading.enumerate()
    assert [str(w.message) for w in caught] == []


def test_a_silent_https_server_ends_in_the_handshake(bad):
    srv = bad("silent")
    res = timed_get(f"https://127.0.0.1:{srv.port}", timeout=0.5)
    assert not res.answered
    assert res.error == "cannot connect within 0.5 s (TCP connect and TLS handshake)"


def test_https_to_the_sandbox_with_its_ca(sandbox_factory):
    import tomllib

    sb = sandbox_factory(https=True)
    service = tomllib.loads(sb.config.read_text())["service"]
    res = timed_get(service["base_url"], timeout=5, ca_bundle=service["ca_bundle"])
    assert res.status == 200 and res.object_body["status"] == "healthy"
    refused = timed_get(service["base_url"], timeout=5)  # the system's CAs do not know it
    assert not refused.answered
    assert refused.error.startswith("cannot connect: TLS certificate refused: "), refused.error
