"""Weekly: logs rotate as the guide's logrotate file says, and temp files get cleaned up."""

import time

import pytest

from opscheck.probes import ProbeError, hosttext, logrotate, tempfiles
from opscheck.probes.host import where
from opscheck.probes.hostfiles import files_of
from opscheck.probes.logs.files import siblings

SHOWN = 10  # old files named in the message; the count says how many more


def _policy(ops_host, cfg, evidence) -> logrotate.Block | None:
    """The app log's block of the host's logrotate file, each policy directive compared."""
    path, log, at = cfg.paths.logrotate_conf, cfg.paths.app_log, where(ops_host)
    try:
        conf = logrotate.parse(path, hosttext.files_on(ops_host))
    except logrotate.LogrotateParseError as exc:
        evidence.breach(f"{at}{exc}")
        return None
    blocks = logrotate.blocks_for(conf, log)
    evidence.record(f"{at}logrotate files read", len(conf.files), "files")
    if not blocks:
        evidence.breach(f"{at}no block of {path} (or its includes) rotates {log}")
        return None
    if len(blocks) > 1:
        places = ", ".join(b.source for b in blocks)
        evidence.breach(
            f"{at}{log} is named by {len(blocks)} blocks ({places}); logrotate refuses it"
        )
    block = blocks[0]
    for key, want, text in logrotate.expected(cfg.logrotate.policy):
        got = block.get(key)
        shown = "absent" if got is None else (got if key == "frequency" else f"{key} {got}".strip())
        ok = got is not None and logrotate.normal(key, got) == want
        why = (
            f"{block.source}: lacks '{text}'"
            if got is None
            else f"{block.source}: has '{shown}', expected '{text}'"
        )
        evidence.expect(f"{at}logrotate {key}", shown, text, ok, at + why)
    return block


def _log_files(ops_host, cfg, olddirs: tuple[str, ...]):
    """The app log and its rotated copies on the host."""
    return siblings(cfg.paths.app_log, olddirs, files_of(ops_host))


@pytest.mark.weekly
@pytest.mark.role("app")
def test_log_rotation_policy(ops_host, cfg, evidence):
    """로그 파일 정리: the logrotate block has the guide's policy, rotated logs are compressed,
    none is older than the retention, and the live log is under live_log_max_mb (every app
    host)."""
    block, at = _policy(ops_host, cfg, evidence), where(ops_host)
    olddir = block.get("olddir") if block else None
    try:
        files = _log_files(ops_host, cfg, (olddir,) if olddir else ())
    except ProbeError as exc:
        evidence.breach(str(exc))  # a remote host's names the host
        evidence.verdict()
        return
    live = [f for f in files if f.active]
    if live:
        evidence.at_most(
            f"{at}live app log size", live[0].size / 2**20, "MB", cfg.thresholds.live_log_max_mb
        )
    rotated = [f for f in files if not f.active]
    policy = cfg.logrotate.policy
    plain_ok = 1 if "delaycompress" in (p.split()[0] for p in policy) else 0
    plain = [f for f in rotated[plain_ok:] if not f.compressed]
    evidence.at_most(f"{at}uncompressed rotated logs", len(plain), "files", 0)
    for f in plain[:SHOWN]:
        evidence.breach(f"{at}{f.path.name} is not compressed")
    keep = {k: a for k, a, _ in logrotate.expected(policy)}.get("rotate")
    if keep is not None:
        evidence.at_most(f"{at}rotated logs", len(rotated), "files", int(keep))
    days = logrotate.retention_days(policy)
    if days is not None and rotated:
        now = time.time()
        old = [(f, (now - f.mtime) / 86400) for f in rotated]
        oldest = max(age for _, age in old)
        evidence.at_most(f"{at}oldest rotated log age", oldest, "days", days + 1)
        for f, age in sorted(old, key=lambda t: -t[1])[:SHOWN]:
            if age > days + 1:
                evidence.breach(f"{at}{f.path.name} is {age:.1f} days old, retention {days:g} days")
    evidence.verdict()


@pytest.mark.weekly
def test_temp_files_cleanup(ops_host, cfg, evidence):
    """임시 파일 정리: no file of the service in temp_dirs is older than temp_file_max_age_days,
    on every host."""
    limit, cap = cfg.thresholds.temp_file_max_age_days, cfg.thresholds.temp_scan_max_files
    owner, at = cfg.paths.temp_owner or cfg.service.user, where(ops_host)
    scan = tempfiles.scan_host(
        ops_host, cfg.paths.temp_dirs, limit, owner, cfg.paths.temp_patterns, cap
    )
    evidence.record(f"{at}entries examined", scan.files_seen, "files", cap)
    evidence.record(f"{at}the service's temp files", scan.files_counted, "files")
    evidence.record(f"{at}dirs of other owners not entered", scan.other_owner_dirs, "dirs")
    evidence.at_most(f"{at}oldest temp file age", scan.oldest_days, "days", limit)
    for f in scan.old[:SHOWN]:
        evidence.breach(f"{at}{f.path} is {f.age_days:.1f} days old")
    if len(scan.old) > SHOWN:
        evidence.breach(f"{at}and {len(scan.old) - SHOWN} more files older than {limit} days")
    for path, why in scan.unreadable:
        evidence.breach(f"{at}{path}: not examined ({why})")
    evidence.record(f"{at}walk capped", scan.capped, "", False)
    if scan.capped:
        evidence.breach(
            f"{at}stopped after {cap} entries (temp_scan_max_files): the rest was not seen"
        )
    evidence.verdict()
