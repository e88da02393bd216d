"""The run's hosts: targets as testinfra specs, roles, per-host mounts, what each check reads.

`[hosts] targets` (or testinfra's `--hosts`) name the hosts; an `ansible://group` target
becomes one row per inventory host. `[hosts.roles]` says which hosts have which role
(app, cache, backup); a role not listed applies to every host. A check marked
`@pytest.mark.role("app")` gets a row per app host; unmarked host checks one per host.

Before the first host check judges, every remote host is read at once, each in one
command (`plan`): the run's wall time grows with the slowest host, not with their number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from opscheck import config as cfgmod
from opscheck.probes import ProbeError, remote
from opscheck.probes.host import LocalHost, data_dirs, host_label, is_local


class TargetsError(ValueError):
    """The targets or roles cannot make a run (one line)."""


@dataclass
class Targets:
    specs: list[str]  # every host, ansible groups expanded
    origins: dict[str, set[str]] = field(default_factory=dict)  # spec -> targets it came from
    roles: dict[str, list[str]] = field(default_factory=dict)  # listed roles -> their specs

    def for_role(self, role: str | None) -> list[str]:
        """The hosts a check of `role` runs on (every host: no role, or the role not listed)."""
        if role is None or role not in self.roles:
            return list(self.specs)
        return list(self.roles[role])

    def has_role(self, spec: str, role: str) -> bool:
        return spec in self.for_role(role)

    def mounts(self, spec: str, paths: cfgmod.Paths) -> list[str]:
        """`disk_mounts`, plus app_dir on app hosts and backup_dir on backup hosts; on this
        machine resolved to their mounts, each once (a remote host resolves at run time)."""
        wanted = list(paths.disk_mounts)
        if self.has_role(spec, "app"):
            wanted.append(paths.app_dir)
        if self.has_role(spec, "backup"):
            wanted.append(paths.backup_dir)
        if is_local(spec):
            local = LocalHost()
            wanted = [local.mount_of(p) for p in wanted]
        return list(dict.fromkeys(wanted))


def options(hosts: cfgmod.Hosts) -> remote.Options:
    return remote.Options(
        ssh_config=hosts.ssh_config,
        ssh_identity_file=hosts.ssh_identity_file,
        ansible_inventory=hosts.ansible_inventory,
        timeout_s=hosts.timeout_s,
    )


def resolve(hosts: cfgmod.Hosts) -> Targets:
    """Expand the targets and match every role entry to them; a role entry matching no
    target is an error (its checks would run nowhere, silently)."""
    for spec in hosts.targets:
        if remote.scheme(spec) in remote.WRITING_SCHEMES:
            raise TargetsError(
                f"[hosts] targets: {host_label(spec)}: {remote.scheme(spec)}:// writes temp files"
                " on the host (the suite only reads its targets): use ssh://"
            )
    try:
        expanded = remote.expand(hosts.targets, options(hosts))
    except ProbeError as exc:
        raise TargetsError(f"[hosts] targets: {exc}") from None
    specs = list(dict.fromkeys(spec for spec, _ in expanded))
    targets = Targets(specs)
    for spec, origin in expanded:
        targets.origins.setdefault(spec, set()).add(origin)
    for role, entries in hosts.roles.items():
        chosen: list[str] = []
        for entry in entries:
            found = [s for s in specs if entry in (s, host_label(s)) or entry in targets.origins[s]]
            if not found:
                known = ", ".join(host_label(s) for s in specs)
                raise TargetsError(
                    f"[hosts.roles] {role}: {host_label(entry)} is not among the targets ({known})"
                )
            chosen += found
        targets.roles[role] = list(dict.fromkeys(chosen))
    return targets


def role_of(metafunc: pytest.Metafunc) -> str | None:
    marker = metafunc.definition.get_closest_marker("role")
    return str(marker.args[0]) if marker and marker.args else None


def parametrize(metafunc: pytest.Metafunc, targets: Targets, conf: cfgmod.Config) -> None:
    """`host_spec` (and `mount`, per host) as parameters: one row per host (and mount)."""
    specs = targets.for_role(role_of(metafunc))
    if "mount" in metafunc.fixturenames:
        rows = [(s, m) for s in specs for m in targets.mounts(s, conf.paths)]
        ids = [f"{host_label(s)}-{m}" for s, m in rows]
        metafunc.parametrize(("host_spec", "mount"), rows, ids=ids)
    else:
        metafunc.parametrize("host_spec", specs, ids=[host_label(s) for s in specs])


def plan(items: list[pytest.Item], conf: cfgmod.Config) -> dict[str, list[remote.Read]]:
    """What the selected host checks will read on each host (spec -> reads), so that
    each remote host is read in one command, all at once."""
    out: dict[str, dict[str, remote.Read]] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        spec = params.get("host_spec")
        if spec is None or is_local(spec):
            continue
        name = getattr(item, "originalname", "")
        for read in _reads(name, params, conf):
            out.setdefault(spec, {})[read.key] = read
    return {spec: list(reads.values()) for spec, reads in out.items()}


LISTS_BACKUPS = (
    "test_backup_fresh",
    "test_backup_every_day",
    "test_backup_integrity",
    "test_backup_retention",
    "test_restore_drill",
)


def _reads(check: str, params: dict, conf: cfgmod.Config) -> list[remote.Read]:
    """What each host check reads (a check not listed reads when it runs, one by one)."""
    paths = conf.paths
    if check == "test_cpu_usage":
        return [remote.cpu_read(conf.hosts.cpu_sample_s)]
    if check == "test_memory_usage":
        return [remote.memory_read()]
    if check == "test_disk_usage":
        return [remote.disk_read(params["mount"])]
    if check == "test_env_file_mode":
        return [remote.file_read(paths.env_file)]
    if check == "test_data_dir_modes":
        return [remote.file_read(str(d)) for d in data_dirs(paths)]
    if check == "test_backup_storage_capacity":
        return [remote.disk_read(paths.backup_dir), remote.list_read(paths.backup_dir)]
    if check in LISTS_BACKUPS:
        return [remote.list_read(paths.backup_dir)]
    return []
