"""Secrets in the app's source and config: detect-secrets over the app dir, never the values.

What is scanned: every regular file below `paths.app_dir` except `EXCLUDED` (and the
extra globs of `paths.secrets_exclude`):
- the watched `.env` itself (it is where the keys belong; its mode is `env_file_mode`'s
  job). Only that file: a `.env.bak` or `.env.production` copy in the tree is exactly the
  leak to find, so those are scanned;
- `data/`, `chroma_db/`: the template data and the vector store are data, not code (530 KB
  of template text and binary segments: noise and time, no config);
- `logs/`: `llm_usage` (daily) looks for keys in the logs every morning;
- virtualenvs, caches and VCS internals (`.venv`, `venv`, `site-packages`, `__pycache__`,
  `.git`, `node_modules` ...): third-party code, not the service's;
- the baseline file (it holds hashes, which look like secrets);
- binary files (a NUL in the first 8 KiB, or an extension detect-secrets calls non-text),
  counted in the evidence.

Findings carry file, line and detector type and detect-secrets' SHA-1 of the secret;
the secret's text is never kept. A baseline in detect-secrets' own format accepts a
finding with the same file, type and hash (line numbers move; detect-secrets matches the
same way), unless an audit marked it `is_secret: true`. A file that cannot be read, or is
not UTF-8 text, is named in the result: it was not scanned.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opscheck.probes import noatime

PLUGINS = Path(__file__).with_name("secret_plugins.py")
BASELINE_NAME = ".secrets.baseline"
EXCLUDED_DIRS = (
    "data",
    "chroma_db",
    "logs",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "virtualenv",
    "site-packages",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
)
EXCLUDED_TOP = ("data", "chroma_db", "logs")  # only directly below the app dir
SNIFF_BYTES = 8192
MAX_TEXT_BYTES = 16 << 20  # a larger text file is named, not read (exclude it if it is data)
# detect-secrets' default filters but `is_indirect_reference`: it drops every finding on a
# line shaped `x = f(...)`, so `Anthropic(api_key="sk-ant-...")`, the commonest leak, passed.
# None of these calls the network (verification stays off: a key is never sent anywhere).
_HEURISTIC = "detect_secrets.filters.heuristic."
FILTERS = (
    "detect_secrets.filters.allowlist.is_line_allowlisted",  # `# pragma: allowlist secret`
    *(
        _HEURISTIC + name
        for name in (
            "is_sequential_string",
            "is_potential_uuid",
            "is_likely_id_string",
            "is_templated_secret",
            "is_prefixed_with_dollar_sign",
            "is_lock_file",
            "is_not_alphanumeric_string",
            "is_swagger_file",
        )
    ),
)
CUSTOM_PLUGINS = ("AnthropicKeyDetector", "OpenAIProjectKeyDetector")  # secret_plugins.py


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the app dir
    line: int
    detector: str
    hashed_secret: str  # detect-secrets' SHA-1 of the secret, never the secret

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.path, self.detector, self.hashed_secret)


@dataclass
class SecretScan:
    root: str
    files_scanned: int = 0
    bytes_scanned: int = 0
    binary_skipped: int = 0
    excluded: int = 0
    capped: bool = False
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    findings: list[Finding] = field(default_factory=list)  # not accepted by the baseline
    accepted: list[Finding] = field(default_factory=list)
    baseline: str = ""  # the baseline file read, "" for none
    baseline_error: str = ""


def _excluded(rel: str, name: str, is_dir: bool, extra: list[str]) -> bool:
    top = "/" not in rel
    if is_dir and (name in EXCLUDED_DIRS and (top or name not in EXCLUDED_TOP)):
        return True
    return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in extra)


def walk(root: Path, skip: set[Path], extra: list[str], scan: SecretScan, cap: int) -> list[Path]:
    """The files to scan below `root`, pruning excluded dirs; unreadable dirs are noted."""
    files: list[Path] = []

    def onerror(exc: OSError) -> None:
        scan.unreadable.append((str(exc.filename), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        base = Path(dirpath)
        for name in list(dirnames):
            rel = (base / name).relative_to(root).as_posix()
            if _excluded(rel, name, True, extra):
                dirnames.remove(name)
                scan.excluded += 1
        for name in sorted(filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path in skip or _excluded(rel, name, False, extra):
                scan.excluded += 1
                continue
            if len(files) >= cap:
                scan.capped = True
                return files
            files.append(path)
    return files


def _sniff(path: Path) -> tuple[bool, int, str]:
    """(is binary, size in bytes, "" or why it cannot be scanned). detect-secrets itself
    skips a file that is not UTF-8 without a word, so that is checked here."""
    try:
        with noatime.open_binary(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(SNIFF_BYTES)
            if b"\0" in head:
                return True, size, ""
            if size > MAX_TEXT_BYTES:
                return False, size, f"text larger than {MAX_TEXT_BYTES >> 20} MiB"
            data = head + f.read()
    except OSError as exc:
        return False, 0, exc.strerror or str(exc)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False, size, "not UTF-8 text"
    return False, size, ""


def load_baseline(path: Path) -> set[tuple[str, str, str]]:
    """The accepted (file, type, hash) of a detect-secrets baseline; raises ValueError."""
    try:
        doc = json.loads(noatime.read_text(path))
    except OSError as exc:
        raise ValueError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"baseline {path} is not detect-secrets JSON ({exc})") from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        raise ValueError(f"baseline {path} has no 'results' object")
    accepted = set()
    for filename, items in results.items():
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("is_secret") is True:
                continue  # audited as a real secret: never accepted
            accepted.add((str(filename), str(item.get("type")), str(item.get("hashed_secret"))))
    return accepted


def _settings() -> dict:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    builtin = [{"name": c.__name__} for c in get_mapping_from_secret_type_to_class().values()]
    ours = [{"name": n, "path": f"file://{PLUGINS}"} for n in CUSTOM_PLUGINS]
    return {"plugins_used": [*builtin, *ours], "filters_used": [{"path": p} for p in FILTERS]}


def _detect(path: Path) -> list[tuple[int, str, str]]:
    """(line, type, hash) of every secret detect-secrets finds in one file. It reads a
    private copy (same name), made with O_NOATIME: its own open would set the atime."""
    from detect_secrets.core import scan as ds_scan

    with tempfile.TemporaryDirectory(prefix="opscheck-secrets-") as tmp:
        copy = Path(tmp) / path.name
        noatime.copy_file(path, copy)
        return [(s.line_number, s.type, s.secret_hash) for s in ds_scan.scan_file(str(copy))]


def scan(
    app_dir: str,
    env_file: str,
    baseline: str = "",
    exclude: list[str] | None = None,
    max_files: int = 20000,
) -> SecretScan:
    """Scan the app's source and config below `app_dir` with detect-secrets."""
    from detect_secrets.filters.heuristic import is_non_text_file

    root = Path(app_dir)
    result = SecretScan(root=str(root))
    if not root.is_dir():
        result.unreadable.append((str(root), "not a readable directory"))
        return result
    base_path = Path(baseline) if baseline else root / BASELINE_NAME
    accepted: set[tuple[str, str, str]] = set()
    if baseline or base_path.exists():
        try:
            accepted = load_baseline(base_path)
            result.baseline = str(base_path)
        except ValueError as exc:
            result.baseline_error = str(exc)
    skip = {Path(env_file), root / ".env", base_path}
    files = walk(root, skip, list(exclude or []), result, max_files)
    with _detect_secrets_settings():
        for path in files:
            _scan_one(root, path, accepted, result, is_non_text_file)
    return result


@contextmanager
def _detect_secrets_settings() -> Iterator[None]:
    """Every built-in plugin and ours, the default filters (none that calls the network)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    with transient_settings(_settings()):
        get_mapping_from_secret_type_to_class.cache_clear()  # it cached the plugins before
        try:
            yield
        finally:
            get_mapping_from_secret_type_to_class.cache_clear()


def _scan_one(root: Path, path: Path, accepted: set, result: SecretScan, non_text) -> None:
    rel = path.relative_to(root).as_posix()
    if not path.is_file():
        return  # a socket, FIFO or dangling link: no source text
    binary, size, error = _sniff(path)
    if error:
        result.unreadable.append((rel, error))
        return
    if binary or non_text(str(path)):
        result.binary_skipped += 1
        return
    try:
        found = _detect(path)
    except UnicodeDecodeError:
        result.unreadable.append((rel, "not UTF-8 text"))
        return
    except OSError as exc:
        result.unreadable.append((rel, exc.strerror or str(exc)))
        return
    result.files_scanned += 1
    result.bytes_scanned += size
    for line, kind, hashed in sorted(set(found)):
        f = Finding(rel, line, kind, hashed)
        (result.accepted if f.key in accepted else result.findings).append(f)
