"""Weekly: logs rotate as the guide's logrotate file says, and temp files get cleaned up."""

import time

import pytest

from opscheck.probes import ProbeError, logrotate, tempfiles
from opscheck.probes.logs.files import siblings

SHOWN = 10  # old files named in the message; the count says how many more


def _policy(cfg, evidence) -> logrotate.Block | None:
    """The app log's block of the logrotate file, each policy directive compared."""
    path, log = cfg.paths.logrotate_conf, cfg.paths.app_log
    try:
        conf = logrotate.parse(path)
    except logrotate.LogrotateParseError as exc:
        evidence.breach(str(exc))
        return None
    blocks = logrotate.blocks_for(conf, log)
    evidence.record("logrotate files read", len(conf.files), "files")
    if not blocks:
        evidence.breach(f"no block of {path} (or its includes) rotates {log}")
        return None
    if len(blocks) > 1:
        where = ", ".join(b.source for b in blocks)
        evidence.breach(f"{log} is named by {len(blocks)} blocks ({where}); logrotate refuses it")
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
        evidence.expect(f"logrotate {key}", shown, text, ok, why)
    return block


@pytest.mark.weekly
def test_log_rotation_policy(cfg, evidence):
    """로그 파일 정리: the logrotate block has the guide's policy, rotated logs are compressed,
    none is older than the retention, and the live log is under live_log_max_mb."""
    block = _policy(cfg, evidence)
    olddir = block.get("olddir") if block else None
    try:
        files = siblings(cfg.paths.app_log, (olddir,) if olddir else ())
    except ProbeError as exc:
        evidence.breach(str(exc))
        evidence.verdict()
        return
    live = [f for f in files if f.active]
    if live:
        evidence.at_most(
            "live app log size", live[0].size / 2**20, "MB", cfg.thresholds.live_log_max_mb
        )
    rotated = [f for f in files if not f.active]
    policy = cfg.logrotate.policy
    plain_ok = 1 if "delaycompress" in (p.split()[0] for p in policy) else 0
    plain = [f for f in rotated[plain_ok:] if not f.compressed]
    evidence.at_most("uncompressed rotated logs", len(plain), "files", 0)
    for f in plain[:SHOWN]:
        evidence.breach(f"{f.path.name} is not compressed")
    keep = {k: a for k, a, _ in logrotate.expected(policy)}.get("rotate")
    if keep is not None:
        evidence.at_most("rotated logs", len(rotated), "files", int(keep))
    days = logrotate.retention_days(policy)
    if days is not None and rotated:
        now = time.time()
        old = [(f, (now - f.mtime) / 86400) for f in rotated]
        oldest = max(age for _, age in old)
        evidence.at_most("oldest rotated log age", oldest, "days", days + 1)
        for f, age in sorted(old, key=lambda t: -t[1])[:SHOWN]:
            if age > days + 1:
                evidence.breach(f"{f.path.name} is {age:.1f} days old, retention {days:g} days")
    evidence.verdict()


@pytest.mark.weekly
def test_temp_files_cleanup(cfg, evidence):
    """임시 파일 정리: no file of the service in temp_dirs is older than temp_file_max_age_days."""
    limit, cap = cfg.thresholds.temp_file_max_age_days, cfg.thresholds.temp_scan_max_files
    owner = cfg.paths.temp_owner or cfg.service.user
    scan = tempfiles.scan(cfg.paths.temp_dirs, limit, owner, cfg.paths.temp_patterns, cap)
    evidence.record("entries examined", scan.files_seen, "files", cap)
    evidence.record("the service's temp files", scan.files_counted, "files")
    evidence.record("dirs of other owners not entered", scan.other_owner_dirs, "dirs")
    evidence.at_most("oldest temp file age", scan.oldest_days, "days", limit)
    for f in scan.old[:SHOWN]:
        evidence.breach(f"{f.path} is {f.age_days:.1f} days old")
    if len(scan.old) > SHOWN:
        evidence.breach(f"and {len(scan.old) - SHOWN} more files older than {limit} days")
    for path, why in scan.unreadable:
        evidence.breach(f"{path}: not examined ({why})")
    evidence.record("walk capped", scan.capped, "", False)
    if scan.capped:
        evidence.breach(f"stopped after {cap} entries (temp_scan_max_files): the rest was not seen")
    evidence.verdict()
