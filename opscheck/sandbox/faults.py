"""The sandbox's faults: each breaks exactly one thing a check exists to catch.

File faults change the laid-out deployment once; server faults change how the
replica answers (read by `app.py` from `run/sandbox.json`); `down` starts nothing.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from opscheck.sandbox.layout import Layout, backup_names, night_stamps
from opscheck.sandbox.traffic import Traffic, write_logs


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # "file", "server", "process" or "redis" (opscheck/sandbox/cache.py)
    what: str  # what it breaks, for `--help`
    apply: Callable[[Layout, datetime], None] | None = None


def _env_mode(lay: Layout, now: datetime) -> None:
    lay.env_file.chmod(0o644)


def _env_owner(lay: Layout, now: datetime) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise SystemExit("env-owner: this machine has no 'nobody' user") from None
    try:
        os.chown(lay.env_file, nobody.pw_uid, nobody.pw_gid)
    except PermissionError:
        raise SystemExit("env-owner: changing a file's owner needs root") from None


def _dir_mode(lay: Layout, now: datetime) -> None:
    lay.logs.chmod(0o777)


def _stale_backup(lay: Layout, now: datetime) -> None:
    """The last two nights' backups never ran: the newest set is over 24 h old."""
    for night in night_stamps(now, 2):
        for name in backup_names(night.strftime("%Y%m%d_%H%M%S")).values():
            (lay.backups / name).unlink(missing_ok=True)


def _corrupt_backup(lay: Layout, now: datetime) -> None:
    """The newest chroma_db archive is cut off in the middle of its gzip stream."""
    newest = night_stamps(now, 1)[0].strftime("%Y%m%d_%H%M%S")
    path = lay.backups / backup_names(newest)["chroma_db"]
    st = path.stat()
    with open(path, "r+b") as f:
        f.truncate(max(1, st.st_size // 2))
    os.utime(path, (st.st_atime, st.st_mtime))


def _newest(lay: Layout, now: datetime, kind: str) -> Path:
    stamp = night_stamps(now, 1)[0].strftime("%Y%m%d_%H%M%S")
    return lay.backups / backup_names(stamp)[kind]


def _keep_mtime(path: Path, build: Callable[[Path], None]) -> None:
    """Rebuild a backup file in place with the mtime the nightly run gave it."""
    st = path.stat()
    build(path)
    os.utime(path, (st.st_atime, st.st_mtime))


def _missing_day(lay: Layout, now: datetime) -> None:
    """Three nights ago the config archive was not written: that set is incomplete."""
    stamp = night_stamps(now, 4)[0].strftime("%Y%m%d_%H%M%S")
    (lay.backups / backup_names(stamp)["config"]).unlink()


def _old_backups_kept(lay: Layout, now: datetime) -> None:
    """Cleanup stopped: sets from 35, 40 and 45 days ago are still there."""
    newest = night_stamps(now, 1)[0]
    for days in (35, 40, 45):
        night = newest - timedelta(days=days)
        for kind, name in backup_names(night.strftime("%Y%m%d_%H%M%S")).items():
            path = lay.backups / name
            shutil.copyfile(_newest(lay, now, kind), path)
            os.utime(path, (night.timestamp() + 30, night.timestamp() + 30))


def _shrunk_backup(lay: Layout, now: datetime) -> None:
    """Last night's chroma_db archive holds only chroma.sqlite3: the segment folder is gone."""

    def build(path: Path) -> None:
        subprocess.run(
            ["tar", "-czf", path, "-C", lay.root, "app/chroma_db/chroma.sqlite3"], check=True
        )

    _keep_mtime(_newest(lay, now, "chroma_db"), build)


def _traversal_backup(lay: Layout, now: datetime) -> None:
    """Last night's chroma_db archive carries a member named ../../outside.txt."""

    def build(path: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            inner = Path(tmp) / "a" / "b"
            inner.mkdir(parents=True)
            (Path(tmp) / "outside.txt").write_text("written outside the restore dir\n")
            subprocess.run(["cp", "-a", str(lay.chroma), str(inner / "chroma_db")], check=True)
            subprocess.run(
                ["tar", "-czPf", path, "-C", inner, "chroma_db", "../../outside.txt"], check=True
            )

    _keep_mtime(_newest(lay, now, "chroma_db"), build)


def _future_backup(lay: Layout, now: datetime) -> None:
    """A set stamped tomorrow night: a clock or time zone is wrong somewhere."""
    tomorrow = night_stamps(now, 1)[0] + timedelta(days=1)
    for kind, name in backup_names(tomorrow.strftime("%Y%m%d_%H%M%S")).items():
        shutil.copyfile(_newest(lay, now, kind), lay.backups / name)


def _backup_mtime(lay: Layout, now: datetime) -> None:
    """Last night's chroma_db archive was modified 6 hours after its stamp."""
    path = _newest(lay, now, "chroma_db")
    t = night_stamps(now, 1)[0].timestamp() + 6 * 3600
    os.utime(path, (t, t))


def _config_without_env(lay: Layout, now: datetime) -> None:
    """Last night's config archive lacks .env (the backup script ran without read access)."""

    def build(path: Path) -> None:
        subprocess.run(
            ["tar", "-czf", path, "-C", lay.app, "src/config/", "requirements.txt"], check=True
        )

    _keep_mtime(_newest(lay, now, "config"), build)


def _restore_mismatch(lay: Layout, now: datetime) -> None:
    """The live template data gained 11 records since last night's backup."""
    doc = json.loads(lay.template_data.read_text())
    doc["templates"] += doc["templates"][:11]
    lay.template_data.write_text(json.dumps(doc, ensure_ascii=False))


def _recent(lay: Layout, now: datetime, t: Traffic) -> None:
    """Rewrite yesterday's and today's logs (so the whole last 24 h) with other traffic."""
    write_logs(lay.logs, lay.nginx, now, t, random.Random(11), only_recent=True)


def _error_heavy_log(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, one request in ten answered 500."""
    _recent(lay, now, Traffic(error_share=0.10))


def _slow_log(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, generations take three times as long (median about 7 s)."""
    _recent(lay, now, Traffic(slow_factor=3.0))


def _spike(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, about 2.3 times the usual requests, the extra ones well
    formed: the WARNING lines (422s) stay at their usual count a day. (At their usual
    share they came to 2.3x, up to 26 in the last 24 h, and at some times of day over 3x
    the earlier days' median: warning_log_review failed beside throughput_normal.)"""
    usual = Traffic()
    share = usual.warning_share * usual.requests / 1400
    _recent(lay, now, Traffic(requests=1400, warning_share=share))


def _scanner(lay: Layout, now: datetime) -> None:
    """Two hours ago a client probed /.env and /.git (200), failed auth 30 times, 250/min."""
    _recent(lay, now, Traffic(scanner=True))


def _key_in_log(lay: Layout, now: datetime) -> None:
    """Two hours ago a debug line wrote an Anthropic API key into app.log."""
    _recent(lay, now, Traffic(key_leak=True))


def _new_error(lay: Layout, now: datetime) -> None:
    """Two hours ago a new ERROR appeared: a Chroma dimension mismatch."""
    _recent(lay, now, Traffic(new_error=True))


def _warning_storm(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, one request in six is rejected with a WARNING."""
    _recent(lay, now, Traffic(warning_share=0.17))


def _symlinked_chroma(lay: Layout, now: datetime) -> None:
    """The store moved to a volume and app/chroma_db became a link to it; every chroma_db
    archive was made over the link by the guide's own `tar -C <root> app/chroma_db`."""
    volume = lay.root / "volumes" / "chroma_db"
    volume.parent.mkdir(exist_ok=True)
    shutil.move(lay.chroma, volume)
    lay.chroma.symlink_to(os.path.relpath(volume, lay.chroma.parent))
    newest = _newest(lay, now, "chroma_db")

    def build(path: Path) -> None:
        subprocess.run(["tar", "-czf", path, "-C", lay.root, "app/chroma_db"], check=True)

    _keep_mtime(newest, build)
    for older in lay.backups.glob("chroma_db_*.tar.gz"):
        if older != newest:
            _keep_mtime(older, lambda path: shutil.copyfile(newest, path))


def _empty_backup(lay: Layout, now: datetime) -> None:
    """Last night's chroma_db archive is 0 bytes (the disk filled while it was written)."""
    _keep_mtime(_newest(lay, now, "chroma_db"), lambda path: path.write_bytes(b""))


def _tiny_backup(lay: Layout, now: datetime) -> None:
    """Last night's template data is valid JSON with one record, a sliver of the night before."""
    doc = json.loads(lay.template_data.read_text())
    small = {**doc, "templates": doc["templates"][:1], "patterns": []}
    text = json.dumps(small, ensure_ascii=False)
    _keep_mtime(_newest(lay, now, "template_data"), lambda path: path.write_text(text))


def _multiline_failures(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, 5 % of requests fail with a ResponseValidationError whose
    text spans lines (the duration ends the record's last line)."""
    _recent(lay, now, Traffic(error_share=0.05, multiline_share=1.0))


def _key_revoked_log(lay: Layout, now: datetime) -> None:
    """Since yesterday 00:00, every LLM call answers 401 authentication_error (the key was
    revoked); generation goes on answering 200 from its fallback."""
    _recent(lay, now, Traffic(llm_status=401))


def _llm_overloaded_log(lay: Layout, now: datetime) -> None:
    """Since 23 hours ago, 30 % of LLM calls answer 529 overloaded_error (retried), and
    the calls that fail all three tries log an ERROR the week never had. (Started at
    yesterday 00:00, the onset fell 24-48 h back from about 03:00 on: the new signature
    was in the week before, and error_log_review's verdict hung on the time of day.)"""
    _recent(lay, now, Traffic(llm_overloaded=0.3, since=now - timedelta(hours=23)))


def _telemetry_restart(lay: Layout, now: datetime) -> None:
    """Two hours ago the service restarted after a quiet week: chromadb's telemetry fails
    with an event name the week did not have (CollectionQueryEvent). Noise, not a fault:
    error_log_review stays green with the default [logs] ignore_errors."""
    _recent(lay, now, Traffic(restart=True))


def _logs_in_kst(lay: Layout, now: datetime) -> None:
    """The logs are written in Asia/Seoul wall-clock time (the service's zone), while the
    config leaves service.timezone empty on this machine: app log lines look 9 h ahead
    on a UTC machine. (The access log carries its own offset and stays right.)"""
    tz = ZoneInfo("Asia/Seoul")
    local = datetime.now(tz).replace(tzinfo=None)
    write_logs(lay.logs, lay.nginx, local, Traffic(), random.Random(7), tz=tz)


def _junk_log(lay: Layout, now: datetime) -> None:
    """Today's app.log is 8 MB of random bytes (a disk error, a binary written there)."""
    path = lay.logs / "app.log"
    st = path.stat()
    path.write_bytes(random.Random(5).randbytes(8 << 20))
    os.utime(path, (st.st_atime, st.st_mtime))


def _truncated_log_gz(lay: Layout, now: datetime) -> None:
    """app.log.2.gz was cut to half its size (a full disk while logrotate compressed)."""
    path = lay.logs / "app.log.2.gz"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _fifo_log(lay: Layout, now: datetime) -> None:
    """The active app.log is a FIFO beside its rotated copies (a log shipper's pipe)."""
    path = lay.logs / "app.log"
    path.unlink()
    os.mkfifo(path, 0o644)


def _dateext_logs(lay: Layout, now: datetime) -> None:
    """Not a fault: logrotate with `dateext` and xz: app.log-20261130, app.log-20261129.xz
    ... (every check must read them as it reads app.log.1, app.log.2.gz)."""
    for folder, base in ((lay.logs, "app.log"), (lay.nginx, "access.log")):
        for n in range(1, 8):
            old = folder / (f"{base}.1" if n == 1 else f"{base}.{n}.gz")
            if not old.exists():
                continue
            day = (now - timedelta(days=n - 1)).strftime("%Y%m%d")
            st = old.stat()
            if n == 1:
                new = folder / f"{base}-{day}"
                old.rename(new)
            else:
                new = folder / f"{base}-{day}.xz"
                new.write_bytes(lzma.compress(gzip.decompress(old.read_bytes())))
                old.unlink()
            os.utime(new, (st.st_atime, st.st_mtime))


def _requirements(lay: Layout, old: str, new: str) -> None:
    path = lay.app / "requirements.txt"
    text = path.read_text()
    path.write_text(text.replace(old, new) if old else text + new)


def _vulnerable_pin(lay: Layout, now: datetime) -> None:
    """requirements.txt pins requests 2.32.3 (GHSA-9hjg-9r4m-mvj7 / CVE-2024-47081)."""
    _requirements(lay, "", "requests==2.32.3\n")


def _unpinned_dependency(lay: Layout, now: datetime) -> None:
    """requirements.txt says httpx>=0.25 instead of a pin: no advisory can be matched."""
    _requirements(lay, "httpx==0.25.2", "httpx>=0.25")


def _stale_critical_package(lay: Layout, now: datetime) -> None:
    """fastapi 0.110.0 appeared on the index: the pinned 0.104.1 is 6 minors behind."""
    from opscheck.sandbox import deps

    deps.add_release(lay.root, "fastapi", "0.110.0")


def _registry(lay: Layout) -> Path:
    return lay.root / "secure" / "api_keys.json"


def _old_key(lay: Layout, now: datetime) -> None:
    """The anthropic key in the registry was created 200 days ago."""
    doc = json.loads(_registry(lay).read_text())
    doc["anthropic"]["created"] = (now - timedelta(days=200)).date().isoformat()
    _registry(lay).write_text(json.dumps(doc))


def _key_value_in_registry(lay: Layout, now: datetime) -> None:
    """Not a fault for the age check: the anthropic record also holds the key's value
    (the .env's): it must never be read into a report."""
    env = dict(line.split("=", 1) for line in lay.env_file.read_text().splitlines() if "=" in line)
    doc = json.loads(_registry(lay).read_text())
    doc["anthropic"]["key"] = env["ANTHROPIC_API_KEY"]
    _registry(lay).write_text(json.dumps(doc))


def _security_update(lay: Layout, days_old: float) -> None:
    from opscheck.sandbox import aptrepo, deps

    try:
        aptrepo.publish(deps.apt_dir(lay.root), date=aptrepo.days_ago(days_old))
    except RuntimeError as exc:
        raise SystemExit(f"security update faults: {exc}") from None


def _security_update_pending(lay: Layout, now: datetime) -> None:
    """The sandbox's apt sees a security update (Debian-Security) in a list dated today."""
    _security_update(lay, 0)


def _stale_security_update(lay: Layout, now: datetime) -> None:
    """The pending security update's list is dated 45 days ago: it waited that long."""
    _security_update(lay, 45)


def _secret_in_source(lay: Layout, now: datetime) -> None:
    """A developer pasted an Anthropic key into the LLM client (line 7 of llm_client.py)."""
    path = lay.app / "src/utils/llm_client.py"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    key = "sk-ant-api03-" + "".join(random.Random(3).choices(alphabet, k=95))
    text = path.read_text().replace('os.environ["ANTHROPIC_API_KEY"]', f'"{key}"')
    path.write_text(text)


def _weak_logrotate(lay: Layout, now: datetime) -> None:
    """The logrotate file keeps 7 days and never compresses."""
    text = lay.logrotate_conf.read_text().replace("rotate 30", "rotate 7")
    lay.logrotate_conf.write_text(text.replace("    compress\n", ""))


def _uncompressed_rotated(lay: Layout, now: datetime) -> None:
    """app.log.3 was left plain (a compression that failed): it is not app.log.3.gz."""
    gz = lay.logs / "app.log.3.gz"
    st = gz.stat()
    plain = lay.logs / "app.log.3"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    os.utime(plain, (st.st_atime, st.st_mtime))


def _logs_beyond_retention(lay: Layout, now: datetime) -> None:
    """Rotated logs of 35 to 40 days ago remain (rotate was once 60, then cleanup stalled)."""
    for days in range(35, 41):
        day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
        line = f"{day:%Y-%m-%d} 12:00:00,000 - src.api.main - INFO - Request: GET /health\n"
        path = lay.logs / f"app.log.{days}.gz"
        path.write_bytes(gzip.compress(line.encode()))
        t = (day + timedelta(days=1)).timestamp()
        os.utime(path, (t, t))


def _oversized_live_log(lay: Layout, now: datetime) -> None:
    """The live app.log gained 101 MB of DEBUG lines over the last hour (rotation stalled,
    LOG_LEVEL left at DEBUG); no request, error or warning line among them."""
    path = lay.logs / "app.log"
    st = path.stat()
    start = now - timedelta(hours=1)
    pad = "x" * 60
    with open(path, "a") as f:
        for minute in range(60):
            stamp = (start + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
            line = f"{stamp},000 - src.utils.performance_monitor - DEBUG - cache probe {pad}\n"
            f.write(line * (101 * 2**20 // 60 // len(line) + 1))
    os.utime(path, (st.st_atime, st.st_mtime))


def _stale_review(lay: Layout, now: datetime) -> None:
    """The DR plan was last reviewed 40 days ago (monthly: 31 days + 7 of grace)."""
    where = lay.root / "attestations" / "dr_plan_reviewed"
    for old in where.glob("*.toml"):
        old.unlink()
    day = (now - timedelta(days=40)).date()
    (where / f"{day.isoformat()}.toml").write_text(
        f'by = "Kim Ops"\ndate = {day.isoformat()}\nsummary = "reviewed"\n'
        'evidence = "https://wiki.example/dr"\n'
    )


def _old_temp_files(lay: Layout, now: datetime) -> None:
    """The service's temp dir keeps uploads of 9 and 12 days ago (cleanup stopped)."""
    for n, days in ((7, 9), (8, 12)):
        path = lay.service_tmp / f"upload-{n:04d}.json"
        path.write_text('{"user_request": "예약 확인 안내"}\n')
        t = (now - timedelta(days=days)).timestamp()
        os.utime(path, (t, t))


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("down", "server", "the service is not running (nothing listens on its port)"),
        Fault("slow", "server", "every answer takes longer than service.timeout_s"),
        Fault("errors", "server", "a share of API answers are 500 (--error-share, default 5 %)"),
        Fault("degraded", "server", "/health answers 200 but vector_database is in error"),
        Fault("health-500", "server", "/health answers 500 HEALTH_CHECK_FAILED"),
        Fault(
            "silent-fallback",
            "server",
            "generation answers the real service's LLM-down fallback body "
            "(200, success) while the app log shows healthy LLM calls",
        ),
        Fault("tls-expiring", "server", "HTTPS with a certificate expiring in 5 days"),
        Fault("tls-expired", "server", "HTTPS with a certificate that expired 2 days ago"),
        Fault("tls-wrong-host", "server", "HTTPS with a certificate for other.example"),
        Fault("cpu-hog", "process", "busy loops on every core for up to 120 s"),
        Fault("env-mode", "file", ".env is mode 644", _env_mode),
        Fault("env-owner", "file", ".env is owned by nobody (needs root)", _env_owner),
        Fault("dir-mode", "file", "logs/ is mode 777", _dir_mode),
        Fault("stale-backup", "file", "the last two nightly backups are missing", _stale_backup),
        Fault(
            "corrupt-backup", "file", "the newest chroma_db archive is truncated", _corrupt_backup
        ),
        Fault(
            "missing-day",
            "file",
            "the set of three nights ago lacks its config archive",
            _missing_day,
        ),
        Fault(
            "old-backups-kept",
            "file",
            "sets 35, 40 and 45 days old were never removed",
            _old_backups_kept,
        ),
        Fault(
            "shrunk-backup",
            "file",
            "last night's chroma_db archive lost its segment folder",
            _shrunk_backup,
        ),
        Fault(
            "traversal-backup",
            "file",
            "last night's chroma_db archive has a ../../ member",
            _traversal_backup,
        ),
        Fault("future-backup", "file", "a backup set is stamped tomorrow", _future_backup),
        Fault(
            "backup-mtime",
            "file",
            "last night's chroma_db archive's mtime is 6 h off its stamp",
            _backup_mtime,
        ),
        Fault(
            "config-without-env",
            "file",
            "last night's config archive lacks .env",
            _config_without_env,
        ),
        Fault(
            "restore-mismatch",
            "file",
            "live template data has 11 records the backup lacks",
            _restore_mismatch,
        ),
        Fault("slow-log", "file", "generations in the logs take ~7 s since yesterday", _slow_log),
        Fault("spike", "file", "about 2.3x the usual requests since yesterday", _spike),
        Fault(
            "scanner", "file", "a client probing /.env, /.git, failing auth, 250 a minute", _scanner
        ),
        Fault("key-in-log", "file", "an Anthropic API key written into app.log", _key_in_log),
        Fault("new-error", "file", "a new ERROR signature two hours ago", _new_error),
        Fault(
            "warning-storm", "file", "one request in six rejected with a WARNING", _warning_storm
        ),
        Fault(
            "error-heavy-log",
            "file",
            "10 % of requests since yesterday 00:00 failed with 500",
            _error_heavy_log,
        ),
        Fault(
            "symlinked-chroma",
            "file",
            "app/chroma_db is a symlink: every chroma_db archive holds only the link",
            _symlinked_chroma,
        ),
        Fault(
            "empty-backup",
            "file",
            "last night's chroma_db archive is 0 bytes",
            _empty_backup,
        ),
        Fault(
            "tiny-backup",
            "file",
            "last night's template data is valid but 1 record, far under 10 % of the night before",
            _tiny_backup,
        ),
        Fault(
            "multiline-failures",
            "file",
            "5 % of requests since yesterday failed with a multi-line Request failed",
            _multiline_failures,
        ),
        Fault(
            "key-revoked-log",
            "file",
            "every LLM call since yesterday answered 401 (a revoked key)",
            _key_revoked_log,
        ),
        Fault(
            "llm-overloaded-log",
            "file",
            "30 percent of LLM calls since 23 hours ago answered 529 overloaded",
            _llm_overloaded_log,
        ),
        Fault(
            "telemetry-restart",
            "file",
            "a restart two hours ago: chromadb telemetry noise with a new event name",
            _telemetry_restart,
        ),
        Fault(
            "logs-in-kst",
            "file",
            "the logs are stamped in Asia/Seoul time, service.timezone left empty",
            _logs_in_kst,
        ),
        Fault("junk-log", "file", "today's app.log is 8 MB of random bytes", _junk_log),
        Fault(
            "truncated-log-gz", "file", "app.log.2.gz is cut to half its size", _truncated_log_gz
        ),
        Fault("fifo-log", "file", "the active app.log is a FIFO", _fifo_log),
        Fault(
            "dateext-logs",
            "file",
            "not a fault: rotated logs named by date (dateext) and compressed with xz",
            _dateext_logs,
        ),
        Fault(
            "llm-down",
            "server",
            "the LLM answers 500 api_error (retried twice): generation answers the fallback",
        ),
        Fault(
            "llm-401",
            "server",
            "the LLM answers 401 authentication_error (a revoked key): the fallback answer",
        ),
        Fault(
            "llm-overloaded",
            "server",
            "the LLM answers 529 overloaded_error (retried twice): the fallback answer",
        ),
        Fault(
            "embeddings-401",
            "server",
            "the embeddings API answers 401: a normal-looking template, no policy sources",
        ),
        Fault(
            "tls-intermediate-expiring",
            "server",
            "HTTPS whose served intermediate CA expires in 3 days (the leaf in 90)",
        ),
        Fault(
            "vulnerable-pin",
            "file",
            "requirements.txt pins requests 2.32.3 (GHSA-9hjg-9r4m-mvj7)",
            _vulnerable_pin,
        ),
        Fault(
            "unpinned-dependency",
            "file",
            "requirements.txt has httpx>=0.25, not a pin",
            _unpinned_dependency,
        ),
        Fault(
            "stale-critical-package",
            "file",
            "the index has fastapi 0.110.0; 0.104.1 is pinned",
            _stale_critical_package,
        ),
        Fault("old-key", "file", "the anthropic key was created 200 days ago", _old_key),
        Fault(
            "key-value-in-registry",
            "file",
            "not a fault for its age: the key registry also holds the anthropic key's value",
            _key_value_in_registry,
        ),
        Fault(
            "security-update-pending",
            "file",
            "apt sees a pending security update (needs apt-get, dpkg-deb, apt-ftparchive)",
            _security_update_pending,
        ),
        Fault(
            "stale-security-update",
            "file",
            "a security update pending for 45 days (its list dated then)",
            _stale_security_update,
        ),
        Fault(
            "secret-in-source",
            "file",
            "an Anthropic API key written into src/utils/llm_client.py",
            _secret_in_source,
        ),
        Fault(
            "weak-logrotate",
            "file",
            "the logrotate file says rotate 7 and has no compress",
            _weak_logrotate,
        ),
        Fault(
            "uncompressed-rotated",
            "file",
            "the rotated app.log.3 is plain, not gzip",
            _uncompressed_rotated,
        ),
        Fault(
            "logs-beyond-retention",
            "file",
            "rotated app logs of 35-40 days ago remain (retention 30)",
            _logs_beyond_retention,
        ),
        Fault(
            "oversized-live-log",
            "file",
            "the live app.log holds 101 MB more of DEBUG lines from the last hour",
            _oversized_live_log,
        ),
        Fault(
            "old-temp-files",
            "file",
            "temp files of 9 and 12 days ago in the service's temp dir",
            _old_temp_files,
        ),
        Fault(
            "redis-no-ttl",
            "redis",
            "5 template:* keys and a session:* key (no pattern) have no TTL",
        ),
        Fault("redis-ttl-over", "redis", "4 policy:* keys expire in 86400 s, policy 3600 s"),
        Fault(
            "redis-idle",
            "redis",
            "cache_idle_days is 2 s and every key has sat untouched for 4 s",
        ),
        Fault("redis-low-hits", "redis", "the cache served 30 hits and 300 misses (ratio 0.09)"),
        Fault("redis-no-auth", "redis", "Redis runs without requirepass (and the url has none)"),
        Fault("redis-down", "redis", "nothing listens on the configured Redis port"),
        Fault(
            "redis-lfu",
            "redis",
            "maxmemory-policy allkeys-lfu: Redis keeps no idle times (cache_idle_keys skips)",
        ),
        Fault("hang", "server", "every request is accepted and never answered"),
        Fault("trickle", "server", "every answer is sent one byte every 0.25 s (a 200 JSON)"),
        Fault("non-json", "server", "every answer is 200 text/html, nginx's welcome page"),
        Fault("huge-body", "server", "every answer is 200 JSON with an endless body"),
        Fault("redirect", "server", "every answer is 302 to /login (an auth wall)"),
        Fault(
            "stale-review",
            "file",
            "the DR plan's newest review record is 40 days old",
            _stale_review,
        ),
        Fault(
            "latency-regression",
            "history",
            "the stored daily p95 of the last 7 days is 30 % above the 3 weeks before",
        ),
        Fault(
            "disk-filling",
            "history",
            "the stored disk use of / grew 1 % point a day for 4 weeks (72 % now)",
        ),
        Fault(
            "replica-down",
            "server",
            "the second of two replicas is not running; the balancer sends all to the first",
        ),
    )
}


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
