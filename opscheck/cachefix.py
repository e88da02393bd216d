"""`python -m opscheck cache-fix`: the guide's cache clean-up, as an explicit remediation.

The guide's `CacheOptimizer` gives keys without TTL their pattern's TTL and deletes keys
idle over 30 days. This does the same from the config (`[redis] ttl_policy`,
`thresholds.cache_idle_days`), also lowering TTLs above the policy, and only when asked:
`--dry-run` (the default) lists what it would change and changes nothing; `--apply`
acts. Checks never call it. Each change is conditional on what was read, so a key the
service rewrote meanwhile is left alone: `EXPIRE .. NX` (still no TTL), `EXPIRE .. LT`
(still longer), and idle keys are deleted by a script that re-reads their idle time.
Keys matching no pattern get no TTL (there is none to give) and are listed as such.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import redis

from opscheck import config as cfgmod
from opscheck.probes import ProbeError
from opscheck.probes import cache as probe

DELETE_IF_IDLE = """
local idle = redis.call('OBJECT', 'IDLETIME', KEYS[1])
if idle and idle > tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
"""
SHOWN = 20  # lines listed per kind of change


@dataclass(frozen=True)
class Action:
    kind: str  # "set-ttl", "lower-ttl", "delete", "no-policy"
    key: bytes
    ttl_s: int  # the TTL it has (-1: none)
    new_ttl_s: int = 0
    idle_s: int = 0

    def text(self, done: bool) -> str:
        name = probe.key_text(self.key)
        verb = {
            "set-ttl": ("set", "would set"),
            "lower-ttl": ("lowered", "would lower"),
            "delete": ("deleted", "would delete"),
        }
        if self.kind == "no-policy":
            return f"left {name}: no TTL and no ttl_policy pattern gives one"
        said = verb[self.kind][0 if done else 1]
        if self.kind == "delete":
            return f"{said} {name} (idle {self.idle_s} s)"
        was = "no TTL" if self.ttl_s == -1 else f"TTL {self.ttl_s} s"
        return f"{said} TTL {self.new_ttl_s} s on {name} ({was})"


@dataclass
class Plan:
    keys: int
    actions: list[Action]
    idle_tracked: bool
    own_hits: int = 0


def plan(r: redis.Redis, policy: dict[str, int], idle_limit_s: float, lfu: bool) -> Plan:
    """Every key's TTL and idle time (read-only), and the change each key needs."""
    match = probe.Matcher(policy)
    out = Plan(0, [], not lfu)
    for keys in _batches(r):
        p = r.pipeline(transaction=False)
        for key in keys:
            p.ttl(key)
            if out.idle_tracked:
                p.object("idletime", key)
        replies = p.execute(raise_on_error=False)
        step = 2 if out.idle_tracked else 1
        for n, key in enumerate(keys):
            ttl, idle = replies[n * step], replies[n * step + 1] if step == 2 else None
            if not isinstance(ttl, int) or ttl == -2:
                continue
            out.keys += 1
            out.own_hits += step
            action = _decide(key, ttl, idle, match.row(key).policy_s, idle_limit_s)
            if action:
                out.actions.append(action)
    return out


def _batches(r: redis.Redis):
    cursor = 0
    while True:
        cursor, keys = r.scan(cursor, count=probe.SCAN_COUNT)
        if keys:
            yield keys
        if cursor == 0:
            return


def _decide(key: bytes, ttl: int, idle, policy_s: int | None, idle_limit_s: float):
    if isinstance(idle, int) and idle > idle_limit_s:
        return Action("delete", key, ttl, idle_s=idle)
    if policy_s is None:
        return Action("no-policy", key, ttl) if ttl == -1 else None
    if policy_s and ttl == -1:
        return Action("set-ttl", key, ttl, policy_s)
    if policy_s and ttl > policy_s:
        return Action("lower-ttl", key, ttl, policy_s)
    return None


def apply(r: redis.Redis, actions: list[Action], idle_limit_s: float) -> list[Action]:
    """Carry out the plan, each change only if the key is still as it was read."""
    delete = r.register_script(DELETE_IF_IDLE)
    done = []
    for a in actions:
        if a.kind == "set-ttl":
            ok = r.expire(a.key, a.new_ttl_s, nx=True)
        elif a.kind == "lower-ttl":
            ok = r.expire(a.key, a.new_ttl_s, lt=True)
        elif a.kind == "delete":
            ok = delete(keys=[a.key], args=[int(idle_limit_s)])
        else:
            continue
        if ok:
            done.append(a)
    return done


def run(config_path: str | None, act: bool, cwd: Path, suite: Path) -> int:
    """The command: 0 when done (or nothing to do), 1 when Redis failed, 4 on bad config."""
    try:
        loaded = cfgmod.load(cfgmod.find_path(config_path, cwd))
    except cfgmod.ConfigError as exc:
        print(exc)
        return 4
    cfg = loaded.config
    if not cfg.redis.url:
        print("[redis] url is empty: no cache to fix")
        return 4
    limit = cfg.thresholds.cache_idle_days * 86400
    try:
        r = probe.connect(cfg.redis.url, cfg.redis.timeout_s)
        try:
            info = probe.stats(r, cfg.redis.url)
            found = plan(r, cfg.redis.ttl_policy, limit, info.lfu)
            _remember(cfg, suite, info.run_id, found.own_hits)
            done = apply(r, found.actions, limit) if act else []
        finally:
            r.close()
    except (ProbeError, redis.RedisError, OSError) as exc:
        print(probe.scrub(f"cache-fix: {exc}"))
        return 1
    _report(cfg, found, done, act, info)
    return 0


def _remember(cfg: cfgmod.Config, suite: Path, run_id: str, hits: int) -> None:
    reports = Path(cfg.reports.dir).expanduser()
    state = (reports if reports.is_absolute() else suite / reports) / ".state"
    with contextlib.suppress(OSError):  # the hit ratio then counts them: no reason to stop
        probe.remember_lookups(state / "redis-own-lookups.json", run_id, hits, 0)


def _report(cfg, found: Plan, done: list[Action], act: bool, info: probe.Stats) -> None:
    print(f"Redis {probe.shown(cfg.redis.url)}: {found.keys} keys read")
    if not found.idle_tracked:
        print(f"idle keys not judged: maxmemory-policy is {info.maxmemory_policy} (LFU)")
    listed = done if act else found.actions
    kinds = ("set-ttl", "lower-ttl", "delete", "no-policy")
    for kind in kinds:
        these = [a for a in (found.actions if kind == "no-policy" else listed) if a.kind == kind]
        for a in these[:SHOWN]:
            print(f"  {a.text(act)}")
        if len(these) > SHOWN:
            print(f"  ... and {len(these) - SHOWN} more ({kind})")
    counts = {k: sum(a.kind == k for a in listed) for k in kinds[:3]}
    summary = (
        f"{counts['set-ttl']} TTLs set, {counts['lower-ttl']} lowered, "
        f"{counts['delete']} idle keys deleted"
    )
    if act:
        skipped = sum(a.kind != "no-policy" for a in found.actions) - len(done)
        print(
            f"applied: {summary}" + (f"; {skipped} keys changed meanwhile, left" if skipped else "")
        )
    else:
        print(f"dry run, nothing changed: {summary} with --apply")
