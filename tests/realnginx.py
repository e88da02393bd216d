"""A real nginx (Debian's /usr/sbin/nginx) in front of a sandbox replica.

nginx runs in the foreground (`-g 'daemon off;'`) with its prefix, pid file, error
log, temp paths and access logs in a temp directory, listens on 127.0.0.1 on a free
port, proxies to the replica, and writes one request to several access logs at once,
one per `log_format` in `FORMATS`. `/.env` answers 200 (a static root that serves
the app's directory), `/admin` 403, and `/t/` proxies with a 1 s read timeout (504
when the replica is slow). It is stopped by its PID.
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from opscheck.probes.logs.access import PRESETS

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FORMATS = {  # access log name -> [paths] access_log_format that reads it
    "combined": "combined",  # nginx's own, built in
    "timed": "timed",
    "main": "main",
    "json": "json",
    "upstream": '$remote_addr - [$time_local] "$request" $status $upstream_response_time',
}
CONF = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    log_format timed '{timed}';
    log_format main '{main}';
    log_format json escape=json '{json}';
    log_format upstream '{upstream}';
    upstream replica {{ server {upstream_addr}; }}
    server {{
        listen 127.0.0.1:{port};
        access_log {root}/logs/combined.log combined;
        access_log {root}/logs/timed.log timed;
        access_log {root}/logs/main.log main;
        access_log {root}/logs/json.log json;
        access_log {root}/logs/upstream.log upstream;
        location = /.env {{ default_type text/plain; return 200 "APP_ENV=production\\n"; }}
        location = /admin {{ return 403; }}
        location /t/ {{ proxy_pass http://replica/; proxy_read_timeout 1s; }}
        location / {{ proxy_pass http://replica; }}
    }}
}}
"""


@dataclass
class Nginx:
    root: Path
    port: int
    pid: int
    sandbox_root: Path | None = None

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        headers: dict[str, str | bytes] | None = None,
        timeout: float = 10.0,
    ) -> int | None:
        """Send one request with the path exactly as given; its status, or None when
        the client gave up (timeout) before the answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
            response = conn.getresponse()
            response.read()
            return response.status
        except TimeoutError:
            return None
        finally:
            conn.close()

    def slow_replica(self, delay_ms: float) -> None:
        """Make every answer of the replica take `delay_ms` (0: back to normal)."""
        settings = self.sandbox_root / "run" / "sandbox.json"
        doc = json.loads(settings.read_text())
        doc["fixed_delay_ms"] = delay_ms
        settings.write_text(json.dumps(doc))

    def stop(self) -> None:
        """Stop nginx by its PID (graceful, then killed)."""
        try:
            os.kill(self.pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quoted(fmt: str) -> str:
    """A format text inside nginx.conf single quotes."""
    return fmt.replace("\\", "\\\\").replace("'", "\\'")


def start(root: Path, upstream: str, tz: str = "UTC", sandbox_root: Path | None = None) -> Nginx:
    """nginx in the foreground under `root`, proxying to `upstream` (host:port), with
    `TZ` set (nginx's $time_local is in its zone)."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    for sub in ("logs", "temp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port = _free_port()
        conf = root / "nginx.conf"
        conf.write_text(
            CONF.format(
                root=root,
                port=port,
                upstream_addr=upstream,
                user=f"user {getpass.getuser()};" if os.geteuid() == 0 else "",
                **{k: _quoted(PRESETS.get(k, FORMATS[k])) for k in ("timed", "main", "json")},
                upstream=_quoted(FORMATS["upstream"]),
            )
        )
        proc = subprocess.Popen(
            [NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
            env={**os.environ, "TZ": tz},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "stderr.log", "ab"),  # noqa: SIM115 - handed to the child
        )
        ngx = Nginx(root, port, proc.pid, sandbox_root)
        if _wait_ready(proc, port):
            return ngx
        ngx.stop()
        if attempt == 2:
            tail = (root / "error.log").read_text(errors="replace")[-600:]
            raise RuntimeError(f"nginx did not start: {tail}")
    raise AssertionError("unreachable")


def _wait_ready(proc: subprocess.Popen, port: int, wait_s: float = 10.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def replica_address(config: Path) -> str:
    """host:port of the replica a sandbox's opscheck.toml points at."""
    url = tomllib.loads(config.read_text())["service"]["base_url"]
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture
def real_nginx(sandbox_factory, tmp_path: Path) -> Iterator:
    """`make(tz="Asia/Seoul")`: a healthy sandbox replica behind a real nginx."""
    started: list[Nginx] = []

    def make(tz: str = "Asia/Seoul", *faults: str) -> Nginx:
        sb = sandbox_factory(*faults)
        root = tmp_path / f"nginx-{len(started)}"
        ngx = start(root, replica_address(sb.config), tz, sb.root)
        started.append(ngx)
        return ngx

    yield make
    for ngx in started:
        ngx.stop()
