"""Real-data learning on Microsoft 7-Scenes: import, SC-Depth V1 from scratch, depth, poses.

    python -m experiments.real --set 7scenes --data ../shared/real/7scenes_redkitchen \
        --out runs/7scenes [--seed 0 1 2] [--override KEY=VALUE ...] [--md FILE]

One hand-held Kinect sequence (700 frames walking around a kitchen table, 640x480, GT depth,
poses and intrinsics) split by time:

- training/kitchen: frames 0-599 at the config's size (near-static frames dropped by the
  importer);
- training/kitchen_val: every 10th of frames 0-599 with GT depth and poses, for the trainer's
  validation (it picks best.pt) and its pose table: frames it trained on, so it measures fit;
- testing/: every 5th of the held-out frames 600-699 at full resolution, for the depth table;
- heldout/training/kitchen_60K: frames 60K, 60K+10, ... 699 (K = 0..9): the held-out frames
  at the training's frame spacing (skip_frames 10), for the pose table.

The run is ``scdepth-train --config configs/7scenes.yaml data_root=OUT/data`` (a finished run
in OUT/run is reused, so a rerun only evaluates); ``--override`` changes config keys for a
variant in its own OUT (the imports follow its image_size). Depth is scored for best.pt and
last.pt, the same network untrained and a constant prediction (median scaling: the GT median
everywhere); poses for both checkpoints against zero motion and constant velocity. With
several seeds each runs in OUT/seed-N, the first seed's tables are shown, and a table of every
seed's figures with their mean ± std says in how many seeds each target was met.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from experiments import real
from experiments.seeds import mean_std

TRAIN, VAL, TEST = "0:600", "0:600:10", "600:700:5"
HELDOUT_START, HELDOUT_STOP, SPACING = 600, 700, 10
GT_ROT, GT_T = "GT rotation + predicted translation", "predicted rotation + GT translation"
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "7scenes.yaml"
TARGET_RATIO = 0.75  # the benchmark's target: trained abs_rel <= 0.75 x the constant's


def imports(data: Path, out: Path, overrides: list[str]) -> float:
    """Import the splits into OUT/data and the pose scenes into OUT/heldout; seconds."""
    from scdepth.config import load
    from scdepth.data.prepare import prepare

    size = load(CONFIG, overrides).image_size
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


def train(out: Path, seed: int, overrides: list[str]) -> dict:
    """The config's run into OUT/run (or the finished one there); its summary."""
    from scdepth import config
    from scdepth import train as trainer

    run = out / "run"
    cfg = config.load(CONFIG, [*overrides, f"data_root={out / 'data'}", f"seed={seed}"])
    timing = run / "train_seconds.txt"  # kept, so that a rerun reports the real time
    if not (run / "last.pt").is_file() or not timing.is_file():
        t0 = time.perf_counter()
        trainer.train(cfg, run, progress=False)
        timing.write_text(f"{time.perf_counter() - t0:.1f}\n")
    else:
        check_reused(cfg, run)
    return {
        "steps": cfg.epochs * cfg.epoch_size,
        "image_size": list(cfg.image_size),
        "amp": cfg.amp,
        "seconds": float(timing.read_text()),
    }


def check_reused(cfg, run: Path) -> None:
    """A finished run is reported only for the config asked for: another config (another
    --override, or configs/7scenes.yaml changed since) must go to another --out."""
    from scdepth import config

    trained = config.to_dict(config.load(run / "config.yaml"))
    wanted = config.to_dict(cfg)
    differ = sorted(k for k in wanted if k != "data_root" and trained.get(k) != wanted[k])
    if differ:
        raise SystemExit(
            f"{run} was trained with other {', '.join(differ)} than asked for now; "
            "give another --out (or --fresh to retrain there)"
        )


def run(data: Path, out: Path, seed: int, overrides=()) -> dict:
    if not any(data.glob("frame-*.pose.txt")):
        raise SystemExit(f"--data {data}: no frame-N.pose.txt (expected a 7-Scenes sequence)")
    overrides = list(overrides)
    report = {"machine": real.machine(), "date": time.strftime("%Y-%m-%d"), "set": "7scenes"}
    report["overrides"] = overrides
    stamp = out / "import_seconds.json"  # kept, so that a rerun reports the real time
    if not (out / "data").exists():
        stamp.write_text(json.dumps({"7scenes": imports(data, out, overrides)}) + "\n")
    report["imports_s"] = json.loads(stamp.read_text())
    report["training"] = {"7scenes": train(out, seed, overrides)}
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


def run_seeds(data: Path, out: Path, seeds: list[int], overrides=()) -> dict:
    """Each seed's run in OUT/seed-N (a finished one reused); the first seed's tables, a
    table of every seed's figures and a sheet of each seed's best.pt."""
    reports = {}
    for seed in seeds:
        sub = out / f"seed-{seed}"
        sub.mkdir(parents=True, exist_ok=True)
        reports[seed] = run(data, sub, seed, overrides)
        (sub / "real.json").write_text(json.dumps(reports[seed], indent=2, default=float) + "\n")
    first = seeds[0]
    report = dict(reports[first])
    report["imports_s"] = {f"seed {s}": r["imports_s"]["7scenes"] for s, r in reports.items()}
    report["training"] = {f"seed {s}": r["training"]["7scenes"] for s, r in reports.items()}
    report["seconds"] = sum(r["seconds"] for r in reports.values())
    report["depth"] = [{**r, "set": f"{r['set']}, seed {first}"} for r in report["depth"]]
    report["pose"] = {f"{k}, seed {first}": v for k, v in report["pose"].items()}
    report["reading"] = f"Seed {first}: {report['reading']}"
    report["per_seed"] = {s: seed_figures(r) for s, r in reports.items()}
    report["seeds"] = seeds_markdown(report["per_seed"])
    bests = [(out / f"seed-{s}" / "data", "7scenes", out / f"seed-{s}" / "run" / "best.pt")
             for s in seeds]  # fmt: skip
    real.sheet(bests, out / "real_7scenes_sheet.png", per_set=2)
    return report


def seed_figures(report: dict) -> dict:
    """One seed's headline figures: depth of both checkpoints and the untrained net, the
    constant's, and the PoseNets' held-out snippet ATE."""
    by = {r["predictor"]: r for r in report["depth"]}
    (pose,) = report["pose"].values()
    ate = {m: v["overall"]["ate_snippet"] for m, v in pose["metrics"]["methods"].items()}
    best, const = by["trained (best.pt)"], by["constant (GT median)"]
    return {
        "abs_rel_best": best["abs_rel"],
        "abs_rel_last": by["trained (last.pt)"]["abs_rel"],
        "abs_rel_untrained": by["untrained"]["abs_rel"],
        "abs_rel_constant": const["abs_rel"],
        "ratio": best["abs_rel"] / const["abs_rel"],
        "a1_best": best["a1"],
        "spread_best": best.get("spread", math.nan),
        "ate_best": ate["posenet (best.pt)"],
        "ate_last": ate["posenet (last.pt)"],
        "ate_zero": ate["zero"],
        "ate_cv": ate["constant-velocity"],
    }


SEED_COLUMNS = (  # (key, header, format)
    ("abs_rel_best", "abs_rel best.pt", ".3f"),
    ("abs_rel_last", "last.pt", ".3f"),
    ("abs_rel_untrained", "untrained", ".3f"),
    ("ratio", "best.pt / constant", ".2f"),
    ("a1_best", "δ < 1.25", ".3f"),
    ("spread_best", "spread", ".2f"),
    ("ate_best", "PoseNet snip_ate best.pt", ".4f"),
    ("ate_last", "last.pt", ".4f"),
)


def seeds_markdown(per_seed: dict) -> str:
    """Every seed's row, their mean ± sample std, and the targets read over the seeds."""
    rows = list(per_seed.values())

    def line(label, cells):
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        "**Every seed** (held-out depth and poses as above):",
        "",
        line("seed", [h for _, h, _ in SEED_COLUMNS]),
        line("---", ["---"] * len(SEED_COLUMNS)),
    ]
    for seed, f in per_seed.items():
        lines.append(line(seed, [f"{f[k]:{fmt}}" for k, _, fmt in SEED_COLUMNS]))
    stats = []
    for k, _, fmt in SEED_COLUMNS:
        mean, sd = mean_std(f[k] for f in rows)
        stats.append(f"{mean:{fmt}} ± {sd:{fmt}}")
    lines.append(line("mean ± std", stats))
    ratio, _ = mean_std(f["ratio"] for f in rows)
    met = sum(f["ratio"] <= TARGET_RATIO for f in rows)
    below_zero = sum(f["ate_best"] < f["ate_zero"] for f in rows)
    below_cv = sum(f["ate_best"] < f["ate_cv"] for f in rows)
    n, first = len(rows), rows[0]
    lines += [
        "",
        f"Over {n} seeds best.pt's abs_rel is {ratio:.2f}× the constant's "
        f"{first['abs_rel_constant']:.3f} on average (target ≤ {TARGET_RATIO}×: met in {met} "
        f"of {n}); "
        f"the PoseNet (best.pt) is below zero motion's {first['ate_zero']:.4f} in "
        f"{below_zero} of {n} and below constant velocity's {first['ate_cv']:.4f} in "
        f"{below_cv}.",
    ]
    return "\n".join(lines)


def reading(report: dict) -> str:
    ratio = seed_figures(report)["ratio"]
    met = "met" if ratio <= TARGET_RATIO else "missed"
    d = report["pose_diagnosis"]
    return (
        f"Trained abs_rel / constant's = {ratio:.2f} (target <= {TARGET_RATIO}: {met}). "
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
