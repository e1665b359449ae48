"""How good can a pose trained on the photometric loss be? The photometric pose oracle.

    python -m experiments.pose_oracle --data-root ROOT [--size 96x128] [--split val]
        [--depth gt | --depth CHECKPOINT] [--static-only] [--init zero gt]

For every consecutive pair of the scenes with poses.txt, the relative pose T_t<-t+1 is
optimised directly (Adam on the six pose-vector numbers, no network) to minimise the
photometric error (SSIM + L1, as in training) of frame t warped into frame t+1 with the depth
of frame t+1: the GT depth (``--depth gt``) or a trained DepthNet's. With ``--static-only``
the pixels of moving objects (the scene's ``seg_mask/``) and those that warp onto them are
left out, an ideal dynamic mask. The optimisation starts from no motion (``zero``: what a
PoseNet starts from) and from the GT pose (``gt``: then it can only move towards the loss's
own minimum). The 5-frame snippet ATE of the result is printed next to the constant-velocity
and zero-motion baselines of pose_eval.

A PoseNet trained on this loss learns, at best, its minimum; when the oracle started at the
GT pose ends no better than a baseline, a PoseNet cannot be expected to beat that baseline
at this resolution, whatever its training.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from scdepth import checkpoint, pose_eval
from scdepth import trajectory as tj
from scdepth.data.layout import load_scene, read_depth, read_image, read_mask
from scdepth.data.transforms import resize_image
from scdepth.geometry import mat2euler, pose_vec2mat
from scdepth.ops import get_backend

STEPS = 600  # Adam steps: the loss no longer moves after about 400 at lr 2e-3
LR, LR_LATE, LATE = 2e-3, 5e-4, 400


def resize_map(x: np.ndarray, size) -> torch.Tensor:
    """A depth or mask map [H, W] resized (nearest) to size (H, W): [1, H, W] float32."""
    return torch.from_numpy(
        cv2.resize(x.astype(np.float32), size[::-1], interpolation=cv2.INTER_NEAREST)
    )[None]


def scene_depth(scene, frames, size, depth_net, png_scale):
    if depth_net is None:
        if any(p is None for p in scene.depth):
            raise SystemExit(f"{scene.path}: --depth gt needs a depth/ map for every frame")
        return torch.stack([resize_map(read_depth(p, png_scale), size) for p in scene.depth])
    with torch.no_grad():
        out = depth_net(frames)
    return out.float()


def optimise(ops, tgt, ref, depth, K, start, keep=None):
    """The pose vectors [N, 6] minimising the masked photometric error of ref warped into tgt;
    keep: (tgt static [N, 1, H, W], ref static) or None."""
    vec = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([vec], lr=LR)
    for step in range(STEPS):
        if step == LATE:
            for group in opt.param_groups:
                group["lr"] = LR_LATE
        pose = pose_vec2mat(vec)
        warped, _, valid = ops.inverse_warp(ref, depth, pose, K)
        photo, _ = ops.photometric_error(tgt, warped, None)
        if keep is not None:
            ref_static, _, _ = ops.inverse_warp(keep[1], depth, pose.detach(), K)
            valid = valid * keep[0] * (ref_static > 0.999).float()
        loss = ((photo * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3)).clamp_min(1)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return vec.detach()


def to_matrices(vec: torch.Tensor) -> np.ndarray:
    T = np.tile(np.eye(4), (len(vec), 1, 1))
    T[:, :3, :] = pose_vec2mat(vec).double().numpy()
    return T


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--size", default="96x128", help="HxW the pairs are warped at")
    ap.add_argument("--depth", default="gt", help="gt, or a checkpoint whose DepthNet to use")
    ap.add_argument("--png-scale", type=float, default=1000.0, help="units per metre of PNG depth")
    ap.add_argument("--static-only", action="store_true", help="leave out seg_mask/ pixels")
    ap.add_argument("--init", nargs="+", default=["zero", "gt"], choices=["zero", "gt"])
    a = ap.parse_args(argv)
    size = tuple(int(x) for x in a.size.lower().split("x"))
    ops = get_backend("ext")
    depth_net = None
    if a.depth != "gt":
        depth_net, _ = checkpoint.load_depth_model(a.depth)
        depth_net.eval()
    snippets: dict[str, list[np.ndarray]] = {}
    for scene in pose_eval.pose_scenes(a.data_root, a.split):
        full = load_scene(scene.frames[0].parent, use_pseudo_depth=False)
        frames = torch.stack([resize_image(read_image(f), size) for f in scene.frames])
        depth = scene_depth(full, frames, size, depth_net, a.png_scale)
        keep = None
        if a.static_only:
            if any(p is None for p in full.masks):
                raise SystemExit(
                    f"{full.path}: --static-only needs a seg_mask/ map for every frame"
                )
            static = torch.stack([resize_map(~read_mask(p), size) for p in full.masks])
            keep = (static[1:], static[:-1])
        K = torch.from_numpy(pose_eval.scaled_intrinsics(scene.frames, size)).float()
        K = K.expand(len(frames) - 1, 3, 3)
        gt = np.linalg.inv(scene.gt[:-1]) @ scene.gt[1:]
        gt_vec = torch.cat(
            [torch.from_numpy(gt[:, :3, 3]), mat2euler(torch.from_numpy(gt[:, :3, :3]))], 1
        ).float()
        rows = {}
        for init in a.init:
            start = torch.zeros_like(gt_vec) if init == "zero" else gt_vec
            vec = optimise(ops, frames[1:], frames[:-1], depth[1:], K, start, keep)
            rows[f"oracle from {init}"] = to_matrices(vec)
        for kind in pose_eval.BASELINES:
            rows[kind] = pose_eval.baseline_relative(scene.gt, kind)
        for name, relative in rows.items():
            err = tj.snippet_errors(scene.gt, tj.chain(relative), pose_eval.SNIPPET)
            snippets.setdefault(name, []).append(err)
        print(
            scene.name, {k: round(float(v[-1].mean()), 4) for k, v in snippets.items()}, flush=True
        )
    print(
        f"\nsnippet ATE over all snippets ({a.data_root}, {a.split}, {a.size}, depth {a.depth}"
        f"{', static pixels only' if a.static_only else ''}):"
    )
    for name, errs in snippets.items():
        print(f"  {name:24s} {np.concatenate(errs).mean():.4f}")


if __name__ == "__main__":
    main()
