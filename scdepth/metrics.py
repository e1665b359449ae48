"""Depth metrics: the standard error measures of one aligned prediction and the table they
print as. A leaf module: everything that scores or plots depth reads the metric names here."""

from __future__ import annotations

import numpy as np

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


def format_table(results: dict) -> str:
    head = f"{'region':<8}{'images':>7}" + "".join(f"{k:>10}" for k in METRICS)
    rows = [head]
    for region, m in results.items():
        rows.append(f"{region:<8}{m['count']:>7}" + "".join(f"{m[k]:>10.4f}" for k in METRICS))
    if not {"dynamic", "static"} & set(results):
        rows.append("(no seg_mask: all pixels only; dynamic/static need seg_mask/)")
    return "\n".join(rows)
