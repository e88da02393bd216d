"""HTTP probes: one request, timed from the client side, never raising."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from opscheck.scrub import redact_url


@dataclass
class HttpResult:
    url: str  # credentials removed, safe to print
    status: int | None = None  # None: no HTTP answer at all
    elapsed_ms: float = 0.0  # client-side, connect to last byte
    body: Any = None  # the parsed JSON, or None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # why there was no usable answer

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def status_text(self) -> str:
        """The status with the service's error code, e.g. '500 (HEALTH_CHECK_FAILED)'."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return f"{self.status} ({code})" if code else str(self.status)


def get_json(base_url: str, path: str, timeout_s: float, ca_bundle: str = "") -> HttpResult:
    """GET `base_url + path`; the whole answer must arrive within `timeout_s`."""
    return request_json("GET", base_url, path, timeout_s, ca_bundle=ca_bundle)


def post_json(
    base_url: str, path: str, body: Any, timeout_s: float, ca_bundle: str = ""
) -> HttpResult:
    """POST a JSON body; the whole answer must arrive within `timeout_s`."""
    return request_json("POST", base_url, path, timeout_s, body, ca_bundle)


def request_json(
    method: str,
    base_url: str,
    path: str,
    timeout_s: float,
    body: Any = None,
    ca_bundle: str = "",
) -> HttpResult:
    """One request, timed client side; never raises, `error` says what went wrong."""
    url = base_url.rstrip("/") + path
    result = HttpResult(redact_url(url))
    start = time.perf_counter()
    try:
        with requests.request(
            method,
            url,
            json=body,
            timeout=(timeout_s, timeout_s),
            stream=True,
            verify=ca_bundle or True,
        ) as resp:
            content = _read_within(resp, start + timeout_s)
            result.status = resp.status_code
            result.headers = dict(resp.headers)
    except requests.Timeout:
        result.error = f"no answer within {timeout_s:g} s"
    except requests.ConnectionError as exc:
        result.error = f"cannot connect: {_root_cause(exc)}"
    except requests.RequestException as exc:
        result.error = f"request failed: {_root_cause(exc)}"
    except TimeoutError:
        result.error = f"answer not complete within {timeout_s:g} s"
    result.elapsed_ms = (time.perf_counter() - start) * 1000.0
    if result.status is not None:
        try:
            result.body = json.loads(content)
        except ValueError:
            result.body = None
    return result


def _read_within(resp: requests.Response, deadline: float) -> bytes:
    """The body, read as it arrives so a trickling server cannot stretch the deadline
    by more than one socket read."""
    chunks = []
    while chunk := resp.raw.read1(65536, decode_content=True):
        chunks.append(chunk)
        if time.perf_counter() > deadline:
            raise TimeoutError
    return b"".join(chunks)


def _root_cause(exc: BaseException) -> str:
    """The innermost reason, e.g. 'Connection refused', without URLs or secrets."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc.args[-1] if exc.args else exc)
    for marker in ("] ", ": "):
        if marker in text and "Errno" in text:
            text = text.split(marker, 1)[1]
    return text.strip("'\" ")[:200] or type(exc).__name__
