"""One SC-DepthV3 training step (DepthNet and PoseNet forward, every loss, backward, Adam)
on the extension against the reference ops: iterations/s, peak memory, and the share of the
step spent in the losses.

The share is measured, not estimated: a third variant runs the same networks, backward and
optimiser step with a trivial loss in place of the loss stack; share = 1 - t_networks / t_step.
The variants run in turns, so that the machine's load hits them alike.
"""

import statistics

import torch

from benchmarks import bench_losses
from benchmarks.common import interleaved_timings, paired_ratio, peak_bytes
from scdepth.step import compute_losses, predict


def batch_for(B, H, W, device, num_refs=bench_losses.NUM_REFS, seed=0):
    """The trainer's batch: tgt [B, 3, H, W], refs [B, N, 3, H, W], K, pseudo_depth."""
    b = bench_losses.synthetic_batch(B, H, W, num_refs=num_refs, seed=seed)
    return {
        "tgt": b["tgt"].to(device),
        "refs": torch.stack(b["refs"], 1).to(device),
        "K": b["K"].to(device),
        "pseudo_depth": b["pseudo_depth"].to(device),
    }


def run(
    name,
    shape,
    device,
    *,
    amp_dtype=None,
    method="v3",
    warmup=1,
    repeat=3,
    peak_repeat=2,
    log=print,
):
    from scdepth.models import DepthNet, PoseNet
    from scdepth.ops import get_backend

    B, H, W = shape
    torch.manual_seed(0)
    depth_net, pose_net = DepthNet(18).to(device), PoseNet(18).to(device)
    params = list(depth_net.parameters()) + list(pose_net.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    cfg = bench_losses.make_config(method, ssim_window=3)  # our default window
    batch = batch_for(B, H, W, device)
    counter = [0]

    def train_step(backend):
        ops = get_backend(backend)

        def step():
            opt.zero_grad(set_to_none=True)
            total, _, _ = compute_losses(
                depth_net, pose_net, batch, cfg, ops, counter[0], amp_dtype=amp_dtype
            )
            total.backward()
            opt.step()
            counter[0] += 1

        return step

    def networks_only():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(
            torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None
        ):
            tgt_depth, ref_depths, poses, poses_inv = predict(
                depth_net, pose_net, batch["tgt"], batch["refs"]
            )
        total = sum(d.mean() for d in [tgt_depth, *ref_depths]) + sum(
            p.sum() for p in poses + poses_inv
        )
        total.backward()
        opt.step()

    fns = {
        "ext": train_step("ext"),
        "reference": train_step("reference"),
        "networks": networks_only,
    }
    times = interleaved_timings(fns, device, warmup=warmup, repeat=repeat)
    row = {
        "method": method,
        "size": f"{name} B{B} {H}x{W}",
        "shape": list(shape),
        "device": str(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none",
    }
    t_net = statistics.median(times["networks"])
    for backend in ("ext", "reference"):
        t = statistics.median(times[backend])
        row[backend] = {
            "step_s": t,
            "min_s": min(times[backend]),
            "times_s": times[backend],
            "it_per_s": 1.0 / t,
            "loss_share": max(0.0, 1.0 - paired_ratio(times["networks"], times[backend])),
            "peak_bytes": peak_bytes(fns[backend], device, repeat=peak_repeat),
        }
        log(f"  step {row['size']} {row['amp']} {backend}: {t:.3f} s/it")
    row["networks_s"] = t_net
    # ratios paired by round: robust to the load of a shared machine changing between rounds
    row["speedup"] = paired_ratio(times["reference"], times["ext"])
    row["speedup_bound"] = paired_ratio(times["reference"], times["networks"])
    row["networks_times_s"] = times["networks"]
    row["memory_ratio"] = row["ext"]["peak_bytes"] / max(row["reference"]["peak_bytes"], 1)
    return row
