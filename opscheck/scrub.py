"""Keep secrets out of every message, evidence value and report.

Checks never read secret values on purpose; this is the second line of defence for
text that comes from the target (an error string that quotes a key or a URL with a
password in it). Two layers:

- shapes: API-key-shaped strings and the userinfo of any `scheme://user:pass@` URL,
  whatever the password holds (`/`, `#`, `?`, `@`, `:` ...);
- values: the secrets this run knows of (`learn`): the watched `.env`'s values, read in
  memory only, the passwords of the config's URLs and host specs, and every value the
  config took from the environment (`${VAR}`), in their raw, percent-encoded, base64
  (at any alignment), HTML- and JSON-escaped forms (each also with its digits made 0,
  as log signatures hold them), matched by one combined regex.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

REDACTED = "[redacted]"
KEY_SHAPES = re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{12,}")
# A URL's userinfo runs to the LAST '@' before whitespace or a character no URL holds
# raw ('"', '<', '>'): a password may hold '/', '#', '?', ':' or '@' itself. Over-redacts
# `http://host/x?mail=a@b` (safe side).
URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.\-]*://)[^\s\"<>]*@", re.I)
SECRET_NAME = re.compile(
    r"KEY|SECRET|TOKEN|PASS|PWD|AUTH|CRED|PRIVATE|SIGNATURE|SALT|DSN|SESSION|COOKIE", re.I
)
NOT_SECRET = re.compile(
    r"(?i:true|false|yes|no|on|off|none|null|debug|info|warning|warn|error|critical)"
    r"|[-+]?\d+(?:\.\d+)?"
)
MIN_NAMED = 6  # a value under a secret-looking name, at least this long, is secret
MIN_UNNAMED = 16  # any other value: this long, letters and digits mixed, not a path
MIN_LEARNED = 4  # nothing shorter is ever learned: it would mask ordinary text

_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def scrub(text: str) -> str:
    """`text` with learned secrets, API-key-shaped strings and URL userinfo masked."""
    if _pattern is not None:
        text = _pattern.sub(REDACTED, text)
    if "sk-" in text:  # (the patterns cannot match otherwise: a fast way past them)
        text = KEY_SHAPES.sub(lambda m: m.group(0)[:7] + "…" + REDACTED, text)
    if "://" in text:
        text = URL_CREDENTIALS.sub(r"\1" + REDACTED + "@", text)
    return text


def scrub_values(text: str) -> str:
    """`text` with only the learned secrets masked (for whole files such as HTML, whose
    markup the URL shape could over-match)."""
    return _pattern.sub(REDACTED, text) if _pattern is not None else text


def redact_url(url: str) -> str:
    """The URL without user and password (everything up to its last '@')."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return scrub_values(url)
    return scrub_values(f"{scheme}://{rest[rest.rfind('@') + 1 :]}")


def url_secrets(url: str) -> list[str]:
    """The userinfo of `url` and its password (raw and decoded), if it has any."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return []
    userinfo = rest[: rest.rfind("@")]
    password = userinfo.partition(":")[2]
    found = [userinfo, unquote(userinfo)] if ":" in userinfo else []
    return [v for v in (*found, password, unquote(password)) if v]


def learn(values: Iterable[str]) -> None:
    """Mask `values` (and their encoded forms) in every later `scrub`."""
    global _pattern
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_LEARNED} - _known
    if not new:
        return
    _known.update(new)
    forms = {f for v in _known for f in encoded_forms(v) if len(f) >= MIN_LEARNED}
    _pattern = re.compile(_trie_pattern(forms))


def known() -> tuple[str, ...]:
    """The learned secrets (to hand to a worker process's `learn`, in memory only)."""
    return tuple(sorted(_known))


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex for all `words`, their common prefixes merged (a trie, so the engine
    tries each character once, not once per word: Aho-Corasick-ish), longest match
    first, so no secret is half-masked by a shorter one it begins with."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True
    return _node_pattern(trie)


def _node_pattern(node: dict) -> str:
    branches = [re.escape(ch) + _node_pattern(child) for ch, child in node.items() if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:  # a word ends here: the longer ones are tried first
        return f"(?:{body})?"
    return body


def forget() -> None:
    """Forget every learned secret (a new run in the same process)."""
    global _pattern
    _known.clear()
    _pattern = None


def encoded_forms(value: str) -> set[str]:
    """The shapes `value` may take in text: raw, percent-encoded, base64, escaped."""
    forms = {value, quote(value), quote(value, safe=""), quote_plus(value)}
    forms |= {html.escape(value), html.escape(value, quote=False), json.dumps(value)[1:-1]}
    forms |= _base64_cores(value.encode("utf-8"))
    return forms | {z for z in map(_zeroed, forms) if len(re.sub(r"\d", "", z)) >= 6}


def _zeroed(form: str) -> str:
    """`form` with its digits made 0, as log signatures see a message (probes/logs/scan)."""
    return form.translate(_DIGITS_AS_ZERO)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that depend on `data` alone, at each of the 3 alignments it
    may have inside a longer encoded string (standard and URL-safe alphabets)."""
    cores = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}
    for k in range(3):
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            core = enc(b"\0" * k + data).decode()[start:end]
            if len(core) >= 8:
                cores.add(core)
    return cores


def env_file_secrets(path: str | Path) -> list[str]:
    """The secret values of a `.env` file, read in memory only; [] when unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found: list[str] = []
    for line in text.splitlines():
        key, value = _env_line(line)
        if key and is_secret(key, value):
            found += [value, *url_secrets(value)]
    return found


def _env_line(line: str) -> tuple[str, str]:
    """(key, value) of one `.env` line as dotenv reads it; ("", "") for none."""
    line = line.strip()
    if not line or line.startswith("#") or "=" not in line:
        return "", ""
    key, _, value = line.partition("=")
    key = key.strip().removeprefix("export ").strip()
    value = value.strip()
    if value[:1] in ("'", '"') and value.find(value[0], 1) > 0:
        value = value[1 : value.find(value[0], 1)]
    elif " #" in value:
        value = value.split(" #", 1)[0].rstrip()
    return key, value


def is_secret(key: str, value: str) -> bool:
    """Whether a `.env` value must be masked: under a secret-looking name (KEY, TOKEN,
    PASSWORD ...) when at least MIN_NAMED long; otherwise a URL with a password, or a
    long token-like value (letters and digits mixed, no spaces, not a path)."""
    if not value or NOT_SECRET.fullmatch(value):
        return False
    if url_secrets(value):
        return True
    if SECRET_NAME.search(key):
        return len(value) >= MIN_NAMED
    token_like = re.search(r"[A-Za-z]", value) and re.search(r"\d", value)
    path_like = value.startswith(("/", "./", "../", "~")) or " " in value
    return len(value) >= MIN_UNNAMED and bool(token_like) and not path_like


def may_be_secret(value: str) -> bool:
    """Whether a value the config took from the environment is masked: all but numbers,
    booleans, log levels, absolute paths and URLs without a password."""
    if NOT_SECRET.fullmatch(value) or value.startswith("/"):
        return False
    return "://" not in value or bool(url_secrets(value))


def scrub_file(path: Path) -> bool:
    """Mask learned secrets in a written file, in place (atomically); True if changed."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    clean = scrub_values(text)
    if clean == text:
        return False
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".scrub-", suffix=path.suffix)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(clean)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:  # disk full: the file keeps what it had; say so, never crash
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        sys.stderr.write(f"opscheck: could not mask secrets in {path}: {exc.strerror}\n")
        return False
    return True


class Scrubbed:
    """A test report's failure text, masked: prints as pytest's own and keeps its one-line
    crash message (`reprcrash.message`) for the summary line, JUnit XML and JSON."""

    def __init__(self, text: str, crash: object | None) -> None:
        self.text = scrub(text)
        self.reprcrash = _Crash(crash) if crash is not None else None

    def toterminal(self, tw) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


class _Crash:
    def __init__(self, crash) -> None:
        self.path, self.lineno = crash.path, crash.lineno
        self.message = scrub(str(crash.message))


def scrub_report(report) -> None:
    """Mask secrets in everything a pytest report carries to an output: its failure or
    skip text, captured output and log sections, and its HTML extras."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        report.longrepr = (longrepr[0], longrepr[1], scrub(str(longrepr[2])))
    elif longrepr is not None and not isinstance(longrepr, Scrubbed):
        text = report.longreprtext
        if scrub(text) != text:
            report.longrepr = Scrubbed(text, getattr(longrepr, "reprcrash", None))
    report.sections = [(title, scrub(text)) for title, text in report.sections]
    for extra in getattr(report, "extras", None) or []:
        if isinstance(extra, dict) and isinstance(extra.get("content"), str):
            extra["content"] = scrub_values(extra["content"])


class ScrubbingStream:
    """A text stream that masks secrets in every write (pytest's terminal)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(scrub(text))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
