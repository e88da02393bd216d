"""Daily: the host has CPU, memory and disk to spare."""

import pytest

from opscheck.probes.host import where


@pytest.mark.daily
def test_cpu_usage(ops_host, cfg, evidence):
    """CPU 사용률 < 80%: CPU busy %, sampled over [hosts] cpu_sample_s seconds."""
    busy, at = ops_host.cpu_percent(cfg.hosts.cpu_sample_s), where(ops_host)
    evidence.at_most(
        f"{at}CPU busy over {cfg.hosts.cpu_sample_s:g} s", busy, "%", cfg.thresholds.cpu_percent
    )
    evidence.verdict()


@pytest.mark.daily
def test_memory_usage(ops_host, cfg, evidence):
    """메모리 사용률 < 85%: memory in use (total less available)."""
    used, at = ops_host.memory_percent(), where(ops_host)
    evidence.at_most(f"{at}memory used", used, "%", cfg.thresholds.memory_percent)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
def test_disk_usage(ops_host, mount, cfg, evidence):
    """디스크 사용률 < 90%: space and inodes of every watched mount."""
    usage, at = ops_host.disk_usage(mount), where(ops_host)
    limit = cfg.thresholds.disk_percent
    evidence.at_most(f"{at}{usage.mount} space used", usage.space_percent, "%", limit)
    if usage.inodes_percent is not None:
        evidence.at_most(f"{at}{usage.mount} inodes used", usage.inodes_percent, "%", limit)
    evidence.verdict()
