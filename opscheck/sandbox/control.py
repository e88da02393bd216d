"""Start, stop and describe a sandbox: layout, faults, the replica process, its config.

Everything started is recorded by PID in `<dir>/run/`; `down` stops exactly those
processes and leaves nothing running.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from opscheck import attest
from opscheck.sandbox import cache as sandbox_cache
from opscheck.sandbox import deps, layout
from opscheck.sandbox import history as sandbox_history
from opscheck.sandbox.faults import FAULTS, check_names

if TYPE_CHECKING:
    import trustme

MARKER = ".opscheck-sandbox"
DEFAULT_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "opscheck-sandbox"


@dataclass(frozen=True)
class Options:
    faults: tuple[str, ...] = ()
    latency_scale: float = 1.0
    error_share: float = 0.05
    timeout_s: float = 5.0
    requests_per_day: int = 600
    template: Path | None = None  # an already built healthy sandbox to copy instead of building
    https: bool = False  # serve HTTPS with a certificate from a CA of the sandbox's own
    fixed_delay_ms: float = 0.0  # > 0: every answer takes exactly this long (no other latency)
    redis: bool = True  # start the sandbox's redis-server (a layout-only template needs none)
    replicas: int = 1  # > 1: that many replicas behind a load balancer (balancer.py)


def _pidfiles(root: Path) -> list[Path]:
    run = root / "run"
    return sorted(run.glob("*.pid")) if run.is_dir() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(root: Path) -> list[str]:
    """Stop every process this sandbox started; returns what was stopped."""
    stopped = []
    for pidfile in _pidfiles(root):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if _alive(pid):
            _stop(pid)
            stopped.append(f"{pidfile.stem} (pid {pid})")
        pidfile.unlink(missing_ok=True)
    return stopped


def _stop(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if not _alive(pid):
                    return
            time.sleep(0.05)


def up(root: Path, opts: Options) -> Path:
    """Lay out a fresh sandbox in `root`, apply faults, start the replica; return its config."""
    check_names(list(opts.faults))
    root = root.resolve()
    _prepare_dir(root)
    now = datetime.now()
    if opts.template is not None:
        _copy_template(opts.template, root)
        lay = layout.Layout(root)
        layout.write_logrotate(lay)  # it names the log dir: this sandbox's, not the template's
    else:
        lay = layout.build(root, now, opts.requests_per_day)
    lay.run.mkdir(exist_ok=True)
    _write_extras(lay)  # before the faults, which may break these files too
    for name in opts.faults:
        if FAULTS[name].apply is not None:
            FAULTS[name].apply(lay, now)
    sandbox_history.seed(root, tuple(opts.faults))  # after the faults: reports are not theirs
    settings = {
        "faults": list(opts.faults),
        "latency_scale": 0.0 if opts.fixed_delay_ms else opts.latency_scale,
        "fixed_delay_ms": opts.fixed_delay_ms,
        "error_share": opts.error_share,
        "slow_s": opts.timeout_s + 3,
    }
    (lay.run / "sandbox.json").write_text(json.dumps(settings))
    redis_url = sandbox_cache.up(lay, opts.faults) if opts.redis else ""
    tls = _make_certs(lay, opts.faults) if _wants_tls(opts) else None
    replicas = max(opts.replicas, 2) if "replica-down" in opts.faults else opts.replicas
    if "down" in opts.faults:  # nothing listens: neither balancer nor replica
        ports = [_free_port() for _ in range(replicas + (replicas > 1))]
    else:
        ports = _start_service(lay, tls, replicas, opts.faults)
    if "cpu-hog" in opts.faults:
        _start_hogs(lay)
    return write_config(
        lay, ports[0], opts, https=tls is not None, redis_url=redis_url, replica_ports=ports[1:]
    )


def _prepare_dir(root: Path) -> None:
    """Reuse only a directory that is empty or an earlier sandbox; never wipe anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise SystemExit(f"{root} is not empty and is not a sandbox; choose another --dir")
        down(root)
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                _rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by python -m opscheck.sandbox\n")


def _rmtree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def _copy_template(template: Path, root: Path) -> None:
    for name in ("app", "backups", "nginx", "etc", "secure", "tmp"):
        src = template / name
        if src.exists():
            shutil.copytree(src, root / name, symlinks=True)


def _write_extras(lay: layout.Layout) -> None:
    """The host files later checks read: key registry, temp dir (layout.build writes the
    logrotate file)."""
    (lay.root / "secure").mkdir(exist_ok=True)
    today = datetime.now().date().isoformat()
    (lay.root / "secure" / "api_keys.json").write_text(
        json.dumps({"anthropic": {"created": today}, "openai": {"created": today}})
    )
    (lay.root / "tmp").mkdir(exist_ok=True)
    deps.write(lay.root)
    _write_attestations(lay)


def _write_attestations(lay: layout.Layout) -> None:
    """Each human review signed recently: monthly ones 10 days ago, quarterly 30."""
    today = datetime.now().date()
    shutil.rmtree(lay.root / "attestations", ignore_errors=True)  # a template's, copied
    for ids, days in ((attest.MONTHLY, 10), (attest.QUARTERLY, 30)):
        for check_id in ids:
            where = lay.root / "attestations" / check_id
            day = today - timedelta(days=days)
            attest.write(where, "Kim Ops", day, "reviewed, no change", "https://wiki.example/ops")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TLS_FAULTS = ("tls-expiring", "tls-expired", "tls-wrong-host", "tls-intermediate-expiring")


def _wants_tls(opts: Options) -> bool:
    return opts.https or any(f in TLS_FAULTS for f in opts.faults)


def _make_certs(lay: layout.Layout, faults: tuple[str, ...]) -> tuple[Path, Path]:
    """A root CA (run/ca.pem, trusted by the written config), an intermediate CA and the
    server's certificate, served as leaf + intermediate as a real CA's chain is: valid for
    127.0.0.1 and localhost for a year (the intermediate for five), or broken as a fault says."""
    import trustme

    now = datetime.now(UTC)
    names, not_before = ["127.0.0.1", "localhost"], now - timedelta(days=1)
    not_after, intermediate_until = now + timedelta(days=365), now + timedelta(days=5 * 365)
    if "tls-expiring" in faults:
        not_after = now + timedelta(days=5)
    if "tls-expired" in faults:
        not_before, not_after = now - timedelta(days=90), now - timedelta(days=2)
    if "tls-wrong-host" in faults:
        names = ["other.example"]
    if "tls-intermediate-expiring" in faults:
        not_after, intermediate_until = now + timedelta(days=90), now + timedelta(days=3)
    root = trustme.CA()
    intermediate = _intermediate_ca(root, now - timedelta(days=1), intermediate_until)
    leaf = intermediate.issue_cert(*names, not_before=not_before, not_after=not_after)
    root.cert_pem.write_to_path(str(lay.run / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(lay.run / "server.key"))
    leaf.cert_chain_pems[0].write_to_path(str(lay.run / "server.pem"))
    intermediate.cert_pem.write_to_path(str(lay.run / "server.pem"), append=True)
    return lay.run / "server.pem", lay.run / "server.key"


def _intermediate_ca(root: trustme.CA, not_before: datetime, not_after: datetime) -> trustme.CA:
    """A CA signed by `root`, valid from `not_before` to `not_after` (trustme's own child
    CAs have fixed dates, so this one is built with cryptography and handed to trustme)."""
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    issuer = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    signer = serialization.load_pem_private_key(root.private_key_pem.bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "opscheck sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "opscheck sandbox intermediate CA"),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return trustme.CA.from_pem(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _start_service(
    lay: layout.Layout, tls: tuple[Path, Path] | None, replicas: int, faults: tuple[str, ...]
) -> list[int]:
    """The replicas, started at once so their start-ups overlap, then (when there are
    several) the balancer in front: [replica port], or [balancer port, replica ports...].
    `replica-down` leaves the last replica unstarted (its port stays free)."""
    names = ["server", *(f"server-{n}" for n in range(2, replicas + 1))]
    skipped = names[-1] if "replica-down" in faults else None
    ports, started = [], []
    for name in names:
        if name == skipped:
            ports.append(_free_port())
            continue
        proc, port = _spawn_server(lay, tls, name)
        ports.append(port)
        started.append((name, proc, port))
    for name, proc, port in started:
        _wait_ready(lay, name, proc, port, tls)
    if replicas == 1:
        return ports
    return [_start_balancer(lay, ports, tls), *ports]


def _listening_socket() -> socket.socket:
    """127.0.0.1 on a free port, listening, to hand to a child (the port is taken at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections:
    # without it, a keep-alive answer written in two parts waits ~40 ms for a delayed ACK
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _spawn(lay: layout.Layout, name: str, cmd: list[str], sock: socket.socket) -> subprocess.Popen:
    """Start `cmd` with `sock` inherited, logging to run/<name>.log, recorded in run/<name>.pid."""
    env = {**os.environ, "OPSCHECK_SANDBOX_DIR": str(lay.root)}
    log = open(lay.run / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=(sock.fileno(),),
            start_new_session=True,
        )
    sock.close()
    (lay.run / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def _spawn_server(
    lay: layout.Layout, tls: tuple[Path, Path] | None, name: str
) -> tuple[subprocess.Popen, int]:
    """One replica: uvicorn serving the app on a socket bound here; (process, port)."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "opscheck.sandbox.app:app",
        "--fd",
        str(sock.fileno()),
        "--log-level",
        "warning",
        "--no-access-log",
        *(["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else []),
    ]
    return _spawn(lay, name, cmd, sock), port


def _start_balancer(lay: layout.Layout, replicas: list[int], tls: tuple[Path, Path] | None) -> int:
    """The load balancer in front of `replicas`, answering through one of them."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    upstreams = [f"127.0.0.1:{p}" for p in replicas]
    cmd = [sys.executable, "-m", "opscheck.sandbox.balancer", str(sock.fileno()), *upstreams]
    _wait_ready(lay, "balancer", _spawn(lay, "balancer", cmd, sock), port, tls)
    return port


def _wait_ready(
    lay: layout.Layout,
    name: str,
    proc: subprocess.Popen,
    port: int,
    tls: tuple[Path, Path] | None,
    wait_s: float = 30.0,
) -> None:
    """Until the readiness path answers on `port`; a child that exits or stays silent stops
    the sandbox."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (lay.run / f"{name}.log").read_text(errors="replace")[-400:]
            down(lay.root)
            raise SystemExit(f"the sandbox {name} exited with {proc.returncode}: {tail}")
        try:
            scheme = "https" if tls else "http"
            with warnings.catch_warnings():  # our own readiness probe, our own test CA
                warnings.simplefilter("ignore")
                url = f"{scheme}://127.0.0.1:{port}/__sandbox__/ready"
                requests.get(url, timeout=1, verify=False)
            return
        except requests.RequestException:
            time.sleep(0.1)
    down(lay.root)
    raise SystemExit(f"the sandbox {name} did not answer within {wait_s:g} s")


HOG = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end:\n    pass\n"


def _start_hogs(lay: layout.Layout) -> None:
    """One busy loop per core, each bounded to 120 s and recorded for `down`."""
    for n in range(os.cpu_count() or 1):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOG],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        (lay.run / f"cpu-hog-{n}.pid").write_text(f"{proc.pid}\n")


def write_config(
    lay: layout.Layout,
    port: int,
    opts: Options,
    https: bool = False,
    redis_url: str = "",
    replica_ports: list[int] | None = None,
) -> Path:
    """An opscheck.toml that points every check at this sandbox: `port` is base_url's (the
    balancer's when `replica_ports` lists the replicas behind it)."""
    r = lay.root
    scheme = "https" if https else "http"
    replicas = [f"{scheme}://127.0.0.1:{p}" for p in replica_ports or []]

    def q(value: object) -> str:
        return json.dumps(str(value), ensure_ascii=False)  # a valid TOML basic string

    text = f"""# Written by `python -m opscheck.sandbox up` for the sandbox in {r}
# faults: {", ".join(opts.faults) or "none"}

[service]
base_url = {q(f"{scheme}://127.0.0.1:{port}")}{_replicas_line(replicas)}
ca_bundle = {q(lay.run / "ca.pem" if https else "")}
timeout_s = {opts.timeout_s:g}
user = {q(getpass.getuser())}

[paths]
app_dir = {q(lay.app)}
access_log = {q(lay.nginx / "access.log")}
backup_dir = {q(lay.backups)}
logrotate_conf = {q(r / "etc" / "kakao-template.logrotate")}
temp_dirs = [{q(r / "tmp")}]
key_registry = {q(r / "secure" / "api_keys.json")}
osv_dir = {q(deps.osv_dir(r))}
attestations_dir = {q(r / "attestations")}

[packages]
index_url = {q(f"file://{deps.index_dir(r)}")}
apt_config = {q(deps.apt_dir(r) / "apt.conf")}

[hosts]
cpu_sample_s = 1

[history]
url = {q(sandbox_history.url(r))}
"""
    if redis_url:
        text += sandbox_cache.config_text(redis_url, opts.faults)
    path = r / "opscheck.toml"
    path.write_text(text)
    return path


def _replicas_line(urls: list[str]) -> str:
    """`base_urls = [...]` on its own line when the balancer has replicas behind it."""
    if not urls:
        return ""
    return "\nbase_urls = [" + ", ".join(json.dumps(u) for u in urls) + "]"


def status(root: Path) -> str:
    """One line per recorded process and the faults in force."""
    root = root.resolve()
    if not (root / MARKER).exists():
        return f"{root}: no sandbox"
    lines = [f"{root}: config {root / 'opscheck.toml'}"]
    settings = root / "run" / "sandbox.json"
    if settings.exists():
        faults = json.loads(settings.read_text()).get("faults", [])
        lines.append(f"faults: {', '.join(faults) or 'none'}")
    for pidfile in _pidfiles(root):
        pid = int(pidfile.read_text().strip() or 0)
        lines.append(f"{pidfile.stem}: pid {pid} {'running' if _alive(pid) else 'gone'}")
    if not _pidfiles(root):
        lines.append("nothing running")
    return "\n".join(lines)
