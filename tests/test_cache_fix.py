"""`python -m opscheck cache-fix` against the sandbox's real Redis: the dry run changes
nothing, --apply gives keys their policy TTL and deletes idle keys."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from opscheck import cachefix
from opscheck.sandbox.cache import IDLE_LIMIT_S
from tests.conftest import REPO
from tests.test_cache_checks import CHECKS, client, digest, outcomes, redis_url


def cache_fix(config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSCHECK_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "opscheck", "cache-fix", "--ops-config", str(config), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def values(r: redis.Redis) -> dict[bytes, bytes]:
    return {k: r.dump(k) for k in r.scan_iter(count=1000)}


def broken(sandbox_factory, tmp_path):
    sb = sandbox_factory("down", "redis-no-ttl", "redis-ttl-over")
    return sb, sb.with_config(f'[reports]\ndir = "{tmp_path / "reports"}"')


def test_dry_run_lists_the_changes_and_changes_nothing(sandbox_factory, tmp_path):
    sb, cfg = broken(sandbox_factory, tmp_path)
    with client(sb) as r:
        before = digest(r)
    for args in ((), ("--dry-run",)):
        proc = cache_fix(cfg, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert out.count("would set TTL 1800 s on template:") == 5
        assert out.count("would lower TTL 3600 s on policy:") == 4
        assert "left session:7f3a: no TTL and no ttl_policy pattern gives one" in out
        assert "dry run, nothing changed: 5 TTLs set, 4 lowered, 0 idle keys deleted" in out
        assert redis.connection.parse_url(redis_url(sb))["password"] not in out + proc.stderr
    with client(sb) as r:
        assert digest(r) == before


def test_apply_gives_keys_the_policy_ttl(sandbox_factory, run_checks, tmp_path):
    sb, cfg = broken(sandbox_factory, tmp_path)
    with client(sb) as r:
        before = values(r)
    proc = cache_fix(cfg, "--apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "applied: 5 TTLs set, 4 lowered, 0 idle keys deleted" in proc.stdout
    with client(sb) as r:
        assert values(r) == before, "values untouched, only expiries"
        for key in r.scan_iter(match="template:*"):
            assert 0 < r.ttl(key) <= 1800
        for key in r.scan_iter(match="policy:*"):
            assert 0 < r.ttl(key) <= 3600
        assert r.ttl("session:7f3a") == -1
    run = run_checks(sb.config, CHECKS)
    msg = run.one("cache_ttl_policy")["message"]
    assert msg == "1 (no pattern) keys have no TTL (e.g. session:7f3a), every key must expire"
    assert outcomes(run)["cache_hit_ratio"] == "passed"


def test_apply_deletes_idle_keys_and_keeps_the_ones_just_used(sandbox_factory):
    sb = sandbox_factory("down", "redis-idle")  # every key idle for 4 s, limit 2 s
    with client(sb) as r:
        used = sorted(r.scan_iter(match="template:*"))[:3]
        for key in used:
            r.get(key)  # the service reads them again
        info = cachefix.probe.stats(r, redis_url(sb))
        found = cachefix.plan(r, {"template:*": 1800}, IDLE_LIMIT_S, info.lfu)
        done = cachefix.apply(r, found.actions, IDLE_LIMIT_S)
        assert len(done) == found.keys - 3 == 345
        assert sorted(r.scan_iter(count=1000)) == used


def test_cache_fix_fails_in_one_line_when_redis_is_down(sandbox_factory, tmp_path):
    sb = sandbox_factory("down", "redis-down")
    proc = cache_fix(sb.config, "--apply")
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "cache-fix: cannot reach Redis at redis://127.0.0.1:"
    )
    assert redis.connection.parse_url(redis_url(sb))["password"] not in proc.stdout + proc.stderr
