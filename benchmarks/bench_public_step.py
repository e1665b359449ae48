"""A whole SC-DepthV3 training step against the public code's step pattern (issue 16 item 3).

    python -m benchmarks.bench_public_step [--size H W] [--batch B] [--repeat R] [--out FILE]

Variants, run in turns (one step of each per round), each with its own copy of the same
networks (DepthNet ResNet-18, PoseNet) and its own Adam:

- public: the public code's step: a DepthNet pass per frame and a PoseNet pass per direction
  (its SC_DepthV3.training_step), its loss stack (benchmarks/public_baseline.py: SSIM window
  7, Python loops over the batch), backward, Adam; NCHW float32.
- ours: scdepth.step.compute_losses on the extension (one batched pass per network, fused
  ops, our defaults), backward, Adam; NCHW float32.
- ours_channels_last: the same with the networks channels-last (config channels_last: true).
- ours_channels_last_bf16: and the networks under bf16 autocast (config amp: bf16; the losses
  stay float32). A change of precision, so reported apart from the target.

Reports per variant the median step time, every round, the speed-up over public (the median
of per-round ratios) and the peak memory of one step.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import torch

from benchmarks import bench_losses, public_baseline
from benchmarks.bench_step import batch_for
from benchmarks.common import interleaved_timings, paired_ratio, peak_bytes
from scdepth.models import DepthNet, PoseNet
from scdepth.ops import get_backend
from scdepth.step import compute_losses

VARIANTS = ("public", "ours", "ours_channels_last", "ours_channels_last_bf16")


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


def make_steps(batch, variants=VARIANTS):
    """{variant: fn() running one training step}, each on its own copy of the networks."""
    torch.manual_seed(0)
    nets = DepthNet(18), PoseNet(18)
    cfg = bench_losses.make_config("v3", ssim_window=3)  # our default window
    ops = get_backend("ext")
    counter = [0]
    steps = {}
    for name in variants:
        depth_net, pose_net = (copy.deepcopy(n) for n in nets)
        if "channels_last" in name:
            for n in (depth_net, pose_net):
                n.to(memory_format=torch.channels_last)
        params = [*depth_net.parameters(), *pose_net.parameters()]
        opt = torch.optim.Adam(params, lr=1e-4)
        amp = torch.bfloat16 if name.endswith("bf16") else None

        def step(name=name, depth_net=depth_net, pose_net=pose_net, opt=opt, amp=amp):
            opt.zero_grad(set_to_none=True)
            if name == "public":
                total, _ = public_step(depth_net, pose_net, batch)
            else:
                total, _, _ = compute_losses(
                    depth_net, pose_net, batch, cfg, ops, counter[0], amp_dtype=amp
                )
            total.backward()
            opt.step()
            counter[0] += 1

        steps[name] = step
    return steps


def run(shape, device="cpu", *, repeat=3, warmup=1, variants=VARIANTS, log=print):
    B, H, W = shape
    steps = make_steps(batch_for(B, H, W, device), variants)
    times = interleaved_timings(steps, device, warmup=warmup, repeat=repeat)
    row = {"shape": list(shape), "threads": torch.get_num_threads(), "variants": {}}
    for name in variants:
        row["variants"][name] = {
            "step_s": statistics.median(times[name]),
            "times_s": times[name],
            "speedup_over_public": paired_ratio(times["public"], times[name]),
            "peak_bytes": peak_bytes(steps[name], device, repeat=2),
        }
        v = row["variants"][name]
        log(
            f"  {name}: {v['step_s']:.2f} s/step, {v['speedup_over_public']:.2f}x public, "
            f"peak {v['peak_bytes'] / 2**20:.0f} MiB"
        )
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(256, 832), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", help="write the figures to this JSON file")
    a = ap.parse_args(argv)
    variants = tuple(a.variants.split(","))
    unknown = set(variants) - set(VARIANTS)
    if unknown or "public" not in variants:
        ap.error(f"--variants: public and any of {', '.join(VARIANTS[1:])}, got {a.variants}")
    row = run((a.batch, *a.size), repeat=a.repeat, variants=variants)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(row, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
