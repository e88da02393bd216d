"""Byte-level reads of many log lines at once, with numpy.

A buffer is a run of whole lines, each after a newline, followed by at least `PAD`
more bytes, so that a fixed-width read that starts on the last line stays inside the
buffer (what it reads past a line's newline never matches what is looked for there).
`Words` sees the buffer as the little-endian 8-byte word at every byte position (an
unaligned, zero-copy view), so reading 8 bytes at each of N positions is one gather
of N values, and its bytes are a uint8 view of them. Positions are int64 arrays.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from opscheck.probes.logs.summary import LOG_BASE

PAD = 80  # bytes after each buffer's last line; no read here goes further past it
TEXT_WIDTH = 64  # request values longer than this are read one by one
NUMBER_WIDTH = 16  # "12345.678901": a longer number is not a Response line's duration
_ZERO = ord("0")
_POW10F = 10.0 ** np.arange(NUMBER_WIDTH + 1)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant (the golden ratio's)


class Words:
    """The 8 bytes from every position of a padded buffer, as uint64."""

    def __init__(self, buf: bytes):
        self.w = np.ndarray((len(buf) - 7,), "<u8", buffer=buf, strides=(1,))

    def at(self, pos: np.ndarray, offset: int = 0) -> np.ndarray:
        return self.w[pos + offset]

    def bytes_at(self, pos: np.ndarray, offset: int, count: int) -> np.ndarray:
        """The `count` (<= 8) bytes from pos + offset, as `count` rows of len(pos)."""
        rows = self.at(pos, offset).view(np.uint8).reshape(-1, 8)[:, :count]
        return np.ascontiguousarray(rows.T)

    def starts_with(self, pos: np.ndarray, text: bytes, offset: int = 0) -> np.ndarray:
        """Whether `text` is at each position (+ offset)."""
        ok = np.ones(len(pos), bool)
        for i in range(0, len(text), 8):
            piece = text[i : i + 8]
            mask = np.uint64((1 << (8 * len(piece))) - 1)
            want = np.uint64(int.from_bytes(piece, "little"))
            word = self.at(pos, offset + i)
            ok &= (word if len(piece) == 8 else word & mask) == want
        return ok

    def hour_groups(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, group): the distinct hours of the lines at `starts` (see `hours`; -1
        for no timestamp) and each line's index into them. Lines in time order come
        in runs of one hour: each run is read once; lines out of order one by one."""
        if not len(starts):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        w0, w1 = self.at(starts), self.at(starts, 8) & _HOUR_TAIL
        change = np.flatnonzero((w0[1:] != w0[:-1]) | (w1[1:] != w1[:-1])) + 1
        if len(change) > len(starts) // 8:
            return np.unique(self.hours(starts), return_inverse=True)
        first = np.concatenate(([0], change)).astype(np.int64)
        runs = [
            _stamp_hour(a, b) for a, b in zip(w0[first].tolist(), w1[first].tolist(), strict=True)
        ]
        codes, which = np.unique(np.array(runs, np.int64), return_inverse=True)
        return codes, np.repeat(which, np.diff(np.append(first, len(starts))))

    def hours(self, starts: np.ndarray) -> np.ndarray:
        """YYYYmmddHH of the lines at `starts` ("2026-11-25 14:03:07..." gives
        2026112514), or -1 for a line that does not start with "YYYY-mm-dd HH:"."""
        b = np.concatenate([self.bytes_at(starts, 0, 8), self.bytes_at(starts, 8, 6)])
        ok = (b[4] == ord("-")) & (b[7] == ord("-")) & (b[10] == ord(" ")) & (b[13] == ord(":"))
        ok &= (b[0] == ord("1")) | (b[0] == ord("2"))
        code = np.zeros(len(starts), np.int64)
        for k in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12):
            d = b[k] - np.uint8(_ZERO)  # wraps below "0": a non-digit is > 9
            ok &= d <= 9
            code = code * 10 + d
        return np.where(ok, code, -1)

    def decimals(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """The decimal numbers ("2.333") of `length` bytes at each position, as float64
        (correctly rounded, like float()); NaN where the bytes are not digits with at
        most one point."""
        width = int(min(length.max(initial=0), NUMBER_WIDTH))
        b = self.bytes_at(pos, 0, min(width, 8))
        if width > 8:
            b = np.concatenate([b, self.bytes_at(pos, 8, width - 8)])
        n = len(pos)
        ok = (length > 0) & (length <= NUMBER_WIDTH)
        whole, places = np.zeros(n, np.int64), np.zeros(n, np.int64)
        points, digits = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for k in range(width):
            inside = k < length
            d = b[k] - np.uint8(_ZERO)  # wraps below "0": a non-digit is > 9
            digit = inside & (d <= 9)
            point = inside & (b[k] == ord("."))
            ok &= digit | point | ~inside
            whole = np.where(digit, whole * 10 + d, whole)
            places += digit & (points > 0)
            points += point
            digits += digit
        ok &= (points <= 1) & (digits > 0)
        return np.where(ok, whole / _POW10F[np.minimum(places, NUMBER_WIDTH)], np.nan)

    def text_hash(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """A 64-bit hash of the `length` (<= TEXT_WIDTH) bytes at each position."""
        h = length.astype(np.uint64)
        shortest = int(length.min(initial=0))
        for i in range(0, int(min(length.max(initial=0), TEXT_WIDTH)), 8):
            word = self.at(pos, i)
            if i + 8 > shortest:  # (words wholly inside every value need no mask)
                left = np.clip(length - i, 0, 8).astype(np.uint64)
                word &= np.where(left >= 8, np.uint64(2**64 - 1), (np.uint64(1) << (left * 8)) - 1)
            h = (h ^ word) * _MIX
            h ^= h >> np.uint64(29)
        return h


_HOUR_TAIL = np.uint64((1 << 48) - 1)  # "25 14:" of "2026-11-25 14:03:07"


@functools.lru_cache(maxsize=1 << 14)
def _stamp_hour(w0: int, w1: int) -> int:
    """The hour of a line that starts with the 8 + 6 bytes `w0`, `w1` (or -1)."""
    head = w0.to_bytes(8, "little") + w1.to_bytes(8, "little")[:6]
    m = _STAMP_HOUR.fullmatch(head)
    return int(b"".join(m.groups())) if m else -1


_STAMP_HOUR = re.compile(rb"([12]\d{3})-(\d\d)-(\d\d) (\d\d):")


def buckets(ms: np.ndarray) -> np.ndarray:
    """The 1 % histogram bucket of each duration (see summary.bucket)."""
    safe = np.maximum(ms, 1.0)
    return np.where(ms >= 1, (np.log(safe) / LOG_BASE).astype(np.int64) + 1, 0)


def hour_key(code: int) -> str:
    """2026112514 -> "2026-11-25 14"."""
    s = f"{code:010d}"
    return f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[8:]}"
