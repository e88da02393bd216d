"""The logrotate policy as logrotate reads it, and the rotated logs it leaves behind.

The parser follows logrotate's own reading (config.c, 3.21): `#` starts a comment where a
token starts; a token starting with `/`, `"`, `'` or `~` begins a list of log path
patterns (quoted, several per line, over several lines) closed by a `{ ... }` block; any
other word is a directive, global outside a block (it is the default of the blocks that
follow, included files too) and the block's own inside; `include` reads a file, or every
file of a directory in name order but those with logrotate's taboo extensions
(`.dpkg-old`, `.rpmsave`, `~` ...; hidden files are read, as logrotate does);
`postrotate` ... `endscript` script bodies are skipped whatever braces they hold. The
frequency words and `size` set one setting, the last one read winning, as logrotate says
("'size' overrides previously specified 'weekly'"); `nocompress`, `ifempty` ... undo
their positive. Anything logrotate would reject raises `LogrotateParseError` with file
and line, never another exception. The suite's tests compare this reading with real
`logrotate -d` runs.

The files are read through a `files` object (`hosttext`): this machine's by default,
a remote host's through its commands, with the same reading and the same messages.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from opscheck.probes.hosttext import Files, LocalFiles

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "yearly")
PERIOD_DAYS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 31, "yearly": 366}
NEGATIONS = {
    "nocompress": "compress",
    "nodelaycompress": "delaycompress",
    "nomissingok": "missingok",
    "ifempty": "notifempty",
    "nocreate": "create",
    "nodateext": "dateext",
    "nocopytruncate": "copytruncate",
    "nocopy": "copy",
    "nosharedscripts": "sharedscripts",
    "noolddir": "olddir",
    "nomail": "mail",
    "noshred": "shred",
}
SCRIPTS = ("postrotate", "prerotate", "firstaction", "lastaction", "preremove")
TABOO = (
    ",v",
    ".cfsaved",
    ".disabled",
    ".dpkg-bak",
    ".dpkg-del",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-old",
    ".dpkg-tmp",
    ".rpmnew",
    ".rpmorig",
    ".rpmsave",
    ".swp",
    ".ucf-dist",
    ".ucf-new",
    ".ucf-old",
    "~",
)
MAX_INCLUDE_DEPTH = 10
MAX_CONFIG_BYTES = 4 << 20
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class LogrotateParseError(ValueError):
    """A logrotate file that logrotate would reject, or that could not be read."""


@dataclass(frozen=True)
class Block:
    patterns: tuple[str, ...]
    directives: dict[str, str]  # key -> arguments ("" for a flag); "frequency" -> "daily"
    source: str  # file:line of the block's first pattern

    def get(self, key: str) -> str | None:
        return self.directives.get(key)


@dataclass
class Conf:
    blocks: list[Block] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, includes too


def size_bytes(text: str) -> int:
    """logrotate's size argument in bytes: 100, 100k, 100M, 1G."""
    t = text.strip()
    unit = t[-1:].lower() if t[-1:].isalpha() else ""
    number = t[: len(t) - len(unit)] if unit else t
    if unit not in SIZE_UNITS or not number.isdigit():
        raise ValueError(f"not a size: {text!r}")
    return int(number) * SIZE_UNITS[unit]


def key_of(name: str) -> str:
    """The setting a directive word sets: 'weekly' and 'size' set 'frequency'."""
    if name in FREQUENCIES or name == "size":
        return "frequency"
    return name


def normal(key: str, args: str) -> str:
    """Arguments as compared: words single-spaced, a create mode as octal without a 0."""
    words = args.split()
    if key == "create" and words and _octal(words[0]) is not None:
        words[0] = format(_octal(words[0]), "o")
    if key == "frequency" and words[:1] == ["size"] and len(words) == 2:
        with contextlib.suppress(ValueError):
            words[1] = str(size_bytes(words[1]))
    return " ".join(words)


def _octal(word: str) -> int | None:
    try:
        return int(word, 8)
    except ValueError:
        return None


def parse(path: str | Path, files: Files | None = None) -> Conf:
    """Read a logrotate file (and what it includes) as logrotate would, from `files`
    (`hosttext.LocalFiles()`, this machine, by default)."""
    conf = Conf()
    reader = _Reader(conf, files or LocalFiles())
    if reader.files.is_dir(Path(path)):  # /etc/logrotate.d itself: every file in it
        reader.include(str(path), str(path), {}, 0)
    else:
        reader.read_file(Path(path), {}, 0)
    return conf


def parse_text(text: str, name: str = "<text>", files: Files | None = None) -> Conf:
    """Parse logrotate text given in memory (includes are read from `files`)."""
    conf = Conf()
    _Reader(conf, files or LocalFiles()).read_text(text, name, {}, 0)
    return conf


class _Reader:
    def __init__(self, conf: Conf, files: Files) -> None:
        self.conf = conf
        self.files = files

    def read_file(self, path: Path, defaults: dict[str, str], depth: int) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise LogrotateParseError(f"{path}: includes nested deeper than {MAX_INCLUDE_DEPTH}")
        try:
            size, text = self.files.read(path, MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise LogrotateParseError(f"cannot read {path}: {exc.strerror or exc}") from None
        if size > MAX_CONFIG_BYTES:
            raise LogrotateParseError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        if "\0" in text:
            raise LogrotateParseError(f"{path}: binary data, not a logrotate file")
        self.conf.files.append(str(path))
        self.read_text(text, str(path), defaults, depth)

    def include(self, target: str, where: str, defaults: dict[str, str], depth: int) -> None:
        path = Path(self.files.expand(target))
        if self.files.is_dir(path):
            try:
                names = sorted(self.files.list_dir(path))
            except OSError as exc:
                raise LogrotateParseError(f"{where}: cannot list {path}: {exc.strerror}") from None
            for name in names:
                if name.endswith(TABOO) or ".dpkg-" in name:
                    continue
                if self.files.is_file(path / name):
                    self.read_file(path / name, defaults, depth + 1)
        else:
            if not self.files.exists(path):
                raise LogrotateParseError(f"{where}: include {path}: no such file or directory")
            self.read_file(path, defaults, depth + 1)

    def read_text(self, text: str, name: str, defaults: dict[str, str], depth: int) -> None:
        lines = text.splitlines()
        patterns: list[str] = []
        block: dict[str, str] | None = None
        start = ""
        i = 0
        while i < len(lines):
            where = f"{name}:{i + 1}"
            words = _words(lines[i], where)
            i += 1
            if not words:
                continue
            head = words[0]
            if block is None and (patterns or head[:1] in "/\"'~") and head != "{":
                rest = _split_brace(words)
                if not patterns:
                    start = where
                patterns += [w for w in rest if w not in ("{", "}")]
                if "}" in rest:
                    raise LogrotateParseError(f"{where}: '}}' without a block")
                if "{" in rest:
                    if rest[-1] != "{":
                        raise LogrotateParseError(f"{where}: text after '{{'")
                    block = dict(defaults)
                continue
            if head == "{":
                if block is not None or not patterns:
                    raise LogrotateParseError(f"{where}: '{{' without log file patterns")
                if len(words) > 1:
                    raise LogrotateParseError(f"{where}: text after '{{'")
                block = dict(defaults)
                continue
            if head == "}":
                if block is None:
                    raise LogrotateParseError(f"{where}: '}}' without a block")
                if len(words) > 1:
                    raise LogrotateParseError(f"{where}: text after '}}'")
                self.conf.blocks.append(Block(tuple(patterns), block, start))
                patterns, block = [], None
                continue
            if head.lower() in SCRIPTS:
                if block is None:
                    raise LogrotateParseError(f"{where}: {head} outside a log block")
                i = _skip_script(lines, i, where)
                block[head.lower()] = "script"
                continue
            target = block if block is not None else defaults
            if head.lower() == "include":
                if block is not None:
                    raise LogrotateParseError(f"{where}: include inside a log block")
                if len(words) != 2:
                    raise LogrotateParseError(f"{where}: include takes one path")
                self.include(words[1], where, defaults, depth)
                continue
            _directive(target, words, where)
        if block is not None:
            raise LogrotateParseError(f"{name}: the block opened at {start} is not closed")
        if patterns:
            raise LogrotateParseError(f"{start}: log file patterns without a '{{' block")


def _words(line: str, where: str) -> list[str]:
    """A line's tokens, quotes removed, a `#` that starts a token ending the line."""
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        for word in lex:
            if word.startswith("#"):
                break
            out.append(word)
    except ValueError as exc:
        raise LogrotateParseError(f"{where}: {exc}") from None
    return out


def _split_brace(words: list[str]) -> list[str]:
    """Patterns with a `{` or `}` glued to them ("/var/log/*.log{") split off."""
    out: list[str] = []
    for w in words:
        if len(w) > 1 and w[-1] in "{}":
            out += [w[:-1], w[-1]]
        else:
            out.append(w)
    return out


def _skip_script(lines: list[str], i: int, where: str) -> int:
    while i < len(lines):
        if lines[i].strip().split()[:1] == ["endscript"]:
            return i + 1
        i += 1
    raise LogrotateParseError(f"{where}: script without endscript")


def _directive(target: dict[str, str], words: list[str], where: str) -> None:
    name, args = words[0].lower(), " ".join(words[1:])
    if not name.replace("_", "").isalnum():
        raise LogrotateParseError(f"{where}: unknown directive {words[0][:40]!r}")
    if name in NEGATIONS:
        target.pop(NEGATIONS[name], None)
        return
    if name in ("rotate", "maxage", "start", "minage") and not _int(args):
        raise LogrotateParseError(f"{where}: {name} needs a number, got {args[:40]!r}")
    if name in ("size", "maxsize", "minsize"):
        try:
            size_bytes(args)
        except ValueError:
            raise LogrotateParseError(f"{where}: {name} needs a size, got {args[:40]!r}") from None
        if name == "size":
            args = f"size {args}"
    if name in FREQUENCIES:
        args = name if name != "weekly" or not args else f"weekly {args}"
    target[key_of(name)] = args


def _int(text: str) -> bool:
    t = text.strip()
    return t.lstrip("-").isdigit()


# ---- what applies to the app log ---------------------------------------------------------


def matches(pattern: str, path: str) -> bool:
    """Whether a logrotate pattern (a glob, `*` not crossing `/`) names `path`."""
    pattern = os.path.expanduser(pattern)
    if not pattern.startswith("/"):
        return False
    try:
        return PurePosixPath(path).match(pattern)
    except ValueError:
        return False


def blocks_for(conf: Conf, log_path: str) -> list[Block]:
    """The blocks whose patterns name `log_path` (logrotate allows one)."""
    return [b for b in conf.blocks if any(matches(p, log_path) for p in b.patterns)]


def expected(policy: list[str]) -> list[tuple[str, str, str]]:
    """A config policy ["daily", "rotate 30", ...] as (key, normal args, the text)."""
    out = []
    for item in policy:
        words = item.split()
        name, args = words[0].lower(), " ".join(words[1:])
        if name in FREQUENCIES:
            args = name if not args else f"{name} {args}"
        elif name == "size":
            args = f"size {args}"
        key = key_of(name)
        out.append((key, normal(key, args), item))
    return out


def retention_days(policy: list[str]) -> float | None:
    """Days the policy keeps rotated logs: `maxage`, else `rotate` x the frequency."""
    found = {key: args for key, args, _ in expected(policy)}
    if "maxage" in found:
        return float(found["maxage"])
    freq = found.get("frequency", "").split()[:1]
    if "rotate" in found and freq and freq[0] in PERIOD_DAYS:
        return int(found["rotate"]) * PERIOD_DAYS[freq[0]]
    return None


# ---- a remote host's rotated logs ---------------------------------------------------------
