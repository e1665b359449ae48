"""Real recordings end to end: import, an SC-Depth V1 run, depth and pose figures.

    python -m experiments.real --data ../shared/real --out runs/real [--md benchmarks/RESULTS.md]
    python -m experiments.real --set 7scenes --data ../shared/real/7scenes_redkitchen \
        --out runs/7scenes [--seed 0 1 2] [--md benchmarks/RESULTS.md]

``--set 7scenes`` is the learning benchmark: up to an hour of training on one 7-Scenes sequence,
scored on its held-out end (experiments/real_7scenes.py), for each seed given. The default
set, ``shared``, checks the path from each raw format to scores in a few minutes of training:

On the recordings of ``--data`` (the layout of the project's shared/real/: TUM fr1_desk, two
KITTI odometry excerpts, a RealSense office clip), in turn:

1. imports every set with ``scdepth-prepare``'s Python API (``scdepth.data.prepare``);
2. trains SC-Depth V1 for a few minutes on the RealSense clip (frames 0-95; GT depth of
   every 8th frame for validation) and on KITTI excerpt 90 (validated on excerpt 91);
3. scores depth against GT where a set has it (RealSense frames 96-119, TUM fr1_desk), for the
   trained network, the same network untrained, and a constant prediction (after median
   scaling: the GT median everywhere);
4. scores the PoseNet's trajectories where a set has GT poses (KITTI 90 and 91, TUM; the
   RealSense clip has none) against the zero-motion and constant-velocity baselines;
5. writes OUT/real.json, OUT/real.md, a picture sheet (frame, predicted depth, GT) and the
   trajectory plots, and with ``--md`` replaces the real-data section of that file.

A run takes about 25 minutes on a 2-core CPU, most of it the two trainings (``--steps``
sets their length). Run it alone: two trainings at once slow each other far more than 2x.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

SECTIONS = {  # the RESULTS.md section each set replaces
    "shared": ("<!-- real-data:begin -->", "<!-- real-data:end -->"),
    "7scenes": ("<!-- real-7scenes:begin -->", "<!-- real-7scenes:end -->"),
}
REALSENSE_FX = 615.0  # D435 colour at 640x480, approximate: the clip has no calibration
SHEET_WIDTH = 1024  # pixels: a picture sheet narrower than this is enlarged by a whole factor


def imports(data: Path, root: Path) -> dict:
    """Import each set into root/<set>; returns {set: seconds}."""
    from scdepth.data.prepare import prepare

    rs, kitti, tum = (
        data / "realsense_indoor",
        data / "kitti_odometry",
        data / "tum_fr1_desk_9frames",
    )
    rs_raw = dict(source=rs, fx=REALSENSE_FX, depth_scale=1000.0)
    jobs = {
        "realsense": [  # depth in mm, no calibration: fx guessed (REALSENSE_FX)
            dict(rs_raw, scene="office", split="train", frames="0:96", image_size=(192, 256)),
            dict(rs_raw, scene="office_val", split="val", frames="0:96:8", image_size=(192, 256)),
            dict(rs_raw, scene="office", split="test", frames="96:120"),
        ],
        "kitti": [
            dict(source=kitti, scene="90", split="train", sequence="90", image_size=(128, 416)),
            dict(source=kitti, scene="91", split="val", sequence="91", image_size=(128, 416)),
        ],
        "tum": [
            dict(source=tum, scene="fr1_desk", split="val", image_size=(192, 256)),
            dict(source=tum, scene="fr1_desk", split="test"),
        ],
    }
    seconds = {}
    for name, calls in jobs.items():
        t0 = time.perf_counter()
        for kw in calls:
            prepare(root=root / name, format="auto", progress=False, log=None, **kw)
        seconds[name] = time.perf_counter() - t0
    return seconds


def train_v1(root: Path, out: Path, dataset: str, size, steps: int, seed: int) -> dict:
    """A short SC-Depth V1 run (or the finished one in ``out``); returns its summary."""
    from scdepth import config, train

    epochs = 4
    cfg = config.load(
        overrides=[
            "method=sc_depth_v1",
            f"dataset={dataset}",
            f"data_root={root}",
            f"image_size=[{size[0]},{size[1]}]",
            "batch_size=4",
            f"epochs={epochs}",
            f"epoch_size={max(1, steps // epochs)}",
            f"seed={seed}",
            "pretrained=none",
        ]
    )
    timing = out / "train_seconds.txt"  # kept, so that a rerun reports the real time
    if not (out / "best.pt").is_file():
        t0 = time.perf_counter()
        train.train(cfg, out, progress=False)
        timing.write_text(f"{time.perf_counter() - t0:.1f}\n")
    lines = [json.loads(s) for s in (out / "log.jsonl").read_text().splitlines()]
    val = [x for x in lines if x["kind"] == "val"]
    return {
        "steps": cfg.epochs * cfg.epoch_size,
        "image_size": list(size),
        "seconds": float(timing.read_text()) if timing.is_file() else math.nan,
        "val": val,
    }


def constant_model(img):
    return torch.ones_like(img[:, :1])


def depth_rows(name, root, dataset, checkpoint, seed) -> list[dict]:
    """abs_rel / a1 of the trained net, the same net untrained, and a constant."""
    from scdepth.checkpoint import load_depth_model
    from scdepth.evaluate import evaluate_model
    from scdepth.models import DepthNet

    trained, size = load_depth_model(checkpoint)
    torch.manual_seed(seed)  # the initial weights of the run
    untrained = DepthNet(18, pretrained=False).eval()
    rows = []
    for label, model in (
        ("trained", trained),
        ("untrained", untrained),
        ("constant (GT median)", constant_model),
    ):
        m = evaluate_model(model, root, dataset, image_size=size, progress=False)["all"]
        rows.append(
            {
                "set": name,
                "predictor": label,
                "images": m["count"],
                "abs_rel": m["abs_rel"],
                "a1": m["a1"],
                "spread": m["spread"],
            }
        )
    return rows


def pose_results(name, root, dataset, checkpoint, out: Path) -> dict:
    from scdepth import pose_eval

    # best.pt of a run without GT depth is the last epoch (best_metric auto); one trained
    # with best_metric=photo may differ, so the last epoch's PoseNet is scored too
    last = pose_eval.methods_for(checkpoint.parent / "last.pt")[pose_eval.MODEL]
    methods = pose_eval.methods_for(checkpoint, pose_eval.BASELINES)
    methods = {
        "posenet (best.pt)": methods.pop(pose_eval.MODEL),
        "posenet (last.pt)": last,
        **methods,
    }
    return pose_eval.evaluate_poses(
        root, dataset, methods, split="all", out=out, overwrite=True, source=name
    )


def sheet(sets, path: Path, per_set: int = 2) -> None:
    """Rows of (frame, median-scaled prediction, GT, error) from each set's test split."""
    import cv2

    from scdepth import viz
    from scdepth.checkpoint import load_depth_model
    from scdepth.data.folders import TestFolder
    from scdepth.data.layout import read_depth

    rows = []
    for root, dataset, checkpoint in sets:
        model, size = load_depth_model(checkpoint)
        folder = TestFolder(root, image_size=size, dataset=dataset)
        picks = np.linspace(0, len(folder) - 1, per_set).round().astype(int)
        for i in picks:
            s = folder[int(i)]
            with torch.no_grad():
                pred = model(s["img"][None])[0, 0].numpy()
            gt = read_depth(folder.records[int(i)][2], 1.0)
            rows.append({"img": s["img"], "pred": pred, "gt": gt})
    img = viz.validation_sheet(rows)
    k = max(1, SHEET_WIDTH // img.shape[1])  # small frames enlarged to be seen, large ones not
    cv2.imwrite(str(path), cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST))


def total_minutes(report: dict) -> float:
    """Imports and trainings as first measured (kept beside them), plus this evaluation."""
    parts = [*report["imports_s"].values(), *(t["seconds"] for t in report["training"].values())]
    return (sum(parts) + report["seconds"]) / 60


def markdown(report: dict) -> str:
    command = "python -m experiments.real" + (
        " --set 7scenes" if report.get("set") == "7scenes" else ""
    )
    if report.get("overrides"):
        command += " --override " + " ".join(report["overrides"])
    title = "Real-data learning: 7-Scenes" if report.get("set") == "7scenes" else "Real recordings"
    lines = [
        f"## {title} (`{command}`)",
        "",
        f"Measured on {report['machine']}, {report['date']}; in all "
        f"{total_minutes(report):.1f} min (imports, trainings, then "
        f"{report['seconds'] / 60:.1f} min of evaluation). Imports: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in report["imports_s"].items())
        + ".",
        *([report["note"]] if report.get("note") else []),
        "",
        "Training (SC-Depth V1, from scratch, batch 4): "
        + "; ".join(
            f"{k}: {t['steps']} steps at {t['image_size'][0]}×{t['image_size'][1]}"
            f"{', amp ' + t['amp'] if t.get('amp') else ''}, {t['seconds'] / 60:.1f} min"
            for k, t in report["training"].items()
        )
        + ".",
        "",
        "Depth against GT (median scaling, all pixels with GT in the dataset's range; "
        "spread: std of log depth, predicted over GT, 0 for a flat map):",
        "",
        "| set | predictor | images | abs_rel | δ < 1.25 | spread |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["depth"]:
        lines.append(
            f"| {r['set']} | {r['predictor']} | {r['images']} | {r['abs_rel']:.3f} | "
            f"{r['a1']:.3f} | {r.get('spread', math.nan):.2f} |"
        )
    lines += ["", "Poses (PoseNet of the same runs against the baselines):", ""]
    for name, res in report["pose"].items():
        lines += [f"**{name}**", "", res["table"], ""]
    lines += [report["reading"], ""]
    if report.get("seeds"):
        lines += [report["seeds"], ""]
    lines += [f"![real-data sheet]({report['sheet']})", ""]
    return "\n".join(lines)


def replace_section(path: Path, text: str, which: str = "shared") -> None:
    old = path.read_text() if path.is_file() else ""
    BEGIN, END = SECTIONS[which]
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--set",
        choices=tuple(SECTIONS),
        default="shared",
        help="shared: every format of shared/real; 7scenes: the learning benchmark",
    )
    ap.add_argument(
        "--data",
        required=True,
        help="folder of the real recordings (--set 7scenes: the 7-Scenes sequence)",
    )
    ap.add_argument("--out", help="imports, runs and reports go here (default runs/<set>)")
    ap.add_argument("--steps", type=int, default=240, help="training steps per set")
    ap.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="--set 7scenes: several seeds train into OUT/seed-N and are reported side by side",
    )
    ap.add_argument(
        "--override",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="--set 7scenes: config keys changed for a variant (e.g. 'image_size=[192,256]')",
    )
    ap.add_argument("--md", help="replace the real-data section of this Markdown file")
    ap.add_argument("--fresh", action="store_true", help="delete OUT first")
    ap.add_argument("--note", default="", help="a sentence for the report, e.g. on the load")
    a = ap.parse_args(argv)
    data, out = Path(a.data), Path(a.out or f"runs/{a.set}")
    if a.fresh and out.exists():
        shutil.rmtree(out)
    if a.set == "7scenes":
        from experiments import real_7scenes

        out.mkdir(parents=True, exist_ok=True)
        if len(a.seed) == 1:
            report = real_7scenes.run(data, out, a.seed[0], a.override)
        else:
            report = real_7scenes.run_seeds(data, out, a.seed, a.override)
        report["note"] = a.note
        return publish(report, out, a.md, out / "real_7scenes_sheet.png", "7scenes")
    if len(a.seed) > 1:
        ap.error("--seed: several seeds only with --set 7scenes")
    if a.override:
        ap.error("--override: only with --set 7scenes")
    (a.seed,) = a.seed
    for sub in ("realsense_indoor", "kitti_odometry", "tum_fr1_desk_9frames"):
        if not (data / sub).is_dir():
            ap.error(f"--data {data}: no {sub}/ (expected the shared/real layout)")
    root = out / "data"
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    stamp = root / "import_seconds.json"  # kept, so that a rerun reports the real times
    if not root.exists():
        stamp_data = imports(data, root)
        stamp.write_text(json.dumps(stamp_data) + "\n")
    report["imports_s"] = json.loads(stamp.read_text()) if stamp.is_file() else {}
    # KITTI at its aspect with about the pixels of 96x128, to fit the 10 minutes
    runs = {"realsense": ("tum", (96, 128)), "kitti": ("kitti", (64, 224))}
    report["training"] = {
        name: train_v1(root / name, out / f"run_{name}", dataset, size, a.steps, a.seed)
        for name, (dataset, size) in runs.items()
    }
    t0 = time.perf_counter()  # the evaluation: imports and trainings are timed apart
    rs_ck, kitti_ck = out / "run_realsense" / "best.pt", out / "run_kitti" / "best.pt"
    report["depth"] = depth_rows(
        "RealSense office (frames 96-119)", root / "realsense", "tum", rs_ck, a.seed
    ) + depth_rows("TUM fr1_desk (RealSense model)", root / "tum", "tum", rs_ck, a.seed)
    report["pose"] = {}
    for name, r, dataset, ck in (
        ("KITTI 90 (trained on) and 91", root / "kitti", "kitti", kitti_ck),
        ("TUM fr1_desk (RealSense model)", root / "tum", "tum", rs_ck),
    ):
        res = pose_results(name, r, dataset, ck, out / f"pose_{Path(r).name}")
        from scdepth.pose_report import markdown_table

        report["pose"][name] = {"metrics": res, "table": markdown_table(res)}
    sheet_path = out / "real_sheet.png"
    sheet([(root / "realsense", "tum", rs_ck), (root / "tum", "tum", rs_ck)], sheet_path)
    report["seconds"] = time.perf_counter() - t0
    report["sheet"] = "results/real_sheet.png"
    report["reading"] = READING
    report["note"] = a.note
    return publish(report, out, a.md, sheet_path, "shared")


def publish(report: dict, out: Path, md, sheet_path: Path, which: str) -> int:
    """OUT/real.json and real.md, and with md its section replaced and the sheet copied."""
    (out / "real.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    text = markdown(report)
    (out / "real.md").write_text(text)
    if md:
        md = Path(md)
        shutil.copy(sheet_path, md.parent / report["sheet"])
        replace_section(md, text, which)
    print(text)
    return 0 if all(math.isfinite(r["abs_rel"]) for r in report["depth"]) else 1


READING = (
    "What a few minutes of CPU training can and cannot show: it checks the whole path from a "
    "raw download to a trained model and its scores (formats, intrinsics, depth units, pose "
    "conventions), and whether the losses start to pull depth and motion the right way "
    "relative to an untrained network. It cannot show how good SC-Depth gets on these data: "
    "the networks start from random weights (no ImageNet download here), see 50-100 frames "
    "for about 240 steps at a quarter of the usual resolution, and the paper trains for "
    "100 epochs of 1,000 steps on full datasets with pretrained encoders."
)


def machine() -> str:
    from benchmarks.common import describe
    from benchmarks.common import machine as info

    return describe(info("cpu"))


if __name__ == "__main__":
    sys.exit(main())
