"""scdepth-eval: standard depth metrics, split into dynamic and static regions (SC-DepthV3
Table 1), for a folder of predictions or a checkpoint.

Per image, as the public SC-Depth evaluation does: the prediction is resized bilinearly to
the GT size; pixels with GT in (min_depth, max_depth) inside the dataset's crop are valid;
the prediction is scaled by median(gt) / median(pred) over the valid pixels and clamped to
[min_depth, max_depth]. When a seg mask exists, the same aligned prediction (one scale per
image, from all valid pixels) is scored on its dynamic and static pixels separately; a split
without seg_mask (static scenes) gets the "all" row only.
Metrics are averaged over images; an image without dynamic pixels does not count for the
"dynamic" row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .data.dataset import TestFolder, ValFolder
from .data.datasets import DATASETS, EVAL_CROPS, DatasetSpec, get_spec
from .data.layout import DatasetError, read_depth, read_mask

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "a1", "a2", "a3", "spread")


def compute_depth_metrics(gt, pred, mask=None) -> dict[str, float]:
    """abs_rel, sq_rel, rmse, rmse_log, log10 and the accuracies a1-a3 (delta < 1.25^k) over
    the pixels in ``mask`` (all when None). gt and pred: positive depths of one shape,
    already aligned (no scaling here). spread: std(log pred) / std(log gt), the depth contrast
    relative to GT (1 = right; median scaling cannot fix it, so abs_rel moves with it); nan
    when the GT is flat."""
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"pred must have the shape of gt {gt.shape}, got {pred.shape}")
    if mask is not None:
        gt, pred = gt[mask], pred[mask]
    if gt.size == 0:
        raise ValueError("no pixels to evaluate (mask is empty)")
    thresh = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    gt_std = np.std(np.log(gt))
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
        "spread": float(np.std(np.log(pred)) / gt_std) if gt_std > 0 else float("nan"),
    }


def valid_mask(gt: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """GT inside the evaluation range and the dataset's crop."""
    valid = np.isfinite(gt) & (gt > spec.min_depth) & (gt < spec.max_depth)
    if spec.eval_crop is not None:
        y1, y2, x1, x2 = EVAL_CROPS[spec.eval_crop]
        h, w = gt.shape
        crop = np.zeros_like(valid)
        crop[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)] = True
        valid &= crop
    return valid


def align_prediction(gt, pred, valid, spec: DatasetSpec, median_scaling: bool = True):
    """Resize pred to the GT size, median-scale it on the valid pixels, clamp to the range."""
    pred = np.asarray(pred, np.float32)
    if pred.shape != gt.shape:
        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    if median_scaling:
        med = float(np.median(pred[valid]))
        if not med > 0:
            raise ValueError(f"prediction has median {med} on the valid pixels; must be > 0")
        pred = pred * (np.median(gt[valid]) / med)
    return np.clip(pred, spec.min_depth, spec.max_depth)


def evaluate_image(gt, pred, spec: DatasetSpec, seg_mask=None, median_scaling: bool = True):
    """{"all": metrics, "dynamic": metrics | None, "static": metrics | None} for one image;
    "all" is None when the image has no valid GT pixel."""
    pred = np.asarray(pred)
    while pred.ndim > 2 and pred.shape[0] == 1:  # [1, 1, H, W] or [1, H, W]
        pred = pred[0]
    if pred.ndim != 2:
        raise ValueError(f"pred must be a depth map [H, W], got shape {pred.shape}")
    if not np.isfinite(pred).all():
        raise ValueError("pred contains non-finite values")
    valid = valid_mask(gt, spec)
    if not valid.any():
        return {"all": None, "dynamic": None, "static": None}
    pred = align_prediction(gt, pred, valid, spec, median_scaling)
    out = {"all": compute_depth_metrics(gt, pred, valid), "dynamic": None, "static": None}
    if seg_mask is not None:
        for region, m in (("dynamic", valid & seg_mask), ("static", valid & ~seg_mask)):
            if m.any():
                out[region] = compute_depth_metrics(gt, pred, m)
    return out


def _nanmean(values) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _mean(per_image: dict[str, list]) -> dict:
    return {
        # nanmean: spread is nan on an image whose GT is flat
        region: {**{k: _nanmean([m[k] for m in rows]) for k in METRICS}, "count": len(rows)}
        for region, rows in per_image.items()
        if rows
    }


def _folder(data_root, dataset, split, image_size):
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if split == "val":
        return ValFolder(data_root, image_size=image_size, dataset=dataset)
    folder = TestFolder(data_root, image_size=image_size, dataset=dataset)
    if folder.unscored:
        print(
            f"{len(folder.unscored)} test images have no GT depth and are not scored "
            f"(e.g. {folder.unscored[0]})",
            file=sys.stderr,
        )
    return folder


def _score(folder, predict, spec, median_scaling, progress, desc):
    per_image = {"all": [], "dynamic": [], "static": []}
    for index, (name, _, depth_path, mask_path) in enumerate(
        tqdm(folder.records, desc=desc, unit="img", disable=not progress)
    ):
        gt = read_depth(depth_path, spec.depth_png_scale)
        seg = read_mask(mask_path) if mask_path is not None else None
        if seg is not None and seg.shape != gt.shape:
            raise DatasetError(f"{mask_path}: mask size {seg.shape} != GT size {gt.shape}")
        try:
            result = evaluate_image(gt, predict(index, name), spec, seg, median_scaling)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        for region, metrics in result.items():
            if metrics is not None:
                per_image[region].append(metrics)
    if not per_image["all"]:
        raise DatasetError(f"no {desc} image has valid GT in ({spec.min_depth}, {spec.max_depth})")
    return _mean(per_image)


def evaluate_folder(
    pred_dir,
    data_root,
    dataset: str,
    *,
    split: str = "test",
    median_scaling: bool = True,
    progress: bool = True,
) -> dict:
    """Score ``pred_dir/<name>.npy`` (name: the test image stem, or "<scene>/<stem>" for
    val) against the GT of ``data_root``. Returns {region: {metric: mean, "count": images}}."""
    spec = get_spec(dataset)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"--pred-dir {pred_dir}: no such folder")
    folder = _folder(data_root, dataset, split, spec.image_size)

    def predict(index, name):
        path = pred_dir / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing prediction for {split} image {name}")
        return np.load(path)

    return _score(folder, predict, spec, median_scaling, progress, f"eval {dataset} {split}")


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) from 0 (all of them when k >= n)."""
    return list(range(n)) if k >= n else [i * n // k for i in range(k)]


def evaluate_model(
    model,
    data_root,
    dataset: str,
    *,
    image_size,
    split: str = "test",
    device="cpu",
    median_scaling: bool = True,
    progress: bool = True,
    max_images: int = 0,
) -> dict:
    """Score a depth model (normalised [1, 3, H, W] at image_size -> depth [1, 1, H, W]) on a
    split; max_images > 0 scores only that many images, spread evenly over the split (so over
    all its scenes)."""
    import torch

    spec = get_spec(dataset)
    folder = _folder(data_root, dataset, split, image_size)
    if max_images:
        folder.records = [folder.records[i] for i in spread(len(folder.records), max_images)]

    @torch.no_grad()
    def predict(index, name):
        img = folder[index]["img"][None].to(device)
        return model(img)[0, 0].float().cpu().numpy()

    return _score(folder, predict, spec, median_scaling, progress, f"eval {dataset} {split}")


def evaluate_checkpoint(
    checkpoint,
    data_root,
    dataset: str,
    *,
    split: str = "test",
    device: str = "cpu",
    median_scaling: bool = True,
    progress: bool = True,
) -> dict:
    """Like evaluate_folder, predicting with ``scdepth.infer.load_depth_model``."""
    from .infer import load_depth_model  # the model code is only needed here

    model, image_size = load_depth_model(checkpoint, device)
    return evaluate_model(
        model,
        data_root,
        dataset,
        image_size=image_size,
        split=split,
        device=device,
        median_scaling=median_scaling,
        progress=progress,
    )


def format_table(results: dict) -> str:
    head = f"{'region':<8}{'images':>7}" + "".join(f"{k:>10}" for k in METRICS)
    rows = [head]
    for region, m in results.items():
        rows.append(f"{region:<8}{m['count']:>7}" + "".join(f"{m[k]:>10.4f}" for k in METRICS))
    if not {"dynamic", "static"} & set(results):
        rows.append("(no seg_mask: all pixels only; dynamic/static need seg_mask/)")
    return "\n".join(rows)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--pose" in argv:  # pose evaluation has its own options (scdepth/pose_eval.py)
        from .pose_eval import main as pose_main

        return pose_main([a for a in argv if a != "--pose"])
    ap = argparse.ArgumentParser(prog="scdepth-eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pose", action="store_true", help="pose evaluation: see --pose --help")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred-dir", help="folder of <image stem>.npy depth predictions")
    src.add_argument("--checkpoint", help="a checkpoint scdepth.infer can load")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-median-scaling", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    kw = dict(split=a.split, median_scaling=not a.no_median_scaling, progress=not a.no_progress)
    try:
        if a.pred_dir:
            results = evaluate_folder(a.pred_dir, a.data_root, a.dataset, **kw)
        else:
            results = evaluate_checkpoint(
                a.checkpoint, a.data_root, a.dataset, device=a.device, **kw
            )
    except (ValueError, FileNotFoundError, ImportError) as e:  # DatasetError is a ValueError
        ap.error(str(e))
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
