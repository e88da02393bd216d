"""Daily: the host has CPU, memory and disk to spare."""

import pytest


@pytest.mark.daily
def test_cpu_usage(ops_host, cfg, evidence):
    """CPU 사용률 < 80%: CPU busy %, sampled over [hosts] cpu_sample_s seconds."""
    busy = ops_host.cpu_percent(cfg.hosts.cpu_sample_s)
    evidence.at_most(
        f"CPU busy over {cfg.hosts.cpu_sample_s:g} s", busy, "%", cfg.thresholds.cpu_percent
    )
    evidence.verdict()


@pytest.mark.daily
def test_memory_usage(ops_host, cfg, evidence):
    """메모리 사용률 < 85%: memory in use (total less available)."""
    evidence.at_most("memory used", ops_host.memory_percent(), "%", cfg.thresholds.memory_percent)
    evidence.verdict()


@pytest.mark.daily
@pytest.mark.critical
def test_disk_usage(ops_host, mount, cfg, evidence):
    """디스크 사용률 < 90%: space and inodes of every watched mount."""
    usage = ops_host.disk_usage(mount)
    limit = cfg.thresholds.disk_percent
    evidence.at_most(f"{usage.mount} space used", usage.space_percent, "%", limit)
    if usage.inodes_percent is not None:
        evidence.at_most(f"{usage.mount} inodes used", usage.inodes_percent, "%", limit)
    evidence.verdict()
