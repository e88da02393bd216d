"""A host's resources and files: CPU, memory, disks, file modes and owners.

`LocalHost` reads this machine with psutil and os.stat. A remote host (testinfra's
ssh://, paramiko://, docker://, ansible:// ...) is `remote.RemoteHost`, with the same
methods and the same arithmetic, chosen by `host_for(spec)`.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

import psutil

from opscheck.probes import ProbeError


@dataclass(frozen=True)
class DiskUsage:
    mount: str
    space_percent: float
    inodes_percent: (
        float | None
    )  # None: the file system has no inode limit (btrfs, tmpfs nr_inodes=0)
    free_bytes: int


@dataclass(frozen=True)
class FileState:
    path: str
    exists: bool
    is_dir: bool = False
    mode: int = 0  # permission bits, e.g. 0o600
    owner: str = ""
    error: str = ""  # why it could not be read, when it could not

    @property
    def mode_text(self) -> str:
        return f"{self.mode:03o}"


MODE_BITS = (
    (stat.S_ISUID, "setuid"),
    (stat.S_ISGID, "setgid"),
    (stat.S_ISVTX, "sticky"),
    (stat.S_IRUSR, "owner read"),
    (stat.S_IWUSR, "owner write"),
    (stat.S_IXUSR, "owner execute"),
    (stat.S_IRGRP, "group read"),
    (stat.S_IWGRP, "group write"),
    (stat.S_IXGRP, "group execute"),
    (stat.S_IROTH, "others read"),
    (stat.S_IWOTH, "others write"),
    (stat.S_IXOTH, "others execute"),
)


def data_dirs(paths) -> list[Path]:
    """The guide's 755 directories: data/, logs/ and chroma_db/ (`paths`: config [paths])."""
    return [Path(paths.template_data).parent, Path(paths.app_log).parent, Path(paths.chroma_dir)]


def mode_bit_names(bits: int) -> list[str]:
    """The permission bits set in `bits`, in words: ["group read", "others write"]."""
    return [name for bit, name in MODE_BITS if bits & bit]


class LocalHost:
    """This machine."""

    name = "local"

    def cpu_percent(self, sample_s: float) -> float:
        """CPU busy % over all cores, sampled over `sample_s` seconds."""
        return float(psutil.cpu_percent(interval=sample_s))

    def memory_percent(self) -> float:
        """Memory in use (total less available), % of total."""
        return float(psutil.virtual_memory().percent)

    def mount_of(self, path: str) -> str:
        """The mount point holding `path` (or its nearest existing ancestor)."""
        p = Path(path).absolute()
        while not p.exists() and p != p.parent:
            p = p.parent
        p = p.resolve()
        while not os.path.ismount(p):
            p = p.parent
        return str(p)

    def disk_usage(self, path: str) -> DiskUsage:
        """Space and inode use of the file system holding `path`."""
        mount = self.mount_of(path)
        try:
            st = os.statvfs(mount)
        except OSError as exc:
            raise ProbeError(f"cannot stat file system {mount}: {exc.strerror}") from None
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        usable = used + st.f_bavail * st.f_frsize  # as df: root's reserve excluded
        space = 100.0 * used / usable if usable else 0.0
        inodes = None
        if st.f_files:
            inodes_used = st.f_files - st.f_ffree
            inodes = 100.0 * inodes_used / (inodes_used + st.f_favail or 1)
        return DiskUsage(mount, round(space, 2), _round(inodes), st.f_bavail * st.f_frsize)

    def file(self, path: str) -> FileState:
        """Mode, owner and kind of `path`, without following a final symlink's target's rights."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return FileState(path, exists=False, error="does not exist")
        except OSError as exc:
            return FileState(path, exists=False, error=exc.strerror or str(exc))
        return FileState(
            path,
            exists=True,
            is_dir=stat.S_ISDIR(st.st_mode),
            mode=stat.S_IMODE(st.st_mode),
            owner=_user_name(st.st_uid),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def is_local(spec: str) -> bool:
    return spec in ("local://", "local", "")


def host_for(spec: str):
    """The host behind a testinfra host spec: this machine for `local://`, else a
    `RemoteHost` of its own (a run shares connections through `remote.Fleet`)."""
    if is_local(spec):
        return LocalHost()
    from opscheck.probes.remote import Options, RemoteHost

    return RemoteHost(spec, Options())


def where(host) -> str:
    """The prefix naming a remote host in evidence ("app@10.0.0.5: "); "" for this machine."""
    return "" if isinstance(host, LocalHost) else f"{host.name}: "


def host_state(state_dir: Path, host) -> Path:
    """Where the suite keeps its own state about `host`: `state_dir` itself for this
    machine (as before hosts existed), `state_dir/hosts/<label>` for a remote one."""
    if host is None or isinstance(host, LocalHost):
        return state_dir
    safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in host.name)
    return state_dir / "hosts" / safe


def host_label(spec: str) -> str:
    """A short, stable id for a host spec, never its password or options: local,
    app@10.0.0.5, ... (a password may hold '@', '?', '/': the host follows the last '@')."""
    if is_local(spec):
        return "local"
    rest = spec.split("://", 1)[-1]
    if "@" not in rest:
        return rest.split("?", 1)[0]
    user = rest[: rest.find("@")].split(":", 1)[0]
    host = rest[rest.rfind("@") + 1 :].split("?", 1)[0]
    return f"{user}@{host}" if user else host
