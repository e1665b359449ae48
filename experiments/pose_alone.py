"""Can the PoseNet learn a recording's poses within a run's budget? A fresh PoseNet, alone.

    python -m experiments.pose_alone --config configs/7scenes.yaml --data-root ROOT \\
        --heldout HELDOUT (--supervised | --depth-net FILE) [--steps N] [--lr LR] \\
        [--every N] [--set KEY=VALUE ...]

A PoseNet as the config builds it (from scratch unless `pretrained: imagenet`), trained on the
config's data, size, frame spacing, augmentation and batch, with Adam at a constant --lr
(default: the config's), on one of:

- --supervised: the GT relative poses of the scenes' poses.txt (mirrored with flipped
  images, as experiments.known_poses gives them), squared error on the raw outputs (the
  pose vector over the network's output scales). What this network learns of this data in
  this budget when it is told the answer: a bound for what the photometric loss can teach it.
- --depth-net FILE: the config's training loss with that DepthNet held fixed (a depth_net.pt
  of experiments.known_poses, or a checkpoint). Whether the loss teaches the PoseNet when
  the depth is good.

Every --every steps: experiments.pose_diagnosis's measures on HELDOUT's pose scenes (snippet
ATE beside zero motion and constant velocity, the rotation a step against the GT's and its
error).
"""

from __future__ import annotations

import argparse
import time

import torch

from experiments.known_poses import batch_poses, batches, train_folder
from experiments.pose_diagnosis import diagnose_net
from scdepth import checkpoint, config, pose_eval
from scdepth.models import DepthNet, PoseNet
from scdepth.models.pose_net import POSE_SCALE
from scdepth.ops import get_backend
from scdepth.precision import amp_dtype
from scdepth.step import compute_losses, pose_pairs


def fixed_depth_net(path, layers) -> DepthNet:
    """The DepthNet of a known_poses depth_net.pt (ResNet-`layers`) or of a checkpoint, frozen,
    in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "steps" in state:  # experiments.known_poses' file
        net = DepthNet(layers)
        net.load_state_dict(state["depth_net"])
    else:
        net = checkpoint.load_depth_model(path)[0]
    return net.eval().requires_grad_(False)


def supervised_loss(pose_net, batch, target, amp=None):
    """Squared error of the raw outputs against the GT pose vectors [2 N B, 6] (pose_pairs'
    order), both over the output scales so that translation and rotation weigh alike; the
    network under autocast to `amp` (None: float32), as the trainer runs it."""
    scale = torch.tensor([POSE_SCALE] * 3 + [pose_net.rotation_scale] * 3)
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        out = pose_net(*pose_pairs(batch["tgt"], batch["refs"]))
    return ((out.float() - target) / scale).pow(2).mean()


def report(step, pose_net, size, scenes, log) -> dict:
    r = diagnose_net(pose_net, size, scenes)
    pose_net.train()
    ate = r["snippet_ate"]
    log(
        f"step {step}: held-out snippet ATE {ate['posenet']:.4f} (zero {ate['zero']:.4f}, "
        f"constant velocity {ate['constant-velocity']:.4f}); rotation a step "
        f"{r['rot_deg']:.2f} deg (GT {r['gt_rot_deg']:.2f}), its error {r['rot_err_deg']:.2f}"
    )
    return {"step": step, **r}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--heldout", required=True, help="pose scenes to score (val split)")
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--supervised", action="store_true", help="regress the GT poses")
    how.add_argument("--depth-net", help="train on the loss with this DepthNet held fixed")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, help="default: the config's")
    ap.add_argument("--every", type=int, default=100, help="score every N steps")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    a = ap.parse_args(argv)
    cfg = config.load(a.config, [f"data_root={a.data_root}", *a.set])
    torch.manual_seed(cfg.seed)
    data = train_folder(cfg)
    gts = [pose_eval.load_pose_scene(s.path).gt for s in data.scenes]
    scenes = pose_eval.pose_scenes(a.heldout, "val")
    size = tuple(cfg.image_size)
    pose_net = PoseNet(18, cfg.pretrained == "imagenet", cfg.pose_rotation_scale)
    opt = torch.optim.Adam(pose_net.parameters(), lr=a.lr or cfg.lr)
    depth_net = None if a.supervised else fixed_depth_net(a.depth_net, cfg.resnet_layers)
    ops, amp = get_backend(cfg.backend), amp_dtype(cfg.amp, torch.device("cpu"))
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    rows, start = [report(0, pose_net, size, scenes, log)], time.time()
    for step, indices, batch in batches(data, cfg, a.steps):
        if depth_net is None:
            loss = supervised_loss(pose_net, batch, batch_poses(data, gts, indices), amp)
        else:
            loss = compute_losses(depth_net, pose_net, batch, cfg, ops, step, amp_dtype=amp)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % a.every == 0:
            log(f"  loss {loss.item():.4f} ({time.time() - start:.0f} s)")
            rows.append(report(step + 1, pose_net, size, scenes, log))
    return rows


if __name__ == "__main__":
    main()
