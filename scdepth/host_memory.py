"""Host memory kept for the next training step (config host_memory: cache).

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh mmap
and unmaps it again on free, so each step maps its activations and gradients anew and the
kernel zero-fills them page by page as they are first touched: at KITTI size millions of
page faults a step, a large slowdown on the CPU (benchmarks/RESULTS.md, host-memory
section). Turning glibc's mmap off instead
(mallopt M_MMAP_MAX = 0) does not do: torch's aligned blocks then fragment glibc's heap,
which grows by a freed block's size on every repeat of an allocate-free cycle.

The extension's host cache (csrc/host/host_cache.cpp) is installed as torch's CPU
allocator: a freed block of 1 MiB or more waits for the next request of its size class, so
from the second step on a step maps nothing. It holds at most `limit_factor` x the peak of
the blocks in use at once (cached blocks are freed, largest first, on a miss beyond that).
The numbers computed do not change; the resident memory stays near the peak.
"""

import warnings
from contextlib import contextmanager

from .ops._ext import _C, AVAILABLE, require

LIMIT_FACTOR = 2.0


def enable(limit_factor=LIMIT_FACTOR):
    """Installs the host cache as torch's CPU allocator for this process (again: sets the
    limit). Tensors that exist already keep their allocator."""
    require()
    _C.host_cache_enable(float(limit_factor))


def disable():
    """Puts torch's CPU allocator back and frees the cached blocks; blocks in use are freed
    when their tensors are."""
    require()
    _C.host_cache_disable()


def empty():
    """Frees the cached blocks (those in use stay)."""
    require()
    _C.host_cache_empty()


def stats():
    """{enabled, in_use, cached, peak, hits, misses, evicted}: bytes (by size class) and
    request counts of the cache's blocks of 1 MiB or more since it was first enabled."""
    require()
    return _C.host_cache_stats()


@contextmanager
def caching(on=True, limit_factor=LIMIT_FACTOR):
    """The host cache for the duration of the block (when `on`), taken out after; where it
    is installed already, it stays as it is (limit included). Without the compiled extension
    it warns and leaves torch's allocator in place."""
    if on and not AVAILABLE:
        warnings.warn("host_memory: cache needs scdepth's compiled extension; it is not "
                      "loaded, so torch's default allocator is used", stacklevel=3)
    if not (on and AVAILABLE) or stats()["enabled"]:
        yield
        return
    enable(limit_factor)
    try:
        yield
    finally:
        disable()
