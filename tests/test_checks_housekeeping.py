"""The weekly secrets and housekeeping checks proven both ways against real sandboxes:
real detect-secrets over a source tree, the guide's logrotate file, real temp files."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from opscheck.probes import secrets, tempfiles


def only(check_id: str) -> list[str]:
    return ["-m", "weekly", "-k", f"test_{check_id}"]


@pytest.fixture
def offline(sandbox_factory):
    """A sandbox without its HTTP replica (these checks never call the service)."""

    def make(*faults: str):
        return sandbox_factory("down", *faults)

    return make


def entry(run_checks, config: Path, check_id: str) -> dict:
    return run_checks(config, *only(check_id)).one(check_id)


def ev(e: dict) -> dict:
    return {x["name"]: x for x in e["evidence"]}


# ---- secrets_in_code ---------------------------------------------------------------------


def test_secrets_in_code_green(offline, run_checks):
    e = entry(run_checks, offline().config, "secrets_in_code")
    assert e["outcome"] == "passed", e
    assert ev(e)["files scanned"]["value"] >= 8
    assert ev(e)["accepted by the baseline"]["value"] >= 1  # kakao_example.py
    assert ev(e)["secrets found"] == {
        "name": "secrets found",
        "value": 0,
        "unit": "findings",
        "limit": 0,
    }


def test_secrets_in_code_red_names_file_line_detector_never_the_key(offline, run_checks):
    """Before: no such check (the guide's truffleHog line counted output lines)."""
    sb = offline("secret-in-source")
    key = re.search(r'"(sk-ant-[^"]+)"', (sb.root / "app/src/utils/llm_client.py").read_text())
    run = run_checks(sb.config, *only("secrets_in_code"))
    e = run.one("secrets_in_code")
    assert e["outcome"] == "failed"
    assert re.match(r"secrets found is [23] findings, limit 0 findings; ", e["message"])
    assert "src/utils/llm_client.py:7: Anthropic API Key" in e["message"]
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in run.reports_dir.rglob("*") if p.is_file()]
    assert key and all(key.group(1) not in t and key.group(1)[:20] not in t for t in texts)


def test_secrets_in_code_env_file_is_not_scanned_but_a_copy_of_it_is(offline, run_checks):
    sb = offline()
    shutil.copy(sb.root / "app/.env", sb.root / "app/src/.env.bak")
    e = entry(run_checks, sb.config, "secrets_in_code")
    assert e["outcome"] == "failed"
    assert "src/.env.bak:1: Anthropic API Key" in e["message"]
    assert ".env:" not in e["message"].replace("src/.env.bak:", "")


def test_secrets_in_code_without_the_baseline_the_accepted_finding_fails(offline, run_checks):
    sb = offline()
    (sb.root / "app/.secrets.baseline").unlink()
    e = entry(run_checks, sb.config, "secrets_in_code")
    assert e["outcome"] == "failed"
    assert "src/config/kakao_example.py:1: Secret Keyword" in e["message"]


def test_secrets_in_code_a_baseline_entry_audited_as_real_still_fails(offline, run_checks):
    sb = offline()
    path = sb.root / "app/.secrets.baseline"
    doc = json.loads(path.read_text())
    for items in doc["results"].values():
        for item in items:
            item["is_secret"] = True
    path.write_text(json.dumps(doc))
    e = entry(run_checks, sb.config, "secrets_in_code")
    assert e["outcome"] == "failed"
    assert "src/config/kakao_example.py:1" in e["message"]


def test_secrets_in_code_a_broken_baseline_is_named(offline, run_checks):
    sb = offline()
    (sb.root / "app/.secrets.baseline").write_text("{not json")
    e = entry(run_checks, sb.config, "secrets_in_code")
    assert e["outcome"] == "failed"
    assert "is not detect-secrets JSON" in e["message"]
    cfg = sb.with_config(f'[paths]\nsecrets_baseline = "{sb.root}/nowhere.baseline"\n')
    e = entry(run_checks, cfg, "secrets_in_code")
    assert e["outcome"] == "failed" and "cannot read baseline" in e["message"]


def test_secrets_in_code_a_file_it_cannot_read_is_named(offline, run_checks):
    sb = offline()
    (sb.root / "app/src/config/legacy.py").write_bytes(b"NAME = '\xc7\xd1\xb1\xdb'\n")  # EUC-KR
    e = entry(run_checks, sb.config, "secrets_in_code")
    assert e["outcome"] == "failed"
    assert "src/config/legacy.py: not scanned (not UTF-8 text)" in e["message"]


def test_secrets_in_code_stops_at_the_cap_and_says_so(offline, run_checks):
    sb = offline()
    e = entry(
        run_checks, sb.with_config("[thresholds]\nsecrets_max_files = 3\n"), "secrets_in_code"
    )
    assert e["outcome"] == "failed"
    assert "stopped after 3 files (secrets_max_files 3)" in e["message"]


def test_secrets_in_code_extra_excludes(offline, run_checks):
    sb = offline("secret-in-source")
    cfg = sb.with_config('[paths]\nsecrets_exclude = ["src/utils/*"]\n')
    assert entry(run_checks, cfg, "secrets_in_code")["outcome"] == "passed"


# ---- log_rotation_policy -----------------------------------------------------------------


def test_log_rotation_policy_green(offline, run_checks):
    e = entry(run_checks, offline().config, "log_rotation_policy")
    assert e["outcome"] == "passed", e
    assert ev(e)["logrotate rotate"]["value"] == "rotate 30"
    assert ev(e)["rotated logs"]["value"] == 7
    assert ev(e)["uncompressed rotated logs"]["value"] == 0  # app.log.1 is delaycompress's


def test_log_rotation_policy_red_on_a_weak_policy(offline, run_checks):
    e = entry(run_checks, offline("weak-logrotate").config, "log_rotation_policy")
    assert e["outcome"] == "failed"
    assert re.fullmatch(
        r".*kakao-template\.logrotate:2: has 'rotate 7', expected 'rotate 30'; "
        r".*kakao-template\.logrotate:2: lacks 'compress'",
        e["message"],
    ), e["message"]


def test_log_rotation_policy_red_on_an_uncompressed_rotated_log(offline, run_checks):
    e = entry(run_checks, offline("uncompressed-rotated").config, "log_rotation_policy")
    assert e["outcome"] == "failed"
    assert e["message"] == (
        "uncompressed rotated logs is 1 files, limit 0 files; app.log.3 is not compressed"
    )


def test_log_rotation_policy_red_on_logs_beyond_retention(offline, run_checks):
    """app.log.40.gz was last written at the end of its day, 39 days before today's
    midnight: 39.0 days old just after midnight, 40.0 (rounded) late in the evening."""
    e = entry(run_checks, offline("logs-beyond-retention").config, "log_rotation_policy")
    assert e["outcome"] == "failed"
    age = r"(?:39\.\d|40\.0)"
    assert re.match(
        rf"oldest rotated log age is {age} days, limit 31 days; "
        rf"app\.log\.40\.gz is {age} days old, retention 30 days",
        e["message"],
    ), e["message"]
    assert e["message"].count("days old, retention 30 days") == 6


def test_log_rotation_policy_red_on_an_oversized_live_log(offline, run_checks):
    e = entry(run_checks, offline("oversized-live-log").config, "log_rotation_policy")
    assert e["outcome"] == "failed"
    assert re.fullmatch(r"live app log size is 10\d MB, limit 100 MB", e["message"]), e


def test_log_rotation_policy_no_block_and_a_parse_error_are_named(offline, run_checks):
    sb = offline()
    conf = sb.root / "etc/kakao-template.logrotate"
    conf.write_text("/var/log/other.log {\n  daily\n}\n")
    e = entry(run_checks, sb.config, "log_rotation_policy")
    assert e["outcome"] == "failed"
    assert e["message"].startswith(f"no block of {conf} (or its includes) rotates ")
    conf.write_text("/var/log/other.log {\n  rotate many\n}\n")
    e = entry(run_checks, sb.config, "log_rotation_policy")
    assert e["message"].startswith(f"{conf}:2: rotate needs a number")


# ---- temp_files_cleanup ------------------------------------------------------------------


def test_temp_files_cleanup_green(offline, run_checks):
    e = entry(run_checks, offline().config, "temp_files_cleanup")
    assert e["outcome"] == "passed", e
    assert ev(e)["the service's temp files"]["value"] == 3
    assert 0 < ev(e)["oldest temp file age"]["value"] < 7


def test_temp_files_cleanup_red_and_no_atime_moves(offline, run_checks):
    sb = offline("old-temp-files")
    files = [p for p in (sb.root / "tmp").rglob("*") if p.is_file()]
    for p in files:  # atime before mtime: relatime would update it on any read
        st = p.stat()
        os.utime(p, ns=(st.st_mtime_ns - 86400 * 10**9, st.st_mtime_ns))
    before = {p: p.stat().st_atime_ns for p in files}
    e = entry(run_checks, sb.config, "temp_files_cleanup")
    assert {p: p.stat().st_atime_ns for p in files} == before
    assert e["outcome"] == "failed"
    assert re.fullmatch(
        r"oldest temp file age is 12(?:\.0)? days, limit 7 days; "
        r"\S+/upload-0008\.json is 12\.0 days old; \S+/upload-0007\.json is 9\.0 days old",
        e["message"],
    ), e["message"]


def test_temp_files_cleanup_other_owners_files_do_not_count(offline, run_checks, tmp_path):
    """/tmp on a real host: another program's old files and its private dirs are not the
    service's; with temp_owner = "*" they count."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    sb = offline()
    old = sb.root / "tmp" / "other.sock"
    old.write_text("")
    private = sb.root / "tmp" / "systemd-private-x"
    private.mkdir(mode=0o700)
    (private / "old").write_text("")
    for p in (old, private / "old", private):
        os.utime(p, (1e9, 1e9))
        os.chown(p, 65534, 65534)
    e = entry(run_checks, sb.config, "temp_files_cleanup")
    assert e["outcome"] == "passed", e
    assert ev(e)["dirs of other owners not entered"]["value"] == 1
    e = entry(run_checks, sb.with_config('[paths]\ntemp_owner = "*"\n'), "temp_files_cleanup")
    assert e["outcome"] == "failed" and "other.sock is" in e["message"]


def test_temp_files_cleanup_patterns_narrow(offline, run_checks):
    sb = offline("old-temp-files")
    cfg = sb.with_config('[paths]\ntemp_patterns = ["kakao-template/report-*"]\n')
    e = entry(run_checks, cfg, "temp_files_cleanup")
    assert e["outcome"] == "passed" and ev(e)["the service's temp files"]["value"] == 0


def test_temp_files_cleanup_cap_and_missing_dir_fail(offline, run_checks):
    sb = offline()
    e = entry(
        run_checks, sb.with_config("[thresholds]\ntemp_scan_max_files = 2\n"), "temp_files_cleanup"
    )
    assert e["outcome"] == "failed"
    assert "stopped after 2 entries (temp_scan_max_files): the rest was not seen" in e["message"]
    cfg = sb.with_config(f'[paths]\ntemp_dirs = ["{sb.root}/no-such-tmp"]\n')
    e = entry(run_checks, cfg, "temp_files_cleanup")
    assert e["outcome"] == "failed"
    assert f"{sb.root}/no-such-tmp: not examined (No such file or directory)" in e["message"]


def test_tempfiles_probe_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "old").write_text("")
    os.utime(outside / "old", (1e9, 1e9))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "link").symlink_to(outside)
    scan = tempfiles.scan([str(tmp)], 7, "*")
    assert scan.files_seen == 1 and scan.oldest_days < 1  # the link itself, just made


def test_secrets_probe_excludes_data_logs_and_venvs_but_not_nested_names(tmp_path):
    key = 'KEY = "sk-ant-api03-' + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2 + '"\n'
    app = tmp_path / "app"
    for rel in (
        "data/x.py",
        "logs/x.py",
        "chroma_db/x.py",
        ".venv/lib/x.py",
        "src/__pycache__/x.py",
        ".env",
        "src/data/x.py",
    ):
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(key)
    (app / "src/blob.bin").write_bytes(b"\0" + key.encode())
    scan = secrets.scan(str(app), str(app / ".env"))
    assert [(f.path, f.detector) for f in scan.findings if "Anthropic" in f.detector] == [
        ("src/data/x.py", "Anthropic API Key")
    ]
    assert scan.files_scanned == 1 and scan.binary_skipped == 1


def test_secrets_probe_names_a_file_it_may_not_read(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file")
    (tmp_path / "secret.py").write_text("x = 1\n")
    (tmp_path / "secret.py").chmod(0)
    scan = secrets.scan(str(tmp_path), str(tmp_path / ".env"))
    assert scan.unreadable == [("secret.py", "Permission denied")]


def test_secrets_probe_names_a_text_file_too_large_to_read(tmp_path):
    (tmp_path / "dump.sql").write_bytes(b"INSERT INTO t VALUES (1);\n" * ((17 << 20) // 26 + 1))
    scan = secrets.scan(str(tmp_path), str(tmp_path / ".env"))
    assert scan.unreadable == [("dump.sql", "text larger than 16 MiB")]
