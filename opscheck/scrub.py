"""Keep secrets out of every message, evidence value and report.

Checks never read secret values on purpose; this is the second line of defence for
text that comes from the target (an error string that quotes a key or a URL with a
password in it).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

KEY_SHAPES = re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{12,}")
URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]+@", re.I)


def scrub(text: str) -> str:
    """`text` with API-key-shaped strings and URL passwords masked."""
    if "sk-" in text:  # (the patterns cannot match otherwise: a fast way past them)
        text = KEY_SHAPES.sub(lambda m: m.group(0)[:7] + "…[redacted]", text)
    if "://" in text:
        text = URL_CREDENTIALS.sub(r"\1[redacted]@", text)
    return text


def redact_url(url: str) -> str:
    """The URL without user and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
