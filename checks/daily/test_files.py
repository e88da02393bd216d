"""Daily: secrets and data directories are no more open than the guide's modes.

The guide asks for `.env` 600 and directories 755. Stricter is fine (`.env` 400; dirs
750 or 700), and so are setgid and sticky on a directory (group inheritance, delete
protection: neither opens anything). Any other bit beyond the guide's mode fails, setuid
included: it means nothing on a Linux directory, so one set there is a mistake to see.
"""

import pytest

from opscheck.probes.host import data_dirs, mode_bit_names, where

ENV_ALLOWED = 0o600
DIR_ALLOWED = 0o755 | 0o2000 | 0o1000  # rwxr-xr-x, setgid, sticky


def _beyond(f, allowed: int, guide: str) -> tuple[bool, str]:
    """Whether `f`'s mode stays within `allowed`, and the breach text when it does not."""
    extra = f.mode & ~allowed
    words = ", ".join(mode_bit_names(extra))
    return not extra, f"{f.path} is mode {f.mode_text}: {words} beyond {guide}"


@pytest.mark.daily
@pytest.mark.role("app")
def test_env_file_mode(ops_host, cfg, evidence):
    """.env 600: the secrets file has no permission bit beyond 600 and is owned by service.user."""
    at, f = where(ops_host), ops_host.file(cfg.paths.env_file)
    if not f.exists:
        evidence.breach(f"{at}{f.path}: {f.error}")
    else:
        ok, why = _beyond(f, ENV_ALLOWED, "600")
        evidence.expect(f"{at}{f.path} mode", f.mode_text, "600 or stricter", ok, at + why)
        evidence.expect(
            f"{at}{f.path} owner",
            f.owner,
            cfg.service.user,
            f.owner == cfg.service.user,
            f"{at}{f.path} is owned by {f.owner}, expected {cfg.service.user}",
        )
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.role("app")
def test_data_dir_modes(ops_host, cfg, evidence):
    """디렉토리 755: data/, logs/ and chroma_db/ have no permission bit beyond 755."""
    at = where(ops_host)
    for path in map(str, data_dirs(cfg.paths)):
        f = ops_host.file(path)
        if not f.exists:
            evidence.breach(f"{at}{f.path}: {f.error}")
        elif not f.is_dir:
            evidence.breach(f"{at}{f.path} is not a directory")
        else:
            ok, why = _beyond(f, DIR_ALLOWED, "755")
            evidence.expect(f"{at}{f.path} mode", f.mode_text, "755 or stricter", ok, at + why)
    evidence.verdict()
