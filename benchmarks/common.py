"""Timing, peak memory, bandwidth and machine description for the benchmarks.

Times are medians of repeated runs after warm-up (CUDA events on a GPU). Peak memory is the
largest amount of memory the measured call had allocated at once beyond what existed before
it: from the caching allocator's statistics on a GPU, from the profiler's allocation events
on the CPU.
"""

import gc
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch

# The datasets' training sizes the targets are set at: (B, H, W) of one batch.
SIZES = {"KITTI": (4, 256, 832), "DDAD": (4, 384, 640), "NYU": (8, 256, 320)}
# --quick replaces them with this one (tests, dry runs of the GPU kit).
QUICK_SIZES = {"TINY": (2, 64, 96)}
# Scaling runs at the KITTI size times these pixel factors (side lengths x 0.5, x1, x2).
SCALE_FACTORS = (0.25, 1.0, 4.0)
# The parts of benchmarks.run, in the order of its --parts.
PARTS = ("ops", "scaling", "bandwidth", "losses", "step")


@dataclass
class Case:
    """One benchmark: an op at one size, with a runner per backend.

    make(backend, device, dtype, backward) -> (forward, grads): forward() runs the op and
    returns its outputs; grads are the output gradients for backward (None: forward only).
    shape: (B, H, W). bytes_moved(dtype): the bytes a forward+backward must at least move
    (for bytes/s on a GPU); None when the op is not memory-bound."""

    op: str
    size: str
    make: object
    pixels: int = 0
    bytes_moved: object = None
    meta: dict = field(default_factory=dict)
    shape: tuple = None

    @classmethod
    def at(cls, op, label, shape, make, bytes_moved, meta=None):
        """The case of an op at one size (B, H, W): make and bytes_moved are its factories,
        called with B, H, W (make's extra arguments bound by the caller)."""
        B, H, W = shape
        return cls(op, label, make(B, H, W), B * H * W, bytes_moved(B, H, W), meta or {}, shape)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timings(fn, device, *, setup=None, warmup=2, repeat=7):
    """Wall times of fn() in seconds, `repeat` of them after `warmup` untimed calls; setup()
    runs untimed before each call and its result is passed to fn. CUDA events on a GPU."""
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
    return times


def median_time(fn, device, *, setup=None, warmup=2, repeat=7):
    """Median of timings(...)."""
    return statistics.median(timings(fn, device, setup=setup, warmup=warmup, repeat=repeat))


def peak_bytes(fn, device, repeat=1):
    """Peak memory allocated by fn() beyond what was allocated before it; with repeat > 1 the
    smallest of that many measurements (on the CPU, stray allocations of other threads and
    late frees of earlier garbage only ever add to it, by up to ~10% on a training step)."""
    if repeat > 1:
        return min(_peak_bytes(fn, device) for _ in range(repeat))
    return _peak_bytes(fn, device)


def _peak_bytes(fn, device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    gc.collect()  # garbage of earlier calls must not be freed (or counted) inside
    activity = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activity, profile_memory=True) as prof:
        fn()
    try:  # the allocator's own events, each allocation and free with its time
        events = [
            (e.start_ns(), e.nbytes())
            for e in prof.profiler.kineto_results.events()
            if e.name() == "[memory]"
        ]
    except AttributeError:  # an older profiler: per-op memory, ordered by op start
        events = [(e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()]
    running = peak = 0
    for _, nbytes in sorted(events, key=lambda x: x[0]):
        running += nbytes
        peak = max(peak, running)
    return peak


def copy_bandwidth(device, nbytes=1 << 30, repeat=10):
    """Device-to-device copy bandwidth in bytes/s: a large tensor copied into another, counted
    as read + write (2 x nbytes per copy), median over `repeat` copies (CUDA events on a GPU).
    The physical limit the memory-bound kernels are compared with."""
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t = median_time(lambda: dst.copy_(src), device, warmup=2, repeat=repeat)
    return 2 * nbytes / t


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(device):
    """What ran the benchmarks: device name, torch and CUDA versions, cores, load."""
    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": load_average(),
    }
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            device=p.name,
            kind="cuda",
            capability=f"{p.major}.{p.minor}",
            memory_gib=round(p.total_memory / 2**30, 1),
        )
    else:
        info.update(device=info["cpu"], kind="cpu")
    try:
        import scdepth.ops

        info["extension_with_cuda"] = scdepth.ops.with_cuda()
    except Exception:  # noqa: BLE001 - a description must not fail the run
        pass
    return info


def describe(m):
    """One line naming the machine of machine() (older files may lack some keys)."""
    g = m.get
    if g("kind") == "cuda":
        cap = str(g("capability", "?")).replace(".", "")
        head = f"{g('device', '?')} (sm_{cap}, {g('memory_gib', '?')} GiB)"
        return f"{head}, torch {g('torch', '?')}, CUDA {g('cuda', '?')}, host CPU {g('cpu', '?')}"
    return (
        f"{g('device', '?')}, {g('cores', '?')} cores, {g('threads', '?')} threads,"
        f" torch {g('torch', '?')} (CUDA {g('cuda') or 'none'}: GPU code unused)"
    )


def cpu_name():
    name, family, model = None, None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and name is None:
                    name = value
                elif key == "cpu family" and family is None:
                    family = value
                elif key == "model" and model is None:
                    model = value
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    if family and model:
        name += f" (family {family}, model {model})"
    return name


def interleaved_timings(fns, device, *, warmup=1, repeat=5):
    """Wall times of several callables {name: fn}, run in turns (one call of each per round)
    so that a change in the machine's load hits them all alike: {name: [seconds, ...]}.
    A value may also be (setup, fn): setup() runs untimed and fn(its result) is timed."""
    cuda = torch.device(device).type == "cuda"
    times = {name: [] for name in fns}
    for i in range(warmup + repeat):
        for name, entry in fns.items():
            if isinstance(entry, tuple):
                setup, body = entry
                state = setup()

                def fn(body=body, state=state):
                    body(state)
            else:
                fn = entry
            sync(device)
            if cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                elapsed = start.elapsed_time(end) / 1e3
            else:
                t0 = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(elapsed)
    return times


def top_ops(fn, device, n=12):
    """The n most expensive aten ops of one fn() call by self time (profiler), as
    [{'name', 'self_ms', 'calls'}]: where the time goes."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = torch.device(device).type == "cuda"
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        sync(device)
    rows = []
    for e in prof.key_averages():
        self_us = e.self_device_time_total if cuda else e.self_cpu_time_total
        rows.append({"name": e.key, "self_ms": self_us / 1e3, "calls": e.count})
    rows.sort(key=lambda r: -r["self_ms"])
    return rows[:n]


def paired_ratio(num, den):
    """Median over rounds of num[i] / den[i]: a ratio of two interleaved timings that a change
    of the machine's load between rounds does not bias (both sides of a round see the same)."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))
