"""Where a PoseNet's snippet ATE comes from: its rotation, its translation's direction, or
its BatchNorm statistics.

    python -m experiments.pose_diagnosis CHECKPOINT --data-root ROOT [--split val]

On the scenes with poses.txt, the 5-frame snippet ATE of:

- posenet: the network as evaluated (eval mode: BatchNorm's running statistics);
- posenet (batch statistics): BatchNorm in training mode, on batches of consecutive pairs;
- GT rotation + predicted translation, predicted rotation + GT translation: which half of
  the prediction the error comes from (the snippet ATE scores positions, and a rotation
  error moves every later position of a snippet);
- GT direction, predicted length: the translation's direction replaced by the GT's;
- zero and constant-velocity: the baselines of pose_eval;

and per step: the rotation error (deg), the angle between predicted and GT translation
(deg), and the predicted against the GT step length (their correlation over the steps: the
snippet scale alignment removes a common scale but not a wrong relative speed).
"""

from __future__ import annotations

import argparse
import copy
import sys

import numpy as np
import torch

from scdepth import checkpoint, pose_eval
from scdepth import trajectory as tj


def gt_relative(gt: np.ndarray) -> np.ndarray:
    return np.linalg.inv(gt[:-1]) @ gt[1:]


def with_parts(rotation_of: np.ndarray, translation_of: np.ndarray) -> np.ndarray:
    out = rotation_of.copy()
    out[:, :3, 3] = translation_of[:, :3, 3]
    return out


def with_direction(direction_of: np.ndarray, length_of: np.ndarray) -> np.ndarray:
    out = length_of.copy()
    d = direction_of[:, :3, 3]
    n = np.linalg.norm(d, axis=1, keepdims=True)
    out[:, :3, 3] = d / np.maximum(n, 1e-12) * np.linalg.norm(length_of[:, :3, 3], axis=1)[:, None]
    return out


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def diagnose(path, data_root, split="val") -> dict:
    net, size, rectify_net = checkpoint.load_pose_model(path)
    return diagnose_net(net, size, pose_eval.pose_scenes(data_root, split), rectify_net)


def diagnose_net(net, size, scenes, rectify_net=None) -> dict:
    """diagnose's measures of a PoseNet (left in eval mode, its running statistics
    untouched) on pose scenes."""
    net.eval()
    # BatchNorm in training mode moves its running statistics even without gradients: the
    # batch-statistics pass runs on a copy, so every scene's eval-mode figures are the net's.
    batch_net = copy.deepcopy(net).train()
    rows: dict[str, list] = {}
    steps = {"rot_err_deg": [], "rot_deg": [], "dir_err_deg": [], "len_pred": [], "len_gt": []}

    def add(name, gt, rel):
        rows.setdefault(name, []).append(tj.snippet_errors(gt, tj.chain(rel), pose_eval.SNIPPET))

    for s in scenes:
        pred = pose_eval.predict_relative(net, s.frames, size, rectify_net=rectify_net)
        with torch.no_grad():  # BatchNorm on the batch of the scene's consecutive pairs
            pred_bn = pose_eval.predict_relative(
                batch_net, s.frames, size, batch_size=len(s.frames), rectify_net=rectify_net
            )
        gt = gt_relative(s.gt)
        add("posenet", s.gt, pred)
        add("posenet (batch statistics)", s.gt, pred_bn)
        add("GT rotation + predicted translation", s.gt, with_parts(gt, pred))
        add("predicted rotation + GT translation", s.gt, with_parts(pred, gt))
        add("GT direction, predicted length", s.gt, with_direction(gt, pred))
        for b in pose_eval.BASELINES:
            add(b, s.gt, pose_eval.baseline_relative(s.gt, b))
        steps["rot_err_deg"].append(
            np.degrees(tj.rotation_angle(np.linalg.inv(gt[:, :3, :3]) @ pred[:, :3, :3]))
        )
        steps["rot_deg"].append(np.degrees(tj.rotation_angle(pred[:, :3, :3])))
        steps["dir_err_deg"].append(angle_deg(pred[:, :3, 3], gt[:, :3, 3]))
        steps["len_pred"].append(np.linalg.norm(pred[:, :3, 3], axis=1))
        steps["len_gt"].append(np.linalg.norm(gt[:, :3, 3], axis=1))
    steps = {k: np.concatenate(v) for k, v in steps.items()}
    gt_rot = np.concatenate(
        [np.degrees(tj.rotation_angle(gt_relative(s.gt)[:, :3, :3])) for s in scenes]
    )
    return {
        "snippet_ate": {k: float(np.concatenate(v).mean()) for k, v in rows.items()},
        "rot_err_deg": float(steps["rot_err_deg"].mean()),
        "rot_deg": float(steps["rot_deg"].mean()),
        "gt_rot_deg": float(gt_rot.mean()),
        "dir_err_deg": float(steps["dir_err_deg"].mean()),
        "length_corr": float(np.corrcoef(steps["len_pred"], steps["len_gt"])[0, 1]),
        "steps": int(len(steps["len_gt"])),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="val", choices=("val", "train", "all"))
    a = ap.parse_args(argv)
    r = diagnose(a.checkpoint, a.data_root, a.split)
    print(f"{a.checkpoint} on {a.data_root} ({a.split}, {r['steps']} steps)")
    for k, v in r["snippet_ate"].items():
        print(f"  snippet ATE  {k:<40} {v:.5f}")
    print(
        f"  per step: rotation {r['rot_deg']:.3f} deg (GT {r['gt_rot_deg']:.3f} deg), its error "
        f"{r['rot_err_deg']:.3f} deg; translation direction error {r['dir_err_deg']:.1f} deg, "
        f"corr(predicted, GT step length) {r['length_corr']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
