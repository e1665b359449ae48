"""Timing, peak memory and machine description for the benchmarks.

Times are medians of repeated runs after warm-up (CUDA events on a GPU). Peak memory is the
largest amount of memory the measured call had allocated at once beyond what existed before
it: from the caching allocator's statistics on a GPU, from the profiler's allocation events
on the CPU.
"""

import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch


@dataclass
class Case:
    """One benchmark: an op at one size, with a runner per backend.

    make(backend, device, dtype) -> (forward, grads): forward() runs the op and returns its
    outputs; grads are the output gradients for backward (None: forward only)."""

    op: str
    size: str
    make: object
    pixels: int = 0
    bytes_moved: object = None  # fn(dtype) -> minimum bytes a forward+backward must move
    meta: dict = field(default_factory=dict)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device, *, setup=None, warmup=2, repeat=7):
    """Median wall time of fn() in seconds; setup() runs untimed before each call and its
    result is passed to fn."""
    cuda = torch.device(device).type == "cuda"
    times = []
    for i in range(warmup + repeat):
        state = setup() if setup else None
        sync(device)
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(state) if setup else fn()
            end.record()
            torch.cuda.synchronize()
            elapsed = start.elapsed_time(end) / 1e3
        else:
            t0 = time.perf_counter()
            fn(state) if setup else fn()
            elapsed = time.perf_counter() - t0
        if i >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def peak_bytes(fn, device):
    """Peak memory allocated by fn() beyond what was allocated before it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    activity = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activity, profile_memory=True) as prof:
        fn()
    running = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def machine(device):
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            device=p.name, cuda=torch.version.cuda, memory_gib=round(p.total_memory / 2**30, 1)
        )
    else:
        info.update(device=cpu_name(), cores=os.cpu_count())
    return info


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
