"""A fleet of real sshd (Debian's openssh-server) on 127.0.0.1, for the fleet tests.

One host key and one authorized client key, made with ssh-keygen in a temp dir; each
sshd has its own port and `sshd_config` (run with `-D -e -f`), and is stopped by PID.
An `ssh_config` beside them pins the host key (a known_hosts of every started port),
turns off the agent and prompts, and names no identity: the run passes
`ssh_identity_file` (the good key, or a wrong one for the red case).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opscheck-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@dataclass
class Sshd:
    port: int
    proc: subprocess.Popen
    log: Path

    def spec(self, scheme: str = "ssh", user: str = "root") -> str:
        return f"{scheme}://{user}@127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return f"root@127.0.0.1:{self.port}"


@dataclass
class SshFleet:
    root: Path
    host_key: Path
    client_key: Path
    wrong_key: Path
    ssh_config: Path
    known_hosts: Path
    started: list[Sshd] = field(default_factory=list)

    def start(self, count: int = 1) -> list[Sshd]:
        return [self._start_one() for _ in range(count)]

    def _start_one(self, attempts: int = 5) -> Sshd:
        for _ in range(attempts):
            port = free_port()
            conf = self.root / f"sshd-{port}.conf"
            conf.write_text(self._sshd_config(port))
            log = self.root / f"sshd-{port}.log"
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),
            )
            if _wait_listening(port, proc):
                sshd = Sshd(port, proc, log)
                self.started.append(sshd)
                pub = self.host_key.with_suffix(".pub").read_text().split()
                with self.known_hosts.open("a") as f:
                    f.write(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
                return sshd
            _stop(proc)  # the port was taken meanwhile: another one
        raise RuntimeError(f"sshd did not start: {log.read_text()[-500:]}")

    def _sshd_config(self, port: int) -> str:
        return "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key}",
                f"PidFile {self.root / f'sshd-{port}.pid'}",
                f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PrintMotd no",
                "MaxStartups 100:30:200",
                "LogLevel ERROR",
                "",
            ]
        )

    def stop(self, sshd: Sshd) -> None:
        _stop(sshd.proc)
        with contextlib.suppress(ValueError):
            self.started.remove(sshd)

    def stop_all(self) -> None:
        for sshd in list(self.started):
            self.stop(sshd)

    def hosts_toml(self, targets: list[str], timeout_s: float = 5, key: Path | None = None) -> str:
        """A `[hosts]` section for these targets through this fleet's ssh_config."""
        quoted = ", ".join(f'"{t}"' for t in targets)
        return (
            f'[hosts]\ntargets = [{quoted}]\nssh_config = "{self.ssh_config}"\n'
            f'ssh_identity_file = "{key or self.client_key}"\ntimeout_s = {timeout_s}\n'
            "cpu_sample_s = 0.5\n"
        )


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_fleet(root: Path) -> SshFleet:
    """Keys and client config in `root`; no sshd started yet."""
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (/usr/sbin/sshd)")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation dir
    host_key, client_key, wrong_key = root / "host_key", root / "client_key", root / "wrong_key"
    for key in (host_key, client_key, wrong_key):
        _keygen(key)
    (root / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    known_hosts = root / "known_hosts"
    known_hosts.write_text("")
    ssh_config = root / "ssh_config"
    ssh_config.write_text(
        "Host *\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        "  PasswordAuthentication no\n"
        "  LogLevel ERROR\n"
    )
    return SshFleet(root, host_key, client_key, wrong_key, ssh_config, known_hosts)


@pytest.fixture(scope="module")
def ssh_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    """Keys and config for the module; `ssh_fleet.start(n)` starts n sshd (all stopped
    by PID at the module's end)."""
    fleet = make_fleet(tmp_path_factory.mktemp("ssh", numbered=True))
    yield fleet
    fleet.stop_all()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word (a hung sshd)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def hosts(ssh_fleet: SshFleet):
    """`hosts(**options)`: a remote.Fleet through the fleet's ssh_config and key
    (timeout_s 5 unless given), closed after the test."""
    from opscheck.probes import remote

    made = []

    def make(**kw) -> remote.Fleet:
        base = {
            "ssh_config": str(ssh_fleet.ssh_config),
            "ssh_identity_file": str(ssh_fleet.client_key),
            "timeout_s": 5.0,
        }
        made.append(remote.Fleet(remote.Options(**{**base, **kw})))
        return made[-1]

    yield make
    for f in made:
        f.close()
