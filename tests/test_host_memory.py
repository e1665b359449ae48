"""The host cache (scdepth.host_memory, csrc/host/host_cache.cpp): torch's CPU allocator
while a run trains, keeping freed blocks of 1 MiB or more for the next step."""

import mmap
import platform
import resource

import pytest
import torch

from scdepth import host_memory
from scdepth.ops import _ext

pytestmark = pytest.mark.skipif(not _ext.AVAILABLE, reason="needs the compiled extension")
MiB = 2**20


def size_class(n):
    return _ext._C.host_cache_size_class(n)


def faults_of(fn):
    """Minor page faults of this process during fn() (Linux: the kernel's count)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def touch(nbytes):
    t = torch.empty(nbytes, dtype=torch.uint8)
    t.fill_(1)
    return t


def test_size_classes_round_up_by_at_most_an_eighth():
    assert size_class(1000) == 1000 and size_class(MiB - 1) == MiB - 1  # not cached: exact
    prev = 0
    for n in [MiB, MiB + 1, 3 * MiB + 5, 100 * MiB - 3, 163 * MiB + 12345, 5 * 2**30 + 7]:
        c = size_class(n)
        assert n <= c <= n * 1.125 and c >= prev
        assert size_class(c) == c  # a class is its own class
        prev = c
    classes = {size_class(n) for n in range(64 * MiB + 1, 128 * MiB + 1, 99_991)}
    assert len(classes) == 8  # (64, 128] MiB: 72, 80, ..., 128


@pytest.mark.skipif(platform.system() != "Linux", reason="counts the kernel's page faults")
def test_a_freed_block_is_reused_without_page_faults():
    """The cache hands a freed 64 MiB block back to the next request of its class, pages
    and all: none is faulted in again. The control shows that the count sees fresh pages (a
    new anonymous mapping faults once a page). torch's own allocator is no control: glibc may
    serve the block from a free stretch of its heap that earlier work left resident."""
    assert not host_memory.stats()["enabled"], "an earlier test left the cache installed"
    pages = 64 * MiB // 4096
    with mmap.mmap(-1, 64 * MiB) as fresh:
        assert faults_of(lambda: torch.frombuffer(fresh, dtype=torch.uint8).fill_(1)) > 0.9 * pages
    with host_memory.caching():
        touch(64 * MiB)
        before = host_memory.stats()
        assert faults_of(lambda: touch(64 * MiB)) < 0.05 * pages
        after = host_memory.stats()
        assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
    assert not host_memory.stats()["enabled"] and host_memory.stats()["cached"] == 0


def test_the_cache_stays_within_its_limit():
    """On a miss, cached blocks of other classes are freed while the process would hold more
    than limit_factor x the peak in use; with a larger factor they stay."""
    host_memory.enable(limit_factor=1.0)
    try:
        host_memory.empty()
        peak = host_memory.stats()["peak"]
        small = touch(8 * MiB)
        del small
        s = host_memory.stats()
        assert s["cached"] >= 8 * MiB
        big = touch(max(peak, 8 * MiB) + 32 * MiB)  # a new class beyond the peak: evicts
        s2 = host_memory.stats()
        assert s2["evicted"] - s["evicted"] >= 8 * MiB
        assert s2["in_use"] + s2["cached"] <= max(s2["peak"], s2["in_use"])
        del big
        host_memory.enable(limit_factor=1e6)  # a larger limit: nothing is evicted
        s3 = host_memory.stats()
        held = [touch(size_class(3 * MiB) * (k + 2)) for k in range(3)]
        del held
        assert host_memory.stats()["evicted"] == s3["evicted"]
    finally:
        host_memory.disable()


def test_tensors_cross_the_install_both_ways():
    """A tensor made before the install is freed while it runs, one made while it runs is
    freed after, and oneDNN's convolutions (whose memory torch frees through the current
    allocator) run across both: nothing crashes and the numbers are those of torch's own."""
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(4, 16, 64, 96, requires_grad=True)
    expected = conv(x).square().sum()
    expected.backward()
    grad = x.grad.clone()
    early = torch.randn(3 * MiB)
    with host_memory.caching():
        del early  # allocated by torch's allocator, freed while the cache is installed
        x.grad = None
        for _ in range(2):
            got = conv(x).square().sum()
            got.backward()
        late = torch.ones(3 * MiB)
        assert host_memory.stats()["in_use"] >= late.numel() * 4
    assert torch.equal(got, expected) and torch.equal(x.grad, 2 * grad)
    del late  # allocated by the cache, freed after it was taken out


def test_the_profiler_still_sees_the_allocations():
    """benchmarks.common.peak_bytes reads the profiler's memory events: they must still come."""
    from benchmarks.common import peak_bytes

    with host_memory.caching():
        touch(16 * MiB)  # now cached: the measured call is a hit
        peak = peak_bytes(lambda: touch(16 * MiB), "cpu")
    assert 16 * MiB <= peak < 17 * MiB


def test_the_trainer_installs_it_only_when_configured(monkeypatch, tmp_path):
    from scdepth import train

    seen = []

    class Stop(Exception):
        pass

    def fake_trainer(*args, **kwargs):
        seen.append(host_memory.stats()["enabled"])
        raise Stop

    monkeypatch.setattr(train, "Trainer", fake_trainer)
    for setting in ("cache", "system"):
        cfg = train.config.load(overrides=[f"host_memory={setting}", "device=cpu"])
        with pytest.raises(Stop):
            train.train(cfg, tmp_path / setting)
    assert seen == [True, False] and not host_memory.stats()["enabled"]


class _Blocks(torch.utils.data.Dataset):
    """Items of 2 MiB, made in the worker: the worker's copy of the cache serves them."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.full((2**19,), float(i))


def test_forked_loader_workers_allocate_through_their_copy_of_the_cache():
    loader = torch.utils.data.DataLoader(
        _Blocks(), batch_size=2, num_workers=2, multiprocessing_context="fork"
    )
    with host_memory.caching():
        torch.ones(4 * MiB)  # something cached in the parent before the fork
        batches = list(loader)
    assert [b[:, 0].tolist() for b in batches] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(torch.equal(b[k], torch.full_like(b[k], b[k, 0])) for b in batches for k in (0, 1))


def test_training_under_the_cache_is_bit_identical_to_torchs_allocator(tiny_synthetic, tmp_path):
    """The cache hands blocks back as they were left, not zero-filled: an op that read memory
    it had not written would differ here. At 128x128 the activations are cached blocks."""
    from conftest import tiny_config

    from scdepth import train

    runs, hits = {}, host_memory.stats()["hits"]
    for setting in ("cache", "system"):
        cfg = tiny_config(tiny_synthetic, image_size=[128, 128], host_memory=setting)
        runs[setting] = train.train(cfg, tmp_path / setting, progress=False)
    assert host_memory.stats()["hits"] > hits + 100
    logs = [(tmp_path / s / "log.jsonl").read_text().splitlines() for s in runs]
    assert logs[0] == logs[1]
    for net in ("depth_net", "pose_net"):
        a, b = (getattr(r, net).state_dict() for r in runs.values())
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_nested_caching_block_leaves_the_outer_one_installed():
    with host_memory.caching():
        with host_memory.caching():
            assert host_memory.stats()["enabled"]
        assert host_memory.stats()["enabled"]
    assert not host_memory.stats()["enabled"]
