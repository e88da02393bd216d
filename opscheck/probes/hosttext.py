"""Small text files and directory listings of a host, for parsers that follow includes.

`LocalFiles` is this machine (os and pathlib, files opened with O_NOATIME where permitted);
`HostFiles` answers the same questions about a remote host from its commands: the first
question about a path reads it whole in one command (its kind; a directory's entries and
the text of every regular file in it; a file's text), so a config and an include dir
cost a command each. Nothing is written there; a file is read with `dd iflag=noatime`
where the host permits it (its atime does not move), else with `head -c`; never more
than `limit` bytes. A file that cannot be read raises OSError (its reason as strerror),
as the local one does; output that does not parse is a ProbeError naming the host.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
from pathlib import Path
from typing import Protocol

from opscheck.probes import ProbeError
from opscheck.probes.host import LocalHost
from opscheck.probes.noatime import open_binary
from opscheck.probes.remote import _C as LC_C

READ_MAX = (4 << 20) + 1  # bytes read of one file at most (the parsers' limit + 1)


class Files(Protocol):
    """What a parser asks of a host's files (paths as the host names them)."""

    def expand(self, target: str) -> str: ...
    def is_dir(self, path: Path) -> bool: ...
    def is_file(self, path: Path) -> bool: ...
    def exists(self, path: Path) -> bool: ...
    def list_dir(self, path: Path) -> list[str]: ...
    def read(self, path: Path, limit: int) -> tuple[int, str]: ...


class LocalFiles:
    """This machine's files."""

    def expand(self, target: str) -> str:
        return os.path.expanduser(target)

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def list_dir(self, path: Path) -> list[str]:
        return os.listdir(path)

    def read(self, path: Path, limit: int) -> tuple[int, str]:
        """(bytes read, at most `limit`; the text, undecodable bytes replaced)."""
        with open_binary(path) as f:
            data = f.read(limit)
        return len(data), data.decode("utf-8", "replace")


# One path: its kind, and the text of it (a file) or of every regular file in it (a dir).
# Records are NUL-framed: "\0<token> <kind> <argument>\0<body>"; F bodies are file texts.
_FETCH = r"""p={path}; T={token}
rd() {{
  dd if="$1" iflag=noatime,fullblock bs={limit} count=1 2>/dev/null || head -c {limit} -- "$1"
}}
one() {{
  if [ -r "$1" ]; then
    printf '\0%s F %s %s\0' "$T" "$(stat -L -c %s -- "$1" 2>/dev/null || echo -1)" "$1"
    rd "$1"; printf '\0%s R %s\0' "$T" "$?"
  else printf '\0%s E %s\0' "$T" "$1"; fi
}}
if [ -d "$p" ]; then
  if [ -r "$p" ] && [ -x "$p" ]; then
    printf '\0%s D %s\0' "$T" "$p"
    for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      if [ -f "$f" ]; then k=f; else k=o; fi
      printf '\0%s N %s %s\0' "$T" "$k" "${{f##*/}}"
    done
    for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do [ -f "$f" ] && one "$f"; done
  else printf '\0%s L %s\0' "$T" "$p"; fi
elif [ -f "$p" ]; then one "$p"
elif [ -e "$p" ] || [ -L "$p" ]; then printf '\0%s O %s\0' "$T" "$p"
else printf '\0%s A %s\0' "$T" "$p"; fi
printf '\0%s Z .\0' "$T"
"""
_KINDS = {"D": "dir", "L": "dir", "F": "file", "E": "file", "O": "other", "A": "absent"}
_DENIED = "Permission denied"


class HostFiles:
    """A remote host's files (`host.run_rc`), each path read once."""

    def __init__(self, host) -> None:
        self.host = host
        self._kind: dict[str, str] = {}  # path -> dir, file, other, absent
        self._names: dict[str, list[str] | str] = {}  # dir -> entries, or why not listed
        self._text: dict[str, tuple[int, str] | str] = {}  # file -> (size, text), or why not

    def expand(self, target: str) -> str:
        """`~` and `~user` as the host's shell expands them; other paths as they are."""
        m = re.fullmatch(r"~([A-Za-z0-9._-]*)(/.*)?", target)
        if m is None:
            return target
        rc, out, _ = self.host.run_rc(f"expand {target}", f"{LC_C}printf '%s' ~{m.group(1)}")
        home = out.strip()
        return home + (m.group(2) or "") if rc == 0 and home.startswith("/") else target

    def is_dir(self, path: Path) -> bool:
        return self._of(path) == "dir"

    def is_file(self, path: Path) -> bool:
        return self._of(path) == "file"

    def exists(self, path: Path) -> bool:
        return self._of(path) != "absent"

    def list_dir(self, path: Path) -> list[str]:
        self._of(path)
        names = self._names.get(str(path), "Not a directory")
        if isinstance(names, str):
            raise OSError(errno.EACCES, names)
        return list(names)

    def read(self, path: Path, limit: int) -> tuple[int, str]:
        kind = self._of(path)
        if kind == "absent":
            raise OSError(errno.ENOENT, "No such file or directory")
        if kind != "file":
            raise OSError(errno.EINVAL, f"not a regular file ({kind})")
        got = self._text.get(str(path), _DENIED)
        if isinstance(got, str):
            raise OSError(errno.EACCES, got)
        size, text = got
        return min(size, limit), text

    def _of(self, path: Path) -> str:
        key = str(path)
        if key not in self._kind:
            self._fetch(key)
        return self._kind.get(key, "absent")

    def _fetch(self, path: str) -> None:
        token = f"@@opscheck-{os.urandom(6).hex()}"
        command = _FETCH.format(path=shlex.quote(path), token=token, limit=READ_MAX)
        rc, out, err = self.host.run_rc(f"read {path}", LC_C + command)
        try:
            self._take(path, out, token)
        except (ValueError, IndexError) as exc:
            why = f"cannot parse ({exc})" if rc == 0 else (err.strip()[-200:] or f"exit {rc}")
            raise ProbeError(f"host {self.host.name}: read {path}: {why}") from None

    def _take(self, path: str, out: str, token: str) -> None:
        """The framed records of `_FETCH` into the caches (ValueError: not whole)."""
        records = [r.partition("\0") for r in out.split(f"\0{token} ")]
        if records[0][0] or len(records) < 3 or records[-1][0] != "Z .":
            raise ValueError("not the reader's framed output, or cut short")
        first = records[1][0].split(" ", 1)[0]
        if first not in _KINDS:
            raise ValueError(f"first record {first!r}")
        self._kind[path] = _KINDS[first]
        if first in ("D", "L"):
            self._names[path] = [] if first == "D" else _DENIED
        body = records[1:-1]
        i = 0
        while i < len(body):
            i += self._record(path, body[i][0], body[i][2], body[i + 1 : i + 2])

    def _record(self, path: str, head: str, text: str, after: list) -> int:
        """One record (an entry, a file's text with its exit code, an unreadable file);
        returns how many records it took."""
        kind, _, rest = head.partition(" ")
        if kind == "N":
            entry_kind, _, name = rest.partition(" ")
            names = self._names.get(path)
            if not isinstance(names, list) or not name:
                raise ValueError(f"an entry {name!r} outside a listed directory")
            names.append(name)
            self._kind[str(Path(path) / name)] = "file" if entry_kind == "f" else "other"
            return 1
        if kind == "F":
            size, _, name = rest.partition(" ")
            done = after[0][0].split(" ") if after else []
            if len(done) != 2 or done[0] != "R":
                raise ValueError(f"no exit code after the text of {name}")
            key = str(Path(name))
            self._kind[key] = "file"
            self._text[key] = (int(size), text) if done[1] == "0" else f"read exit {done[1]}"
            return 2
        if kind == "E":
            self._kind[str(Path(rest))] = "file"
            self._text[str(Path(rest))] = _DENIED
            return 1
        if kind in ("D", "L", "O", "A") and Path(rest) == Path(path):
            return 1
        raise ValueError(f"record {kind!r}")


def files_on(host) -> LocalFiles | HostFiles:
    """The files of `host`: this machine's directly, another host's through its commands."""
    return LocalFiles() if isinstance(host, LocalHost) else HostFiles(host)
