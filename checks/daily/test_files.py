"""Daily: secrets and data directories have the modes the guide asks for."""

from pathlib import Path

import pytest

DIR_MODES = (0o755, 0o750)


@pytest.mark.daily
def test_env_file_mode(host, cfg, evidence):
    """.env 600: the secrets file is mode 600 and owned by service.user."""
    f = host.file(cfg.paths.env_file)
    if not f.exists:
        evidence.breach(f"{f.path}: {f.error}")
    else:
        evidence.expect(
            f"{f.path} mode",
            f.mode_text,
            "600",
            f.mode == 0o600,
            f"{f.path} is mode {f.mode_text}, expected 600",
        )
        evidence.expect(
            f"{f.path} owner",
            f.owner,
            cfg.service.user,
            f.owner == cfg.service.user,
            f"{f.path} is owned by {f.owner}, expected {cfg.service.user}",
        )
    evidence.verdict()


@pytest.mark.daily
def test_data_dir_modes(host, cfg, evidence):
    """디렉토리 755: data/, logs/ and chroma_db/ are mode 755 or 750."""
    dirs = (
        Path(cfg.paths.template_data).parent,
        Path(cfg.paths.app_log).parent,
        Path(cfg.paths.chroma_dir),
    )
    for path in map(str, dirs):
        f = host.file(path)
        if not f.exists:
            evidence.breach(f"{f.path}: {f.error}")
        elif not f.is_dir:
            evidence.breach(f"{f.path} is not a directory")
        else:
            evidence.expect(
                f"{f.path} mode",
                f.mode_text,
                "755 or 750",
                f.mode in DIR_MODES,
                f"{f.path} is mode {f.mode_text}, expected 755 or 750",
            )
    evidence.verdict()
