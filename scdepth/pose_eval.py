"""scdepth-eval --pose: visual odometry from the PoseNet, scored against the scenes' poses.txt.

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

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import trajectory as tj
from .data.datasets import DATASETS
from .data.layout import DatasetError, list_files, load_scene, read_image, read_scene_list
from .data.poses import scene_poses, scene_times, to_homogeneous, write_poses

SNIPPET = 5  # frames a snippet (SfMLearner, Monodepth2)
DRIVING = ("kitti", "ddad")  # KITTI RPE; other datasets are hand-held (per-frame RPE)
BASELINES = ("zero", "constant-velocity")
MODEL = "posenet"  # the network's name in tables and file names


@dataclass
class PoseScene:
    name: str
    frames: list[Path]  # after frame_index.txt
    gt: np.ndarray  # [N, 4, 4] camera-to-world, one a frame
    times: np.ndarray  # [N] seconds (times.txt), else the frame index


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
    times = idx.astype(np.float64) if times is None else times[idx]
    return PoseScene(path.name, scene.frames, gt[idx], times)


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


def load_pose_model(path, device="cpu"):
    """(PoseNet, image_size, RectifyNet or None) in eval mode from a training checkpoint; the
    RectifyNet of an SC-DepthV2 run, whose poses compose its rotation (rectify.predict_pose)."""
    from . import checkpoint
    from .config import from_dict
    from .models import PoseNet, RectifyNet

    state = checkpoint.load(path)
    if "pose_net" not in state:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} holds no PoseNet weights ('pose_net'); pose evaluation needs "
            "a checkpoint written by scdepth-train"
        )
    cfg = from_dict(state["config"])
    scale = cfg.pose_rotation_scale
    net = PoseNet(18, rotation_scale=scale)
    net = checkpoint.load_weights(net, state, "pose_net", path)
    rectify_net = None
    if cfg.method == "sc_depth_v2":
        rectify_net = RectifyNet(18, rotation_scale=scale)
        rectify_net = checkpoint.load_weights(rectify_net, state, "rectify_net", path)
        rectify_net = rectify_net.to(device).eval()
    return net.to(device).eval(), tuple(cfg.image_size), rectify_net


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
    steps = np.linalg.inv(gt[:-1]) @ gt[1:]
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
        net, size, rectify_net = load_pose_model(checkpoint, device)
        methods[MODEL] = lambda s: predict_relative(
            net, s.frames, size, device, progress=progress, rectify_net=rectify_net
        )
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {b!r}")
        methods[b] = lambda s, b=b: baseline_relative(s.gt, b)
    return methods


# --- metrics -----------------------------------------------------------------------------


def scene_errors(gt, pred, motion: str) -> dict:
    """Per-scene metrics and the raw errors that pool into the overall ones ("_"-keys)."""
    snip = tj.snippet_errors(gt, pred, SNIPPET)
    ate, align = tj.ate(gt, pred)
    aligned = align.poses(pred)
    m = {"frames": len(gt), "ate_snippet": float(snip.mean()), "ate_snippet_std": float(snip.std())}
    m.update(snippets=len(snip), ate=ate, ate_scale=align.s)
    m["alignment"] = {"s": align.s, "R": align.R.tolist(), "t": align.t.tolist()}
    if motion == "driving":
        lengths = tj.kitti_lengths(gt)
        t, r, seg = tj.rpe_kitti(gt, aligned, lengths)
        m.update(rpe_lengths_m=sorted({int(v) for v in seg}), _t=t, _r=r)
    else:
        t, r = tj.rpe_frames(gt, aligned)
        m.update(_t=t, _r=r)
    m.update(_snip=snip, aligned=aligned)
    return _rpe(m, motion)


def _rpe(m: dict, motion: str) -> dict:
    t, r = m["_t"], m["_r"]
    if motion == "driving":  # devkit: mean over segments; % and deg per 100 m
        ok = t.size > 0
        m["rpe_t_pct"] = float(100 * t.mean()) if ok else None
        m["rpe_r_deg_100m"] = float(100 * np.degrees(r.mean())) if ok else None
        m["rpe_segments"] = int(t.size)
    else:  # RMSE over consecutive frame pairs
        m["rpe_t_m"] = float(np.sqrt(np.mean(t**2)))
        m["rpe_r_deg"] = float(np.sqrt(np.mean(r**2)))
        m["rpe_pairs"] = int(t.size)
    return m


def overall(scenes: dict, motion: str) -> dict:
    """Snippets and RPE pooled over the scenes; whole-trajectory ATE averaged over scenes."""
    rows = list(scenes.values())
    snip = np.concatenate([s["_snip"] for s in rows])
    m = {"frames": sum(s["frames"] for s in rows), "scenes": len(rows)}
    m.update(ate_snippet=float(snip.mean()), ate_snippet_std=float(snip.std()))
    m.update(snippets=len(snip), ate=float(np.mean([s["ate"] for s in rows])))
    m.update(_t=np.concatenate([s["_t"] for s in rows]), _r=np.concatenate([s["_r"] for s in rows]))
    if motion == "driving":
        m["rpe_lengths_m"] = sorted({v for s in rows for v in s["rpe_lengths_m"]})
    return _rpe(m, motion)


def public(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.startswith("_") and k != "aligned"}


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
            per[name][s.name] = scene_errors(s.gt, tj.chain(rel), motion)
    results = {
        "dataset": dataset,
        "split": None if scene else split,
        "motion": motion,
        "snippet_length": SNIPPET,
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
        _write(out, results, scenes, per)
    return results


def _write(out: Path, results, scenes, per) -> None:
    """Everything into a temporary sibling folder, then renamed: never a half-written OUT."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "pose_metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        (tmp / "pose_table.md").write_text(markdown_table(results) + "\n")
        plots = True
        for s in scenes:
            d = tmp / s.name
            d.mkdir()
            write_poses(d / "gt.kitti.txt", s.gt)
            tj.write_tum(d / "gt.tum.txt", s.times, s.gt)
            aligned = {name: rows[s.name]["aligned"] for name, rows in per.items()}
            for name, poses in aligned.items():
                write_poses(d / f"{name}.kitti.txt", poses)
                tj.write_tum(d / f"{name}.tum.txt", s.times, poses)
            if plots:
                labelled = {
                    f"{name} (ATE {m['ate']:.3g} m, scale {m['ate_scale']:.3g})": poses
                    for name, poses in aligned.items()
                    for m in [per[name][s.name]]
                }
                title = (
                    f"{s.name}: {len(s.frames)} frames, {tj.path_distances(s.gt)[-1]:.3g} m; "
                    "predictions Sim(3)-aligned to the GT"
                )
                plots = tj.plot_top_view(d / "trajectory.png", s.gt, labelled, title)
        if out.exists():  # empty, or --overwrite: the old one goes only once the new is whole
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- tables ------------------------------------------------------------------------------

# (key, header, format); the RPE columns depend on the motion
_COMMON = [
    ("frames", "frames", "{:d}"),
    ("ate_snippet", "snip_ate", "{:.4f}"),
    ("ate_snippet_std", "std", "{:.4f}"),
    ("ate", "ate", "{:.4f}"),
    ("ate_scale", "scale", "{:.3f}"),
]
_RPE = {
    "driving": [("rpe_t_pct", "rpe_t%", "{:.2f}"), ("rpe_r_deg_100m", "rpe_r/100m", "{:.3f}")],
    "handheld": [("rpe_t_m", "rpe_t[m]", "{:.4f}"), ("rpe_r_deg", "rpe_r[deg]", "{:.3f}")],
}


def _rows(results, per_scene=True):
    for name, r in results["methods"].items():
        scenes = [*r["scenes"].items()] if per_scene else []
        for scene, m in [*scenes, ("overall", r["overall"])]:
            yield name, scene, m


def _cell(m, key, fmt):
    v = m.get(key)
    return "-" if v is None else fmt.format(v)


def legend(results) -> str:
    rpe = "RPE between consecutive frames (RMSE, m and deg)"
    if results["motion"] == "driving":
        lengths = next(iter(results["methods"].values()))["overall"]["rpe_lengths_m"]
        if not lengths:
            rpe = "KITTI RPE: no segment of 10 m or more"
        else:
            short = ", the short set: no 100 m segment" if min(lengths) < 100 else ""
            rpe = (
                f"KITTI RPE over {min(lengths)}-{max(lengths)} m segments{short} "
                "(translation %, rotation deg/100 m)"
            )
    return (
        f"snip_ate: {SNIPPET}-frame snippet ATE in m, mean and std over snippets (scale per "
        "snippet, sqrt(sum)/n as in SfMLearner); ate: RMSE in m after Sim(3) alignment with "
        f"that scale (overall: mean over scenes); {rpe}, at the Sim(3) scale."
    )


def format_pose_table(results) -> str:
    cols = _COMMON + _RPE[results["motion"]]
    width = max(12, *(len(s) + 2 for _, s, _ in _rows(results)))
    head = f"{'method':<18}{'scene':<{width}}" + "".join(f"{h:>12}" for _, h, _ in cols)
    lines = [head]
    for name, scene, m in _rows(results):
        cells = "".join(f"{_cell(m, k, f):>12}" for k, _, f in cols)
        lines.append(f"{name:<18}{scene:<{width}}{cells}")
    return "\n".join(lines + [legend(results)])


def markdown_table(results, per_scene=True) -> str:
    """The overall rows (and per scene) as a Markdown table, e.g. for benchmarks/RESULTS.md."""
    cols = _COMMON + _RPE[results["motion"]]
    lines = [
        "| method | scene | " + " | ".join(h for _, h, _ in cols) + " |",
        "| --- | --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for name, scene, m in _rows(results, per_scene):
        cells = " | ".join(_cell(m, k, f) for k, _, f in cols)
        lines.append(f"| {name} | {scene} | {cells} |")
    return "\n".join(lines + ["", legend(results)])


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


# --- command line ------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="scdepth-eval --pose",
        description="Pose evaluation: PoseNet odometry (and baselines) against poses.txt.",
    )
    ap.add_argument("--checkpoint", help="a scdepth-train checkpoint (its PoseNet is evaluated)")
    ap.add_argument(
        "--baseline",
        action="append",
        choices=(*BASELINES, "all"),
        default=[],
        help="also (or only) score a baseline; repeatable; 'all' = both",
    )
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument(
        "--split",
        choices=("val", "train", "all"),
        default="val",
        help="scenes of ROOT/training/<split>.txt that have poses.txt (default val)",
    )
    ap.add_argument("--scene", help="one scene of ROOT/training/ instead of a split")
    ap.add_argument(
        "--motion",
        choices=("driving", "handheld"),
        help="RPE kind (default: driving for kitti, ddad and synthetic outdoor, else handheld)",
    )
    ap.add_argument("--out", help="folder for trajectories, plots, pose_metrics.json (new)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ap.add_argument("--json", help="also write the metrics JSON here")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    from .checkpoint import CheckpointError

    baselines = BASELINES if "all" in a.baseline else tuple(dict.fromkeys(a.baseline))
    if not a.checkpoint and not baselines:
        ap.error("give --checkpoint, --baseline, or both")
    try:
        methods = methods_for(a.checkpoint, baselines, a.device, progress=not a.no_progress)
        results = evaluate_poses(
            a.data_root,
            a.dataset,
            methods,
            split=a.split,
            scene=a.scene,
            motion=a.motion,
            out=a.out,
            overwrite=a.overwrite,
            source=a.checkpoint,
        )
    except (ValueError, FileExistsError, CheckpointError) as e:  # DatasetError: a ValueError
        ap.error(str(e))
    print(f"scdepth-eval --pose {a.dataset} {a.scene or a.split} ({results['motion']})")
    print(format_pose_table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    if a.out:
        print(f"wrote {a.out}")
    return 0
