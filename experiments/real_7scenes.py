"""Real-data learning on Microsoft 7-Scenes: import, SC-Depth V1 from scratch, depth, poses.

    python -m experiments.real --set 7scenes --data ../shared/real/7scenes_redkitchen \
        --out runs/7scenes [--md benchmarks/RESULTS.md]

One hand-held Kinect sequence (700 frames walking around a kitchen table, 640x480, GT depth,
poses and intrinsics) split by time:

- training/kitchen: frames 0-599 at 192x256 (near-static frames dropped by the importer);
- training/kitchen_val: every 10th of frames 0-599 with GT depth and poses, for the trainer's
  validation (it picks best.pt) and its pose table: frames it trained on, so it measures fit;
- testing/: every 5th of the held-out frames 600-699 at full resolution, for the depth table;
- heldout/training/kitchen_60K: frames 60K, 60K+10, ... 699 (K = 0..9): the held-out frames
  at the training's frame spacing (skip_frames 10), for the pose table.

The run is ``scdepth-train --config configs/7scenes.yaml data_root=OUT/data`` (a finished run
in OUT/run is reused, so a rerun only evaluates). Depth is scored for best.pt and last.pt,
the same network untrained and a constant prediction (median scaling: the GT median
everywhere); poses for both checkpoints against zero motion and constant velocity.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from experiments import real

TRAIN, VAL, TEST = "0:600", "0:600:10", "600:700:5"
HELDOUT_START, HELDOUT_STOP, SPACING = 600, 700, 10
GT_ROT, GT_T = "GT rotation + predicted translation", "predicted rotation + GT translation"
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "7scenes.yaml"


def imports(data: Path, out: Path) -> float:
    """Import the splits into OUT/data and the pose scenes into OUT/heldout; seconds."""
    from scdepth.config import load
    from scdepth.data.prepare import prepare

    size = load(CONFIG).image_size
    t0 = time.perf_counter()
    common = dict(source=data, format="7scenes", progress=False, log=None)
    root = out / "data"
    prepare(root=root, scene="kitchen", split="train", frames=TRAIN, image_size=size, **common)
    prepare(root=root, scene="kitchen_val", split="val", frames=VAL, image_size=size, **common)
    prepare(root=root, scene="kitchen", split="test", frames=TEST, **common)
    for k in range(SPACING):
        start = HELDOUT_START + k
        prepare(
            root=out / "heldout",
            scene=f"kitchen_{start}",
            split="val",
            frames=f"{start}:{HELDOUT_STOP}:{SPACING}",
            image_size=size,
            **common,
        )
    return time.perf_counter() - t0


def train(out: Path, seed: int) -> dict:
    """The config's run into OUT/run (or the finished one there); its summary."""
    from scdepth import config
    from scdepth import train as trainer

    run = out / "run"
    cfg = config.load(CONFIG, [f"data_root={out / 'data'}", f"seed={seed}"])
    timing = run / "train_seconds.txt"  # kept, so that a rerun reports the real time
    if not (run / "last.pt").is_file() or not timing.is_file():
        t0 = time.perf_counter()
        trainer.train(cfg, run, progress=False)
        timing.write_text(f"{time.perf_counter() - t0:.1f}\n")
    return {
        "steps": cfg.epochs * cfg.epoch_size,
        "image_size": list(cfg.image_size),
        "amp": cfg.amp,
        "seconds": float(timing.read_text()),
    }


def run(data: Path, out: Path, seed: int) -> dict:
    if not any(data.glob("frame-*.pose.txt")):
        raise SystemExit(f"--data {data}: no frame-N.pose.txt (expected a 7-Scenes sequence)")
    report = {"machine": real.machine(), "date": time.strftime("%Y-%m-%d"), "set": "7scenes"}
    stamp = out / "import_seconds.json"  # kept, so that a rerun reports the real time
    if not (out / "data").exists():
        stamp.write_text(json.dumps({"7scenes": imports(data, out)}) + "\n")
    report["imports_s"] = json.loads(stamp.read_text())
    report["training"] = {"7scenes": train(out, seed)}
    t0 = time.perf_counter()
    root, ds = out / "data", "7scenes"
    best, last = out / "run" / "best.pt", out / "run" / "last.pt"
    rows = real.depth_rows("7-Scenes held-out (600-699)", root, ds, best, seed)
    rows[0]["predictor"] = "trained (best.pt)"
    rows.insert(1, real.depth_rows("7-Scenes held-out (600-699)", root, ds, last, seed)[0])
    rows[1]["predictor"] = "trained (last.pt)"
    report["depth"] = rows
    res = real.pose_results("7-Scenes held-out", out / "heldout", ds, best, out / "pose")
    from scdepth.pose_report import markdown_table

    report["pose"] = {"7-Scenes held-out (600-699, every 10th frame)": {
        "metrics": res, "table": markdown_table(res, per_scene=False),
    }}  # fmt: skip
    from experiments.pose_diagnosis import diagnose

    report["pose_diagnosis"] = diagnose(last, out / "heldout")
    sheet_path = out / "real_7scenes_sheet.png"
    real.sheet([(root, ds, best)], sheet_path, per_set=4)
    report["seconds"] = time.perf_counter() - t0
    report["sheet"] = "results/real_7scenes_sheet.png"
    report["reading"] = reading(report)
    return report


def reading(report: dict) -> str:
    by = {r["predictor"]: r for r in report["depth"]}
    ratio = by["trained (best.pt)"]["abs_rel"] / by["constant (GT median)"]["abs_rel"]
    met = "met" if ratio <= 0.75 else "missed"
    d = report["pose_diagnosis"]
    return (
        f"Trained abs_rel / constant's = {ratio:.2f} (target <= 0.75: {met}). "
        f"The last PoseNet on the held-out steps (`experiments.pose_diagnosis`): rotation "
        f"{d['rot_deg']:.2f} deg a step against the GT's {d['gt_rot_deg']:.2f} (error "
        f"{d['rot_err_deg']:.2f} deg), translation direction {d['dir_err_deg']:.0f} deg off; "
        f"snippet ATE with the GT rotation put in: {d['snippet_ate'][GT_ROT]:.4f} m, with "
        f"the GT translation: {d['snippet_ate'][GT_T]:.4f} m. "
        "The network starts from random weights (no ImageNet download here) and sees one "
        "room; the held-out frames are the end of the same walk, so this shows learning of "
        "this scene's geometry from its video, not generalisation to other rooms."
    )


def finite(report: dict) -> bool:
    return all(math.isfinite(r["abs_rel"]) for r in report["depth"])
