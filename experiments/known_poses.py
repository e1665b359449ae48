"""Is depth on a real recording held back by the PoseNet? Train the DepthNet with the GT poses.

    python -m experiments.known_poses --config configs/7scenes.yaml --data-root ROOT \\
        --heldout HELDOUT --out DIR [--steps N] [--compare CHECKPOINT ...] [--trained FILE] \\
        [--set KEY=VALUE ...]

The DepthNet is trained exactly as `scdepth-train` would (the config's method, size, skip,
augmentation, learning rate and schedule, mixed precision), except that the relative poses
come from the scenes' poses.txt instead of a PoseNet (mirrored with the image where the
augmentation flips it). Then depth on the scenes of HELDOUT (ROOT's layout, frames with
depth/; e.g. the held-out end of the walk that `experiments.real --set 7scenes` imports) is
scored with median scaling against the GT, beside each --compare checkpoint's DepthNet and the
constant prediction, and OUT/sheet.png shows three held-out frames for each (frame,
prediction, GT, error; the first network on the left). Depth that learns the scene with known
poses but not with the PoseNet says the poses hold it back; flat depth in both says the
DepthNet's learning does. --trained OUT/depth_net.pt scores a finished run again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from scdepth import checkpoint, config, pose_eval, viz
from scdepth.data.folders import TrainFolder
from scdepth.data.layout import load_scene, read_depth, read_image
from scdepth.data.specs import get_spec
from scdepth.data.transforms import resize_image
from scdepth.evaluate import evaluate_image
from scdepth.geometry import mat2euler
from scdepth.models import DepthNet
from scdepth.ops import get_backend
from scdepth.precision import amp_dtype
from scdepth.step import compute_losses
from scdepth.train import learning_rate

MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])  # a horizontal flip mirrors camera x


class KnownPoses(torch.nn.Module):
    """Stands in for the PoseNet of step.predict: returns the pose vectors it was given for the
    batch's (tgt, ref) and (ref, tgt) pairs, in predict's order."""

    def __init__(self):
        super().__init__()
        self.vectors = None

    def forward(self, src, dst):
        return self.vectors.to(src.device)


def pose_vectors(T: np.ndarray) -> torch.Tensor:
    """[n, 4, 4] transforms -> [n, 6] (tx, ty, tz, rx, ry, rz) of geometry.pose_vec2mat."""
    T = torch.from_numpy(T)
    return torch.cat([T[:, :3, 3], mat2euler(T[:, :3, :3])], 1).float()


def batch_poses(data: TrainFolder, gts: list[np.ndarray], indices) -> torch.Tensor:
    """Pose vectors [2 B N, 6]: every T_ref<-tgt of the batch, reference by reference, then
    every T_tgt<-ref, as step.predict asks its PoseNet."""
    forward, backward = [], []
    for shift in data.shifts:
        for index in indices:
            si, i = data.samples[index]
            T = np.linalg.inv(gts[si][i + shift]) @ gts[si][i]  # tgt camera -> ref camera
            if data._augmentation(index).flip:
                T = MIRROR @ T @ MIRROR
            forward.append(T)
            backward.append(np.linalg.inv(T))
    return pose_vectors(np.stack(forward + backward))


def train(cfg, steps, out: Path, log) -> DepthNet:
    torch.manual_seed(cfg.seed)
    data = train_folder(cfg)
    gts = [pose_eval.load_pose_scene(s.path).gt for s in data.scenes]
    depth_net = DepthNet(cfg.resnet_layers, pretrained=cfg.pretrained == "imagenet")
    poses = KnownPoses()
    opt = torch.optim.Adam(depth_net.parameters(), lr=cfg.lr)
    ops = get_backend(cfg.backend)
    amp = amp_dtype(cfg.amp, torch.device("cpu"))
    start = time.time()
    for step, indices, batch in batches(data, cfg, steps):
        poses.vectors = batch_poses(data, gts, indices)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, steps)
        total, terms, _ = compute_losses(depth_net, poses, batch, cfg, ops, step, amp_dtype=amp)
        opt.zero_grad()
        total.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log(f"step {step + 1}: loss {total.item():.4f} ({time.time() - start:.0f} s)")
    torch.save({"depth_net": depth_net.state_dict(), "steps": steps}, out / "depth_net.pt")
    return depth_net


def train_folder(cfg) -> TrainFolder:
    """The config's training data, as scdepth-train reads it."""
    return TrainFolder(
        cfg.data_root,
        image_size=tuple(cfg.image_size),
        sequence_length=cfg.sequence_length,
        skip_frames=cfg.skip_frames,
        use_pseudo_depth=cfg.uses_pseudo_depth(),
        seed=cfg.seed,
    )


def batches(data: TrainFolder, cfg, steps):
    """(step, sample indices, batch) for `steps` steps: the samples shuffled by cfg.seed,
    epoch by epoch (each epoch its own augmentation), full batches of cfg.batch_size."""
    order = torch.Generator().manual_seed(cfg.seed)
    step = 0
    while step < steps:
        data.set_epoch(step // len(data))
        for chunk in torch.randperm(len(data), generator=order).split(cfg.batch_size):
            if len(chunk) < cfg.batch_size or step >= steps:
                break
            items = [data[int(i)] for i in chunk]
            yield (
                step,
                [int(i) for i in chunk],
                {k: torch.stack([it[k] for it in items]) for k in items[0]},
            )
            step += 1


def heldout_frames(root) -> list[tuple[Path, Path]]:
    """(frame, GT depth) of HELDOUT's scenes, the frames with depth only, in time order."""
    records = []
    for scene in pose_eval.pose_scenes(root, "val"):
        full = load_scene(scene.frames[0].parent, use_pseudo_depth=False)
        records += [(f, d) for f, d in zip(full.frames, full.depth, strict=True) if d is not None]
    return sorted(records, key=lambda r: r[0].name)


def heldout_metrics(predict, root, size, spec) -> dict:
    """Mean depth metrics over HELDOUT's frames with GT (scdepth.evaluate's median scaling
    and range, at the GT's size)."""
    rows = []
    for frame, depth_path in heldout_frames(root):
        gt = read_depth(depth_path, spec.depth_png_scale)
        result = evaluate_image(gt, predict(resize_image(read_image(frame), size)), spec)
        if result["all"] is not None:
            rows.append(result["all"])
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"images": len(rows)}


def network_predictor(net):
    net.eval()

    def predict(img):
        with torch.no_grad():
            return net(img[None])[0, 0].numpy()

    return predict


def constant_predictor(img):
    return np.ones(img.shape[1:], np.float32)


def sheet(path: Path, predictors: dict, root, size, spec, frames: int = 3) -> None:
    """Side by side, one column per predictor: rows of (frame, prediction, GT, error) for
    `frames` held-out frames spread over HELDOUT."""
    records = heldout_frames(root)
    picks = np.linspace(0, len(records) - 1, frames).round().astype(int)
    columns = []
    for name, predict in predictors.items():
        rows = []
        for i in picks:
            frame, depth_path = records[int(i)]
            img = resize_image(read_image(frame), size)
            gt = read_depth(depth_path, spec.depth_png_scale)
            rows.append({"img": img, "pred": predict(img), "gt": gt})
        column = viz.validation_sheet(rows)
        title = "/".join(Path(name).parts[-3:])  # a checkpoint: the last folders and its name
        top = viz.label(np.zeros((20, column.shape[1], 3), np.uint8), title)
        columns.append(np.concatenate([top, column]))
    cv2.imwrite(str(path), np.concatenate(columns, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, help="default: the config's epochs x epoch_size")
    ap.add_argument("--compare", nargs="*", default=[], help="checkpoints to score beside it")
    ap.add_argument("--trained", help="a depth_net.pt of this experiment: score it, no training")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    a = ap.parse_args(argv)
    cfg = config.load(a.config, [f"data_root={a.data_root}", *a.set])
    steps = a.steps or cfg.epochs * cfg.epoch_size
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    if a.trained:
        state = torch.load(a.trained, map_location="cpu", weights_only=True)
        net = DepthNet(cfg.resnet_layers)
        net.load_state_dict(state["depth_net"])
        steps = state["steps"]
    else:
        net = train(cfg, steps, out, log)
    size, spec = tuple(cfg.image_size), get_spec(cfg.dataset)
    predictors = {f"known poses ({steps} steps)": network_predictor(net)}
    for path in a.compare:
        predictors[path] = network_predictor(checkpoint.load_depth_model(path)[0])
    table = {k: heldout_metrics(p, a.heldout, size, spec) for k, p in predictors.items()}
    table["constant"] = heldout_metrics(constant_predictor, a.heldout, size, spec)
    sheet(out / "sheet.png", predictors, a.heldout, size, spec)
    (out / "metrics.json").write_text(json.dumps(table, indent=1))
    for name, m in table.items():
        log(f"{name:60s} abs_rel {m['abs_rel']:.3f}  a1 {m['a1']:.3f}  ({m['images']} images)")


if __name__ == "__main__":
    main()
