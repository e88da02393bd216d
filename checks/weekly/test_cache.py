"""Weekly: the Redis cache expires what it holds, serves hits, keeps no dead keys, and
refuses strangers.

One survey per run (a bounded SCAN walk, read-only) serves cache_ttl_policy and
cache_idle_keys. A key matching no `ttl_policy` pattern must still expire (a key without
TTL grows the cache for ever and no volatile-* eviction can drop it); with a TTL it is
only counted. A pattern whose policy is 0 may live without TTL.
"""

import pytest

from opscheck.evidence import fmt
from opscheck.probes import cache


@pytest.fixture(scope="module")
def redis_cache(cfg, state_dir):
    """The run's cache session (nothing is sent until a check asks)."""
    if not cfg.redis.url:
        pytest.skip("[redis] url is empty: no cache to check")
    session = cache.Session(
        cfg.redis.url,
        cfg.redis.timeout_s,
        state_dir / "redis-own-lookups.json",
        cfg.redis.ttl_policy,
        cfg.thresholds.cache_idle_days * 86400,
    )
    yield session
    session.close()


def _survey(cfg, redis_cache, evidence) -> cache.Survey:
    s = redis_cache.survey(cfg.redis.sample_keys, cfg.redis.scan_max_s)
    evidence.record("keys inspected", s.inspected, "keys", s.dbsize)
    evidence.record("sampled", s.coverage())
    evidence.record("survey time", s.elapsed_s, "s")
    return s


def _examples(items) -> str:
    return ", ".join(k if isinstance(k, str) else f"{k[0]} ({k[1]} s)" for k in items)


@pytest.mark.weekly
def test_cache_ttl_policy(cfg, redis_cache, evidence):
    """캐시 최적화: every key has a TTL, at most its ttl_policy pattern's (SCAN sample)."""
    s = _survey(cfg, redis_cache, evidence)
    for row in s.patterns:
        name = row.pattern or "(no pattern)"
        evidence.record(f"{name} keys", row.keys, "keys")
        exempt = row.policy_s == 0
        if not exempt:
            evidence.record(f"{name} keys without TTL", row.no_ttl, "keys", 0)
        if row.policy_s:
            evidence.record(f"{name} longest TTL", row.max_ttl_s, "s", row.policy_s)
        if row.over:
            evidence.breach(
                f"{row.over} {name} keys have a TTL above the policy's {row.policy_s} s "
                f"(the longest {row.max_ttl_s} s; e.g. {_examples(row.over_examples)}), "
                f"limit {row.policy_s} s"
            )
        if row.no_ttl and not exempt:
            evidence.breach(
                f"{row.no_ttl} {name} keys have no TTL (e.g. {_examples(row.no_ttl_examples)})"
                + (f", policy {row.policy_s} s" if row.policy_s else ", every key must expire")
            )
    evidence.verdict()


@pytest.mark.weekly
def test_cache_hit_ratio(cfg, redis_cache, evidence):
    """캐시 최적화: keyspace hits / (hits + misses) since Redis started is at least
    cache_hit_ratio (the suite's own TTL/OBJECT lookups are taken back out)."""
    info, own_hits, own_misses = redis_cache.hit_counts()
    hits, misses = max(0, info.hits - own_hits), max(0, info.misses - own_misses)
    evidence.record("keyspace hits", hits, "lookups")
    evidence.record("keyspace misses", misses, "lookups")
    evidence.record("lookups by this suite, not counted", own_hits + own_misses, "lookups")
    evidence.record("counted since (uptime)", info.uptime_s / 86400, "days")
    if hits + misses == 0:
        pytest.skip(f"no keyspace lookups in {info.uptime_s} s since Redis started: no ratio")
    evidence.at_least(
        "keyspace hit ratio", round(hits / (hits + misses), 4), "", cfg.thresholds.cache_hit_ratio
    )
    evidence.verdict()


@pytest.mark.weekly
def test_cache_idle_keys(cfg, redis_cache, evidence):
    """사용하지 않는 캐시 정리: no key idle longer than cache_idle_days (SCAN sample)."""
    info = redis_cache.stats()
    if info.lfu:
        pytest.skip(
            f"maxmemory-policy is {info.maxmemory_policy}: Redis refuses OBJECT IDLETIME "
            "under an LFU policy, so idle times cannot be read"
        )
    s = _survey(cfg, redis_cache, evidence)
    if not s.idle_tracked:
        pytest.skip(s.idle_note)
    days = cfg.thresholds.cache_idle_days
    limit = f"{fmt(days, 'days')} ({fmt(days * 86400, 's')})"
    evidence.record("longest idle", s.max_idle_s / 86400, "days", days)
    if s.idle_over:
        evidence.breach(
            f"{s.idle_over} keys idle longer than {limit} (the longest "
            f"{fmt(s.max_idle_s / 86400, 'days')} = {s.max_idle_s} s; e.g. "
            f"{_examples(s.idle_examples)}), limit {limit}"
        )
    evidence.verdict()


@pytest.mark.weekly
def test_redis_requires_auth(cfg, redis_cache, evidence):
    """보안: a connection without password gets NOAUTH, not an answer."""
    got = cache.unauthenticated_ping(cfg.redis.url, cfg.redis.timeout_s)
    where = cache.shown(cfg.redis.url)
    evidence.expect(
        "PING without a password",
        got.reply,
        "NOAUTH (authentication required)",
        not got.answered,
        f"Redis at {where} answers PING without a password ({got.reply}), expected NOAUTH: "
        "set requirepass or ACL users",
    )
    evidence.verdict()
