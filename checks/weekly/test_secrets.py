"""Weekly: no secret in the app's source or config (detect-secrets), `.env` aside."""

import pytest

from opscheck.probes import secrets


@pytest.mark.weekly
def test_secrets_in_code(cfg, evidence):
    """시크릿 스캔: detect-secrets finds no secret below app_dir but in .env and the baseline."""
    scan = secrets.scan(
        cfg.paths.app_dir,
        cfg.paths.env_file,
        cfg.paths.secrets_baseline,
        cfg.paths.secrets_exclude,
        cfg.thresholds.secrets_max_files,
    )
    evidence.record("files scanned", scan.files_scanned, "files")
    evidence.record("bytes scanned", scan.bytes_scanned, "bytes")
    evidence.record("binary files skipped", scan.binary_skipped, "files")
    evidence.record("accepted by the baseline", len(scan.accepted), "findings")
    evidence.at_most("secrets found", len(scan.findings), "findings", 0)
    for f in scan.findings:
        evidence.breach(f"{f.path}:{f.line}: {f.detector}")
    for path, why in scan.unreadable:
        evidence.breach(f"{path}: not scanned ({why})")
    if scan.baseline_error:
        evidence.breach(scan.baseline_error)
    if scan.capped:
        evidence.breach(
            f"stopped after {scan.files_scanned} files (secrets_max_files "
            f"{cfg.thresholds.secrets_max_files}): the rest of {scan.root} was not scanned"
        )
    evidence.verdict()
