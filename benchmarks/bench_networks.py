"""The networks of a training step on the CPU: forward + backward of the DepthNet (target and
references) and the PoseNet (both directions), as `scdepth.step.predict` runs them, in the
layouts and modes the CPU path offers, timed in turns; achieved GFLOP/s against the machine's
peak.

    python -m benchmarks.bench_networks [--size H W] [--batch B] [--threads N] [--repeat R]
        [--variants eager,channels_last,compile,compile_channels_last,bf16]

FLOPs are counted by torch.utils.flop_counter (convolutions and matmuls, forward and
backward). The peak is written out from the machine: cores x FMA units per core (2) x fp32
lanes per unit (16 on 512-bit units: Zen 5, Intel's AVX-512 cores; 8 on 256-bit ones: AVX2,
and Zen 4, which runs AVX-512 in two halves) x 2 flops per FMA x the clock /proc/cpuinfo
reports, which is the nominal one; a large matmul's rate is printed beside it as the
attainable peak (boost clock included). Run it under the host cache, as the trainer would.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import interleaved_timings
from scdepth import host_memory
from scdepth.models import DepthNet, PoseNet
from scdepth.step import predict

VARIANTS = ("eager", "channels_last", "compile", "compile_channels_last", "bf16")
FMA_UNITS = 2


def fma_lanes(cpuinfo: str) -> tuple[int, int, str]:
    """(FMA units per core, fp32 lanes per unit, what the vector units are) of this CPU.
    AMD family 25 (Zen 3, Zen 4) has two 256-bit FMA units, Zen 4 running AVX-512 on them
    in two halves; Zen 5 (family 26) and Intel's AVX-512 server cores have two 512-bit ones."""
    family = re.search(r"cpu family\s*:\s*(\d+)", cpuinfo)
    amd = "AuthenticAMD" in cpuinfo
    if "avx512f" in cpuinfo and not (amd and family and int(family.group(1)) <= 25):
        return FMA_UNITS, 16, "512-bit"
    return FMA_UNITS, 8, "256-bit (AVX-512 in two halves)" if "avx512f" in cpuinfo else "256-bit"


def peak_gflops(cores: int) -> tuple[float, str]:
    """(peak fp32 GFLOP/s, the product written out) of `cores` cores of this CPU at the clock
    /proc/cpuinfo reports (the nominal one: cores boost above it, see matmul_gflops)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    mhz = re.search(r"cpu MHz\s*:\s*([\d.]+)", text)
    ghz = float(mhz.group(1)) / 1e3 if mhz else float("nan")
    units, lanes, kind = fma_lanes(text)
    peak = cores * units * lanes * 2 * ghz
    how = f"{cores} cores x {units} FMA ({kind}) x {lanes} fp32 lanes x 2 flops x {ghz:.2f} GHz"
    return peak, how


def matmul_gflops(n=2048, repeat=5) -> float:
    """What a large fp32 matmul reaches here: the attainable peak, boost clock included."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def make_step(variant, B, H, W, seed=0):
    """A callable running one forward + backward of both networks in `variant`."""
    torch.manual_seed(seed)
    depth_net, pose_net = DepthNet(18), PoseNet(18)
    fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
    depth_net, pose_net = (n.to(memory_format=fmt) for n in (depth_net, pose_net))
    if variant.startswith("compile"):
        depth_net, pose_net = torch.compile(depth_net), torch.compile(pose_net)
    g = torch.Generator().manual_seed(seed)
    tgt = torch.rand(B, 3, H, W, generator=g).contiguous(memory_format=fmt)
    refs = torch.rand(B, 2, 3, H, W, generator=g)

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=variant == "bf16"):
            tgt_depth, ref_depths, poses, poses_inv = predict(depth_net, pose_net, tgt, refs)
            total = tgt_depth.float().mean() + sum(d.float().mean() for d in ref_depths)
            total = total + sum(p.float().square().mean() for p in poses + poses_inv)
        total.backward()
        for p in (*depth_net.parameters(), *pose_net.parameters()):
            p.grad = None

    return step


def count_flops(B, H, W) -> int:
    step = make_step("eager", B, H, W)
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(256, 832), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--host-memory", choices=("cache", "system"), default="cache")
    a = ap.parse_args(argv)
    variants = a.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"--variants: unknown {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    torch.set_num_threads(a.threads)
    # the variants share this process: room in the cache for each one's blocks
    with host_memory.caching(a.host_memory == "cache", limit_factor=len(variants) + 1):
        return report(variants, a.size, a.batch, a.threads, a.warmup, a.repeat)


def report(variants, size, B, threads, warmup, repeat):
    (H, W) = size
    flops = count_flops(B, H, W)
    peak, how = peak_gflops(threads)
    attainable = matmul_gflops()
    steps = {v: make_step(v, B, H, W) for v in variants}
    times = interleaved_timings(steps, "cpu", warmup=warmup, repeat=repeat)
    base = statistics.median(times[variants[0]])
    print(f"networks fwd+bwd, B={B} {H}x{W}, {threads} threads, torch {torch.__version__}")
    print(f"{flops / 1e9:.1f} GFLOP per step; peak {peak:.0f} GFLOP/s = {how}")
    print(f"a 2048x2048 fp32 matmul here: {attainable:.0f} GFLOP/s")
    print("| variant | median s | rounds (s) | vs first | GFLOP/s | of peak | of matmul |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for v in variants:
        t = statistics.median(times[v])
        rounds = ", ".join(f"{x:.2f}" for x in times[v])
        rate = flops / t / 1e9
        row = f"| {v} | {t:.2f} | {rounds} | {base / t:.2f}x | {rate:.0f} | {rate / peak:.0%} |"
        print(f"{row} {rate / attainable:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
