"""Where the variables of a `log_format` stand in many log lines at once, with numpy.

A buffer holds whole lines, each after a newline, and `PAD` bytes after the last
(see `columns`). The lines given here hold the format's double quotes, in order, so
the text between two quotes is one segment of the format: its literals are checked
where they must stand, its fixed-width values (times, status) read in place, and any
other value ends at the first byte of the literal that follows it (found 8 bytes at
a time, bit-parallel). Every read stays inside its line or the padding after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opscheck.probes.logs.columns import Words

FIXED = {"time_local": 26, "time_iso8601": 25, "status": 3}  # value widths, in bytes
MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES.split(" "), 1)}
FIND_REACH = 64  # bytes searched for the literal that ends a value; a longer value is read alone


@dataclass(frozen=True)
class Segment:
    """The text between two of the format's quotes: `lits[0] names[0] lits[1] ...`."""

    lits: tuple[bytes, ...]  # len(names) + 1 literals (some empty)
    names: tuple[str, ...]
    split: int  # the variable whose end is found from the right (fixed widths after it)


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ONES = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_ZERO = np.uint8(ord("0"))


class Bytes(Words):
    """`Words`, and the buffer as bytes (a gather of 1 to 3 bytes is cheaper there)."""

    def __init__(self, buf) -> None:
        super().__init__(buf)
        self.a = np.frombuffer(buf, np.uint8)

    def bytes_at(self, pos: np.ndarray, offset: int, count: int) -> np.ndarray:
        if count > 3 or count < 1:
            return super().bytes_at(pos, offset, count)
        return np.stack([self.a[pos + (offset + k)] for k in range(count)])


def _zero_bytes(x: np.ndarray) -> np.ndarray:
    """The high bit of each byte of `x` that is 0 (exactly: no carries between bytes)."""
    return ~(((x & _LOW7) + _LOW7) | x | _LOW7)


def find(words: Words, pos: np.ndarray, limit: np.ndarray, chars: bytes) -> np.ndarray:
    """The first position at or after each `pos` and before its `limit` that holds one of
    `chars`: -1 where there is none before the limit, -2 where none is within
    `FIND_REACH` bytes and the limit is further."""
    out = np.full(len(pos), -1, np.int64)
    todo = None  # every line, the first time
    wanted = [_ONES * np.uint64(c) for c in chars]
    for k in range(0, FIND_REACH, 8):
        p = (pos if todo is None else pos[todo]) + k
        x = words.at(p)
        z = _zero_bytes(x ^ wanted[0])
        for w in wanted[1:]:
            z |= _zero_bytes(x ^ w)
        at = p + (np.bitwise_count((z & (~z + _ONE)) - _ONE) >> 3).astype(np.int64)
        hit = z != 0
        lim = limit if todo is None else limit[todo]
        found = hit & (at < lim)
        if todo is None:
            out = np.where(found, at, out)
            todo = np.flatnonzero(~(hit | (p + 8 >= lim)))
        else:
            out[todo[found]] = at[found]
            todo = todo[~(hit | (p + 8 >= lim))]
        if not len(todo):
            return out
    out[todo] = -2
    return out


def digits(rows: np.ndarray, ok: np.ndarray, *index: int) -> np.ndarray:
    """The decimal number in the byte rows `index` (each row a byte of every line)."""
    value = np.zeros(rows.shape[1], np.int64)
    for i in index:
        d = rows[i] - _ZERO  # wraps below "0": a non-digit is > 9
        ok &= d <= 9
        value = value * 10 + d
    return value


_MONTH_CODES = np.array(sorted(int.from_bytes(m.encode(), "little") for m in MONTHS), np.int64)
_MONTH_OF_CODE = np.array(
    [MONTHS[c.to_bytes(3, "little").decode()] for c in _MONTH_CODES.tolist()], np.int64
)
_DAYS_IN = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def _epoch_days(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _clock(b: np.ndarray, ok: np.ndarray, y, mon, d, at: int) -> np.ndarray:
    """Epoch ms of a date and the "HH:MM:SS" at byte row `at` of `b`, checked."""
    hh, mm, ss = (
        digits(b, ok, at, at + 1),
        digits(b, ok, at + 3, at + 4),
        digits(b, ok, at + 6, at + 7),
    )
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    ok &= (mon >= 1) & (mon <= 12) & (d >= 1) & (hh < 24) & (mm < 60) & (ss < 60)
    ok &= (d <= _DAYS_IN[np.clip(mon, 0, 12)]) & ((mon != 2) | (d <= 28) | leap)
    ok &= (y >= 1970) & (y <= 9999)
    secs = _epoch_days(y, mon, d) * 86400 + hh * 3600 + mm * 60 + ss
    return secs * 1000


def _rows(words: Words, pos: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate([words.bytes_at(pos, k, min(8, width - k)) for k in range(0, width, 8)])


_MINUTE_TAIL = {"time_local": np.uint64(0xFFFF), "time_iso8601": np.uint64(0xFF)}
_ZONE = np.uint64(0xFFFFFFFFFFFF0000)  # the offset, in the last 8 bytes of either time


def times(words: Words, var: str, pos: np.ndarray, length: np.ndarray, ok: np.ndarray):
    """Epoch ms of each line's time value; `ok` cleared where it is not one. Lines
    whose time differs from the line before only in its seconds (most) share its
    parse: only their seconds are read."""
    if var == "msec":
        secs = words.decimals(pos, length)
        ok &= ~np.isnan(secs) & (secs < 253402300800.0)
        return np.round(np.nan_to_num(secs) * 1000.0).astype(np.int64)
    if not len(pos):
        return np.zeros(0, np.int64)
    w0, w1 = words.at(pos), words.at(pos, 8)
    w2, last = words.at(pos, 16) & _MINUTE_TAIL[var], words.at(pos, FIXED[var] - 8)
    zone = last & _ZONE
    new = np.ones(len(pos), bool)
    new[1:] = (w0[1:] != w0[:-1]) | (w1[1:] != w1[:-1]) | (w2[1:] != w2[:-1])
    new[1:] |= zone[1:] != zone[:-1]
    first = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    good = np.ones(len(first), bool)
    base = _parse_times(words, var, pos[first], good)
    ss = (last & np.uint64(0xFFFF)).view(np.uint8).reshape(-1, 8)[:, :2].T - _ZERO
    secs = ss[0].astype(np.int64) * 10 + ss[1]
    ok &= good[run] & (ss[0] <= 5) & (ss[1] <= 9)
    return base[run] + (secs - secs[first][run]) * 1000


def _parse_times(words: Words, var: str, pos: np.ndarray, ok: np.ndarray) -> np.ndarray:
    b = _rows(words, pos, FIXED[var])
    if var == "time_local":  # 25/Nov/2026:13:05:00 +0900
        seps = ((2, "/"), (6, "/"), (11, ":"), (14, ":"), (17, ":"), (20, " "))
        code = b[3].astype(np.int64) | b[4].astype(np.int64) << 8 | b[5].astype(np.int64) << 16
        i = np.minimum(np.searchsorted(_MONTH_CODES, code), 11)
        ok &= _MONTH_CODES[i] == code
        y, mon, d = digits(b, ok, 7, 8, 9, 10), _MONTH_OF_CODE[i], digits(b, ok, 0, 1)
        ms, sign, zone = _clock(b, ok, y, mon, d, 12), b[21], (22, 23, 24, 25)
    else:  # 2026-11-25T13:05:00+09:00
        seps = ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (22, ":"))
        y, mon, d = digits(b, ok, 0, 1, 2, 3), digits(b, ok, 5, 6), digits(b, ok, 8, 9)
        ms, sign, zone = _clock(b, ok, y, mon, d, 11), b[19], (20, 21, 23, 24)
    for at, char in seps:
        ok &= b[at] == ord(char)
    ok &= (sign == ord("+")) | (sign == ord("-"))
    zh, zm = digits(b, ok, *zone[:2]), digits(b, ok, *zone[2:])
    offset = (zh * 3600 + zm * 60) * 1000
    return ms - np.where(sign == ord("-"), -offset, offset)


def _verify(words: Words, pos: np.ndarray, lit: bytes, start, end, ok: np.ndarray) -> None:
    """Clear `ok` where `lit` does not stand at `pos` inside [start, end)."""
    if not lit:
        return
    inside = (pos >= start) & (pos + len(lit) <= end)
    ok &= inside
    safe = np.where(inside, pos, start)  # reads stay inside the line
    if len(lit) == 1:
        ok &= (words.a[safe] == lit[0]) | ~inside
    else:
        ok &= words.starts_with(safe, lit) | ~inside


def locate(plan, quotes: int, wanted: set[str], words: Words, s, e, q, qfirst, ok) -> dict:
    """(start, end) of every `wanted` variable of each line [s, e), whose quotes are
    q[qfirst], q[qfirst + 1] ...; `ok` cleared where the line is not as the format's
    `plan` (its segments between `quotes` quotes) says."""
    spans: dict[str, tuple] = {}
    plain = []  # segments of a literal alone (JSON keys, "," ...): checked at the end
    hi = s  # (the lines hold the format's quotes: in order)
    for k, seg in enumerate(plan):
        lo = s if k == 0 else hi + 1
        hi = e if k == quotes else q[qfirst + k]
        if seg.names:
            _segment(seg, words, lo, hi, ok, spans, wanted)
        else:
            plain.append((seg.lits[0], lo, hi))
    for lit, lo, hi in plain:  # their lengths, and their first 8 bytes
        ok &= hi - lo == len(lit)
        if len(lit) == 1:
            ok &= words.a[lo] == lit[0]
        elif lit:
            ok &= words.starts_with(lo, lit[:8])
    return spans


def _segment(seg: Segment, words: Words, lo, hi, ok, spans: dict, wanted: set) -> None:
    m = len(seg.names)
    _verify(words, lo, seg.lits[0], lo, hi, ok)
    cur = np.minimum(lo + len(seg.lits[0]), hi)
    for i in range(seg.split):
        name, sep = seg.names[i], seg.lits[i + 1]
        if name in FIXED:
            end = cur + FIXED[name]
            ok &= end <= hi
        else:
            end = find(words, cur, hi, sep[:1])
            ok &= end >= 0
        end = np.clip(end, cur, hi)
        if name in wanted:
            spans.setdefault(name, (cur, end))
        _verify(words, end, sep, lo, hi, ok)
        cur = np.minimum(end + len(sep), hi)
    right = hi - len(seg.lits[m])
    _verify(words, right, seg.lits[m], lo, hi, ok)
    for j in range(m - 1, seg.split, -1):
        start = right - FIXED[seg.names[j]]
        if seg.names[j] in wanted:
            spans.setdefault(seg.names[j], (np.maximum(start, lo), right))
        right = start - len(seg.lits[j])
        _verify(words, right, seg.lits[j], lo, hi, ok)
    ok &= right >= cur
    if seg.names[seg.split] in wanted:
        spans.setdefault(seg.names[seg.split], (cur, np.maximum(right, cur)))
