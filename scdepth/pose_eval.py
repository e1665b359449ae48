"""Pose evaluation (scdepth-eval --pose): visual odometry from the PoseNet and the baselines,
scored against the scenes' poses.txt.

The PoseNet's output for consecutive frames, pose_net(frame t+1, frame t), is T_t<-t+1, and
T_world<-t+1 = T_world<-t T_t<-t+1 (the conventions and why: scdepth/data/poses.py).

Per scene and over all scenes: the 5-frame snippet ATE (SfMLearner / Monodepth2 protocol,
scale per snippet), the whole-trajectory ATE after Umeyama's Sim(3) alignment (with its
scale) and the RPE: KITTI's (translation in %, rotation in deg/100 m over 100..800 m, or
10..50 m for short excerpts) for driving data, per frame (m, deg) for hand-held data. The
RPE uses the prediction at the Sim(3) scale (the rigid part of the alignment does not change
relative poses).

Baselines (no network): ``zero`` (no motion: every relative pose the identity) and
``constant-velocity``: every step is the scene's mean GT step (mean translation, rotation
from the mean rotation vector), Zhou et al.'s "Mean Odom." -- it knows the GT's average
motion but nothing frame by frame (the previous GT step would leak the GT into each
prediction).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import checkpoint as checkpoint_io
from . import trajectory as tj
from .data.layout import DatasetError, list_files, load_scene, read_image, read_scene_list
from .data.poses import relative_pose, scene_poses, scene_times, to_homogeneous
from .data.specs import DATASETS
from .pose_metrics import RPE_DELTA, SNIPPET, overall, public, scene_errors
from .pose_report import format_pose_table, write_outputs

DRIVING = ("kitti", "ddad")  # KITTI RPE; other datasets are hand-held (per-frame RPE)
BASELINES = ("zero", "constant-velocity")
MODEL = "posenet"  # the network's name in tables and file names


@dataclass
class PoseScene:
    name: str
    frames: list[Path]  # after frame_index.txt
    gt: np.ndarray  # [N, 4, 4] camera-to-world, one a frame
    times: np.ndarray  # [N] seconds (times.txt), else the frame index
    time_unit: str = "s"  # "frame" when the scene has no times.txt


def load_pose_scene(path) -> PoseScene | None:
    """A scene's frames with their GT poses (the poses.txt lines of the frames that
    frame_index.txt selects), or None when it has no poses.txt."""
    path = Path(path)
    scene = load_scene(path, use_pseudo_depth=False)
    every = list_files(path)
    gt = scene_poses(path, len(every))
    if gt is None:
        return None
    index = {p: i for i, p in enumerate(every)}
    idx = np.array([index[f] for f in scene.frames])
    times = scene_times(path, len(every))
    if times is None:
        return PoseScene(path.name, scene.frames, gt[idx], idx.astype(np.float64), "frame")
    return PoseScene(path.name, scene.frames, gt[idx], times[idx])


def _listed(training: Path, lists) -> list[PoseScene]:
    names = [n for s in lists for n in read_scene_list(training, s)]
    return [s for s in (load_pose_scene(training / n) for n in names) if s is not None]


def pose_scenes(root, split: str = "val", scene: str | None = None) -> list[PoseScene]:
    """The scenes with poses.txt: ``scene`` alone, or those of ``split`` (val, train, all),
    each with at least SNIPPET frames. Errors name the scene or the scene list."""
    training = Path(root) / "training"
    if scene is not None:
        path = training / scene
        if not path.is_dir():
            raise DatasetError(f"{path}: no such scene (--scene {scene})")
        found = [load_pose_scene(path)]
        if found[0] is None:
            raise DatasetError(f"{path / 'poses.txt'}: missing; scene {scene} has no GT poses")
    else:
        if split not in ("val", "train", "all"):
            raise ValueError(f"split must be val, train or all, got {split!r}")
        lists = ("train", "val") if split == "all" else (split,)
        if split == "all":  # every list there is; read_scene_list names a missing one
            lists = tuple(s for s in lists if (training / f"{s}.txt").is_file()) or lists
        found = _listed(training, lists)
        if not found:
            where = " and ".join(f"{training / s}.txt" for s in lists)
            raise DatasetError(f"{where}: no scene has a poses.txt (GT poses)")
    for s in found:
        if len(s.frames) < SNIPPET:
            raise DatasetError(
                f"scene {s.name} ({training / s.name}): {len(s.frames)} frames; the "
                f"{SNIPPET}-frame snippet ATE needs at least {SNIPPET}"
            )
    return found


def rpe_delta(scenes) -> str:
    """The hand-held RPE's spacing in words: RPE_DELTA seconds, or frames for scenes
    without times.txt."""
    units = sorted({s.time_unit for s in scenes})
    return f"{RPE_DELTA:g} {' or '.join(units)}"


def motion_of(dataset: str, data_root) -> str:
    """The RPE kind: "driving" for KITTI, DDAD and the synthetic outdoor preset (synth.json),
    else "handheld"."""
    if dataset in DRIVING:
        return "driving"
    meta = Path(data_root) / "synth.json"
    if dataset == "synthetic" and meta.is_file():
        try:
            return (
                "driving" if json.loads(meta.read_text()).get("preset") == "outdoor" else "handheld"
            )
        except (ValueError, AttributeError):
            pass
    return "handheld"


# --- predictions -------------------------------------------------------------------------


def scaled_intrinsics(frames, image_size):
    """The scene's cam.txt (at its stored size) scaled to the network input."""
    from .data.layout import read_intrinsics
    from .data.transforms import scale_intrinsics

    K = read_intrinsics(frames[0].parent / "cam.txt")
    return scale_intrinsics(K, read_image(frames[0]).shape[:2], image_size)


def predict_relative(
    pose_net, frames, image_size, device="cpu", batch_size=16, progress=False, rectify_net=None
):
    """T_t<-t+1 [N-1, 4, 4] float64 for consecutive frames: pose_net(frame t+1, frame t), with
    SC-DepthV2's rectification composed when rectify_net is given (rectify.predict_pose)."""
    import torch
    from tqdm import tqdm

    from .data.transforms import resize_image
    from .rectify import predict_pose

    K = None
    if rectify_net is not None:
        K = torch.from_numpy(scaled_intrinsics(frames, image_size)).float().to(device)
    out = []
    with torch.no_grad():
        imgs = [resize_image(read_image(frames[0]), image_size)]
        for i, path in enumerate(tqdm(frames[1:], unit="frame", disable=not progress), 1):
            imgs.append(resize_image(read_image(path), image_size))
            if len(imgs) == batch_size + 1 or i == len(frames) - 1:
                tgt = torch.stack(imgs[1:]).to(device)
                ref = torch.stack(imgs[:-1]).to(device)
                Ks = None if K is None else K.expand(len(tgt), 3, 3)
                T = predict_pose(pose_net, tgt, ref, Ks, rectify_net)
                out.append(T.double().cpu().numpy())
                imgs = imgs[-1:]
    return to_homogeneous(np.concatenate(out))


def baseline_relative(gt: np.ndarray, kind: str) -> np.ndarray:
    """Relative poses T_t<-t+1 [N-1, 4, 4] of a baseline (see the module docstring)."""
    steps = relative_pose(gt[1:], gt[:-1])  # T_t<-t+1: target t+1, source t
    if kind == "zero":
        return np.tile(np.eye(4), (len(steps), 1, 1))
    if kind != "constant-velocity":
        raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")
    rvec = np.mean([cv2.Rodrigues(np.ascontiguousarray(T[:3, :3]))[0] for T in steps], 0)
    mean = np.eye(4)
    mean[:3, :3], mean[:3, 3] = cv2.Rodrigues(rvec)[0], steps[:, :3, 3].mean(0)
    return np.tile(mean, (len(steps), 1, 1))


def methods_for(checkpoint=None, baselines=(), device="cpu", progress=False) -> dict:
    """The ``methods`` of evaluate_poses: the checkpoint's PoseNet as "posenet" (when given),
    then each baseline."""
    methods = {}
    if checkpoint is not None:
        net, size, rectify_net = checkpoint_io.load_pose_model(checkpoint, device)
        methods[MODEL] = lambda s: predict_relative(
            net, s.frames, size, device, progress=progress, rectify_net=rectify_net
        )
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {b!r}")
        methods[b] = lambda s, b=b: baseline_relative(s.gt, b)
    return methods


# --- the run -----------------------------------------------------------------------------


def evaluate_poses(
    data_root,
    dataset: str,
    methods: dict,
    *,
    split: str = "val",
    scene: str | None = None,
    motion: str | None = None,
    out=None,
    overwrite: bool = False,
    source: str | None = None,
    scenes: list[PoseScene] | None = None,
) -> dict:
    """Score each method ({name: f(PoseScene) -> relative poses T_t<-t+1 [N-1, 4, 4]}) on
    ``scenes`` (default: ``pose_scenes(data_root, split, scene)``). Returns the JSON-ready
    results; with ``out`` also writes, into a folder that must be new or empty (unless
    ``overwrite``): pose_metrics.json, pose_table.md and per scene gt.kitti.txt, gt.tum.txt,
    <method>.kitti.txt and <method>.tum.txt (Sim(3)-aligned to the GT, metres) and
    trajectory.png."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    if not methods:
        raise ValueError("nothing to evaluate: give a checkpoint or a baseline")
    out = None if out is None else Path(out)
    if out is not None and out.exists():
        if not out.is_dir():
            raise FileExistsError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise FileExistsError(
                f"--out {out}: exists and is not empty (choose another folder, or --overwrite)"
            )
    motion = motion or motion_of(dataset, data_root)
    if motion not in ("driving", "handheld"):
        raise ValueError(f"motion must be driving or handheld, got {motion!r}")
    scenes = pose_scenes(data_root, split, scene) if scenes is None else scenes
    per = {name: {} for name in methods}
    for s in scenes:
        for name, predict in methods.items():
            rel = predict(s)
            if rel.shape != (len(s.frames) - 1, 4, 4):
                raise ValueError(f"{name} gave {rel.shape[0]} poses for scene {s.name}")
            bad = np.flatnonzero(~np.isfinite(rel).all(axis=(1, 2)))
            if bad.size:
                raise ValueError(
                    f"{name}: non-finite pose between frames {s.frames[bad[0]].name} and "
                    f"{s.frames[bad[0] + 1].name} of scene {s.name}"
                )
            per[name][s.name] = scene_errors(s.gt, tj.chain(rel), motion, s.times)
    results = {
        "dataset": dataset,
        "split": None if scene else split,
        "motion": motion,
        "snippet_length": SNIPPET,
        "rpe_delta": None if motion == "driving" else rpe_delta(scenes),
        "source": source,
        "methods": {
            name: {
                "scenes": {k: public(v) for k, v in rows.items()},
                "overall": public(overall(rows, motion)),
            }
            for name, rows in per.items()
        },
    }
    if out is not None:
        write_outputs(out, results, scenes, per)
    return results


# --- training hooks ----------------------------------------------------------------------


def val_pose_scenes(data_root) -> list[PoseScene]:
    """The validation scenes with poses.txt and at least SNIPPET frames ([] when none; a bad
    poses.txt raises DatasetError naming it)."""
    training = Path(data_root) / "training"
    val = training / "val.txt"
    if not val.is_file() or not val.read_text().strip():
        return []
    scenes = _listed(training, ("val",))
    short = [s.name for s in scenes if len(s.frames) < SNIPPET]
    if short:
        print(f"no pose metrics for val scenes {short}: under {SNIPPET} frames", file=sys.stderr)
    return [s for s in scenes if len(s.frames) >= SNIPPET]


def snippet_ate(
    pose_net, scenes, image_size, device, max_frames: int = 0, rectify_net=None
) -> float:
    """Mean snippet ATE over the first ``max_frames`` frames (0: all) of each scene: the
    trainer's per-epoch pose check."""
    errs = []
    for s in scenes:
        n = len(s.frames) if not max_frames else min(len(s.frames), max(max_frames, SNIPPET))
        rel = predict_relative(pose_net, s.frames[:n], image_size, device, rectify_net=rectify_net)
        errs.append(tj.snippet_errors(s.gt[:n], tj.chain(rel), SNIPPET))
    return float(np.concatenate(errs).mean())


def final_pose_evaluation(checkpoint_path, cfg, out_dir, device) -> dict:
    """The trainer's final pose evaluation on the val scenes with poses, beside the
    baselines: table printed, outputs in out_dir/pose. {} when no val scene has poses."""
    scenes = val_pose_scenes(cfg.data_root)
    if not scenes:
        return {}
    results = evaluate_poses(
        cfg.data_root,
        cfg.dataset,
        methods_for(checkpoint_path, BASELINES, device),
        scenes=scenes,
        out=Path(out_dir) / "pose",
        overwrite=True,
        source=str(checkpoint_path),
    )
    print(f"\npose on {cfg.dataset} val ({checkpoint_path}):")
    print(format_pose_table(results))
    return results
