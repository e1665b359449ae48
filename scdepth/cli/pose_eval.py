"""scdepth-eval --pose: the PoseNet's visual odometry (and the zero-motion and
constant-velocity baselines) scored against the scenes' poses.txt; see scdepth/pose_eval.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checkpoint import CheckpointError
from ..data.specs import DATASETS
from ..pose_eval import BASELINES, evaluate_poses, methods_for
from ..pose_report import format_pose_table
from .common import add_device, add_progress, resolve_device


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
    add_device(ap)
    add_progress(ap)
    a = ap.parse_args(argv)
    baselines = BASELINES if "all" in a.baseline else tuple(dict.fromkeys(a.baseline))
    if not a.checkpoint and not baselines:
        ap.error("give --checkpoint, --baseline, or both")
    try:
        methods = methods_for(
            a.checkpoint, baselines, resolve_device(a.device), progress=not a.no_progress
        )
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
