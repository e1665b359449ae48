"""A whole SC-DepthV3 training step against the public code's step pattern.

    python -m benchmarks.bench_public_step [--size H W] [--batch B] [--repeat R]
        [--variants public,ours,...] [--threads N] [--out FILE]

Variants, each on the same networks (DepthNet ResNet-18, PoseNet; seed 0) with its own Adam:

- public: the public code's step: a DepthNet pass per frame and a PoseNet pass per direction
  (its SC_DepthV3.training_step), its loss stack (benchmarks/public_baseline.py: SSIM window
  7, Python loops over the batch), backward, Adam; NCHW float32, torch's own allocator.
- public_cache: the same under the host cache (scdepth.host_memory): what the allocator
  alone gives the public pattern.
- ours_system: scdepth.step.compute_losses on the extension (one batched pass per network,
  fused ops, our defaults), backward, Adam; NCHW float32, torch's own allocator.
- ours: the same under the host cache (config host_memory: cache, the trainer's default).
- ours_channels_last: and the networks channels-last (config channels_last: true).
- ours_channels_last_compile: and compile: all (networks and losses, torch.compile).
- ours_channels_last_bf16: channels-last networks under bf16 autocast (config amp: bf16; the
  losses stay float32). A change of precision, so reported apart from the target.

--variants also takes other combinations: ours, then any of _channels_last, _compile, _bf16
in that order, then _system or _cache for the allocator (ours_channels_last_compile_system).

Each variant runs in a fresh process of its own, and its step is timed after that process's
first step (which, also reported, pays oneDNN's kernel selection, the host cache's first
fill and any compilation): one step, or the median of --steps of them. The variants take
turns, one process each per round, so a change of the machine's load hits them alike and no
variant's memory sits beside another's.
Reported per variant: the median step time, every round, the speed-up over public (the
median of per-round ratios), the page faults of the timed step, the peak of the memory one
step allocates (profiler, in the first round), the process's peak resident memory (what the
host cache holds shows there) and, with --profile, the top ops of a step by self time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from benchmarks import bench_losses, public_baseline
from benchmarks.bench_step import batch_for
from benchmarks.common import paired_ratio, peak_bytes, top_ops

VARIANTS = (
    "public",
    "public_cache",
    "ours_system",
    "ours",
    "ours_channels_last",
    "ours_channels_last_compile",
    "ours_channels_last_bf16",
)
# Run unless --variants says otherwise (the compile variant adds minutes a round)
DEFAULT_VARIANTS = (
    "public",
    "ours_system",
    "ours",
    "ours_channels_last",
    "ours_channels_last_bf16",
)


OPTIONS = ("_channels_last", "_compile", "_bf16")  # in this order, then _cache or _system


def is_variant(name):
    """Whether `name` is public or ours, then any of OPTIONS in order, then an optional
    _cache or _system (e.g. ours_channels_last_compile_system)."""
    rest = name.removeprefix("public") if name.startswith("public") else None
    if rest is None and name.startswith("ours"):
        rest = name.removeprefix("ours")
    if rest is None:
        return False
    for suffix in ("_cache", "_system"):
        if rest.endswith(suffix):
            rest = rest.removesuffix(suffix)
            break
    for option in OPTIONS:
        rest = rest.removeprefix(option)
    return rest == "" and (name.startswith("ours") or name in ("public", "public_cache"))


def host_memory_of(variant):
    """'cache' or 'system': the public code runs on torch's allocator, our trainer on the
    host cache; a _cache / _system suffix says otherwise."""
    if variant.endswith("_cache"):
        return "cache"
    if variant.endswith("_system"):
        return "system"
    return "system" if variant.startswith("public") else "cache"


def public_step(depth_net, pose_net, batch):
    """(total, terms) as the public code computes them: networks called per frame/pair."""
    tgt, refs = batch["tgt"], list(batch["refs"].unbind(1))
    tgt_depth = depth_net(tgt)
    ref_depths = [depth_net(r) for r in refs]
    poses = [pose_net(tgt, r) for r in refs]
    poses_inv = [pose_net(r, tgt) for r in refs]
    return public_baseline.loss_stack(
        "v3",
        tgt,
        refs,
        tgt_depth,
        ref_depths,
        poses,
        poses_inv,
        batch["K"],
        batch["pseudo_depth"],
    )


def make_step(variant, batch):
    """A callable running one training step of `variant` on its own networks and Adam."""
    from scdepth import step as train_step
    from scdepth.models import DepthNet, PoseNet
    from scdepth.ops import get_backend

    torch.manual_seed(0)
    depth_net, pose_net = DepthNet(18), PoseNet(18)
    cfg = bench_losses.make_config("v3", ssim_window=3)  # our default window
    cfg.channels_last = "channels_last" in variant
    cfg.compile = "all" if "compile" in variant else "none"
    train_step.prepare_networks(cfg, depth_net, pose_net)
    opt = torch.optim.Adam([*depth_net.parameters(), *pose_net.parameters()], lr=1e-4)
    amp = torch.bfloat16 if variant.endswith("bf16") else None
    ops, counter = get_backend("ext"), [0]

    def one_step():
        opt.zero_grad(set_to_none=True)
        if variant.startswith("public"):
            total, _ = public_step(depth_net, pose_net, batch)
        else:
            total, _, _ = train_step.compute_losses(
                depth_net, pose_net, batch, cfg, ops, counter[0], amp_dtype=amp
            )
        total.backward()
        opt.step()
        counter[0] += 1

    return one_step


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(variant, shape, *, threads=0, steps=1, peak=False, profile=False):
    """One variant in this process: its first step, then the median time and page faults of
    the `steps` after it, peak memory, resident size; with `profile`, the top ops of one more
    step."""
    from scdepth import host_memory

    if threads:
        torch.set_num_threads(threads)
    with host_memory.caching(host_memory_of(variant) == "cache"):
        one_step = make_step(variant, batch_for(*shape, "cpu"))
        times, faults = [], []
        for _ in range(1 + steps):
            f0, t0 = minor_faults(), time.perf_counter()
            one_step()
            times.append(time.perf_counter() - t0)
            faults.append(minor_faults() - f0)
        row = {
            "variant": variant,
            "first_step_s": times[0],
            "step_s": statistics.median(times[1:]),
            "page_faults": statistics.median(faults[1:]),
            "host_cache": host_memory.stats(),
            "threads": torch.get_num_threads(),
        }
        if peak:
            row["peak_bytes"] = peak_bytes(one_step, "cpu", repeat=2)
        if profile:
            row["top_ops"] = top_ops(one_step, "cpu", n=15)
    row["maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return row


def run_child(variant, shape, threads, steps, peak, profile=False):
    cmd = [sys.executable, "-m", "benchmarks.bench_public_step", "--child", variant]
    cmd += ["--batch", str(shape[0]), "--size", str(shape[1]), str(shape[2])]
    cmd += ["--steps", str(steps)]
    cmd += ["--threads", str(threads)] + (["--peak"] if peak else [])
    cmd += ["--profile"] if profile else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(
    shape, *, repeat=3, variants=DEFAULT_VARIANTS, threads=0, steps=1, profile=False, log=print
):
    """Every variant, `repeat` rounds of one fresh process each: the JSON row. The first
    round also measures peak memory (and with `profile` the top ops) after the timed step."""
    rows = {v: [] for v in variants}
    for r in range(repeat):
        for v in variants:
            first = r == 0
            rows[v].append(run_child(v, shape, threads, steps, first, profile and first))
            log(f"  round {r + 1}/{repeat} {v}: {rows[v][-1]['step_s']:.2f} s")
    public = [x["step_s"] for x in rows["public"]]
    row = {"shape": list(shape), "threads": rows["public"][0]["threads"], "steps": steps}
    row["variants"] = {}
    for v in variants:
        times = [x["step_s"] for x in rows[v]]
        row["variants"][v] = out = {
            "host_memory": host_memory_of(v),
            "step_s": statistics.median(times),
            "times_s": times,
            "first_step_s": [x["first_step_s"] for x in rows[v]],
            "page_faults": statistics.median(x["page_faults"] for x in rows[v]),
            "speedup_over_public": paired_ratio(public, times),
            "peak_bytes": rows[v][0]["peak_bytes"],
            "maxrss_bytes": statistics.median(x["maxrss_bytes"] for x in rows[v]),
            "host_cache": rows[v][-1]["host_cache"],
            **({"top_ops": rows[v][0]["top_ops"]} if profile else {}),
        }
        log(
            f"  {v}: {out['step_s']:.2f} s/step, {out['speedup_over_public']:.2f}x public, "
            f"{out['page_faults']:.0f} page faults, peak {out['peak_bytes'] / 2**20:.0f} MiB, "
            f"resident {out['maxrss_bytes'] / 2**20:.0f} MiB"
        )
        for op in out.get("top_ops", []):
            log(f"    {op['name']}: {op['self_ms']:.0f} ms ({op['calls']} calls)")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(256, 832), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=1, help="timed steps a process (median)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    ap.add_argument("--profile", action="store_true", help="the top ops of each variant")
    ap.add_argument("--out", help="write the figures to this JSON file")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one variant, in this process
    ap.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    shape = (a.batch, *a.size)
    if a.child:
        row = measure(
            a.child, shape, threads=a.threads, steps=a.steps, peak=a.peak, profile=a.profile
        )
        print(json.dumps(row))
        return 0
    variants = tuple(a.variants.split(","))
    unknown = [v for v in variants if not is_variant(v)]
    if unknown or "public" not in variants:
        ap.error(
            f"--variants: public and any of {', '.join(VARIANTS[1:])} (or ours with other "
            f"options in this order: {', '.join(OPTIONS)}, then _cache or _system), got "
            f"{a.variants}"
        )
    row = run(
        shape,
        repeat=a.repeat,
        variants=variants,
        threads=a.threads,
        steps=a.steps,
        profile=a.profile,
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(row, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
