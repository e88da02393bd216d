"""A private PostgreSQL 15 cluster for the tests: initdb into a temp dir, started with
`pg_ctl` on 127.0.0.1 and a free port, stopped by its postmaster's PID.

As root, initdb and postgres run as the `postgres` user (they refuse root), in a dir
it owns. The cluster's superuser `opscheck` has a password (host connections use
scram-sha-256), so tests can prove the password never reaches any output.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

BIN = Path(os.environ.get("OPSCHECK_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER, PASSWORD = "opscheck", "pg-Secret-4u!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    port: int
    pid: int
    _n = count()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL (with the password)."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._n)}"
        dsn = f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def start() -> Cluster:
    if not (BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {BIN} (apt install postgresql)")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="opscheck-pg-"))
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if owner:
        ent = pwd.getpwnam(owner)
        os.chown(root, ent.pw_uid, ent.pw_gid)
        os.chown(pwfile, ent.pw_uid, ent.pw_gid)
    data, port = root / "data", free_port()
    init = [str(BIN / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}"]
    init += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]
    _run(_as_owner(init, owner), root)
    opts = f"-k {root} -h 127.0.0.1 -p {port} -c fsync=off"
    ctl = [str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60"]
    _run(_as_owner([*ctl, "-o", opts, "start"], owner), root)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    return Cluster(root, port, pid)


def _run(cmd: list[str], root: Path) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=root)
    if proc.returncode:
        log = root / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        pytest.fail(f"{cmd[-1]} failed ({proc.returncode}): {proc.stderr[-2000:]}{tail}")


def stop(cluster: Cluster) -> None:
    """Fast shutdown (SIGINT) of the postmaster, by PID; then its files go."""
    try:
        os.kill(cluster.pid, signal.SIGINT)
        for _ in range(300):
            os.kill(cluster.pid, 0)
            time.sleep(0.1)
        os.kill(cluster.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start()
    try:
        yield cluster
    finally:
        stop(cluster)
