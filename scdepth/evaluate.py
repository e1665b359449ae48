"""Depth evaluation (scdepth-eval): standard depth metrics, split into dynamic and static
regions (SC-DepthV3 Table 1), for a folder of predictions or a checkpoint.

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

import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .checkpoint import load_depth_model
from .data.folders import TestFolder, ValFolder
from .data.layout import DatasetError, read_depth, read_mask
from .data.specs import EVAL_CROPS, DatasetSpec, get_spec
from .metrics import METRICS, compute_depth_metrics


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
    """Like evaluate_folder, predicting with ``checkpoint.load_depth_model``."""
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
