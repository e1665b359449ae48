"""scdepth-eval: depth metrics of a checkpoint or a folder of predictions against a split's
GT (all / dynamic / static regions); with --pose, the PoseNet's odometry (cli/pose_eval.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import evaluate
from ..checkpoint import CheckpointError
from ..data.specs import DATASETS
from ..metrics import format_table
from .common import add_device, add_progress, checkpoint_refusal, resolve_device

# what ends the command with a usage error (a DatasetError is a ValueError)
REFUSED = (ValueError, FileNotFoundError, ImportError, CheckpointError)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--pose" in argv:  # pose evaluation has its own options (cli/pose_eval.py)
        from .pose_eval import main as pose_main

        return pose_main([a for a in argv if a != "--pose"])
    ap = argparse.ArgumentParser(prog="scdepth-eval", description=evaluate.__doc__.split("\n\n")[0])
    ap.add_argument("--pose", action="store_true", help="pose evaluation: see --pose --help")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred-dir", help="folder of <image stem>.npy depth predictions")
    src.add_argument("--checkpoint", help="a checkpoint written by scdepth-train")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--json", help="write the results here as JSON")
    add_device(ap)
    ap.add_argument("--no-median-scaling", action="store_true")
    add_progress(ap)
    a = ap.parse_args(argv)
    kw = dict(split=a.split, median_scaling=not a.no_median_scaling, progress=not a.no_progress)
    try:
        if a.pred_dir:
            results = evaluate.evaluate_folder(a.pred_dir, a.data_root, a.dataset, **kw)
        else:
            results = evaluate.evaluate_checkpoint(
                a.checkpoint, a.data_root, a.dataset, device=resolve_device(a.device), **kw
            )
    except REFUSED as e:
        ap.error(checkpoint_refusal(e, a.checkpoint))
    print(
        f"scdepth-eval {a.dataset} {a.split}"
        f"{'' if kw['median_scaling'] else ' (no median scaling)'}"
    )
    print(format_table(results))
    if a.json:
        payload = {
            "dataset": a.dataset,
            "split": a.split,
            "source": a.pred_dir or a.checkpoint,
            "median_scaling": kw["median_scaling"],
            "regions": results,
        }
        Path(a.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
