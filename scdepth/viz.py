"""Pictures drawn with OpenCV: colour-mapped depth and validation sheets (curves: plots.py)."""

import cv2
import numpy as np

MEAN, STD = 0.45, 0.225  # image normalisation of the data loader


def image_to_bgr(img):
    """Normalised [3, H, W] tensor -> uint8 BGR image."""
    rgb = (img.detach().float().cpu().numpy().transpose(1, 2, 0) * STD + MEAN) * 255
    return cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def colorize(values, vmin=None, vmax=None, cmap=cv2.COLORMAP_MAGMA, invalid=None):
    """[H, W] float array -> uint8 BGR with a colour map; `invalid` pixels are black.
    Depth is shown as inverse depth (near = bright), as depth papers do."""
    v = np.asarray(values, dtype=np.float32)
    ok = np.isfinite(v) if invalid is None else (~invalid & np.isfinite(v))
    lo = np.min(v[ok]) if vmin is None and ok.any() else (vmin or 0.0)
    hi = np.max(v[ok]) if vmax is None and ok.any() else (vmax or 1.0)
    scaled = np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1)
    out = cv2.applyColorMap((np.nan_to_num(scaled) * 255).astype(np.uint8), cmap)
    out[~ok] = 0
    return out


def depth_to_bgr(depth, vmax_inv=None):
    d = np.asarray(depth, dtype=np.float32)
    inv = np.where(d > 0, 1.0 / np.maximum(d, 1e-6), 0.0)
    return colorize(inv, 0.0, vmax_inv, invalid=d <= 0)


def label(img, text):
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def validation_sheet(rows):
    """rows: list of dicts with 'img' [3,H,W] tensor, 'pred' [H,W], optional 'gt' [h,w],
    'mask' [h,w] bool (dynamic pixels). One row per frame: image, prediction, GT, |error|
    (median-scaled) and the dynamic mask."""
    lines = []
    for r in rows:
        img = image_to_bgr(r["img"])
        H, W = img.shape[:2]
        pred = np.asarray(r["pred"], dtype=np.float32)
        tiles = [label(img, "image")]
        gt = r.get("gt")
        if gt is not None:
            gt = cv2.resize(np.asarray(gt, np.float32), (W, H), interpolation=cv2.INTER_NEAREST)
            ok = gt > 0
            scale = np.median(gt[ok]) / np.median(pred[ok]) if ok.any() else 1.0
            vmax = float(np.percentile(1 / gt[ok], 99)) if ok.any() else None
            tiles.append(label(depth_to_bgr(pred * scale, vmax), "prediction"))
            tiles.append(label(depth_to_bgr(gt, vmax), "ground truth"))
            err = np.where(ok, np.abs(pred * scale - gt) / np.maximum(gt, 1e-6), 0)
            tiles.append(label(colorize(err, 0, 0.5, cv2.COLORMAP_JET, ~ok), "abs rel error"))
        else:
            tiles.append(label(depth_to_bgr(pred), "prediction"))
        if r.get("mask") is not None:
            m = cv2.resize(r["mask"].astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
            overlay = img.copy()
            overlay[m > 0] = (0.4 * overlay[m > 0] + [0, 0, 150]).astype(np.uint8)
            tiles.append(label(overlay, "dynamic"))
        lines.append(np.concatenate(tiles, 1))
    return stack(lines)


def rectification_sheet(rows):
    """SC-DepthV2's rectification of a few validation pairs, one line each: target, reference,
    rectified reference, |target - reference| and |target - rectified| (black where the
    rectified reference is blank). rows: dicts with 'tgt', 'ref', 'rectified' [3, H, W]
    normalised tensors, 'valid' [1, H, W] and 'angle' (mean |r1|, rad)."""
    lines = []
    for r in rows:
        tgt, ref, rect = (r[k].detach().float().cpu() for k in ("tgt", "ref", "rectified"))
        blank = r["valid"][0].detach().cpu().numpy() <= 0
        before = ((tgt - ref).abs().mean(0) * STD).numpy()
        after = ((tgt - rect).abs().mean(0) * STD).numpy()
        rect_bgr = image_to_bgr(rect)
        rect_bgr[blank] = 0
        lines.append(
            np.concatenate(
                [
                    label(image_to_bgr(tgt), "target"),
                    label(image_to_bgr(ref), "reference"),
                    label(rect_bgr, f"rectified {np.degrees(r['angle']):.1f}deg"),
                    label(colorize(before, 0, 0.3), "|tgt - ref|"),
                    label(colorize(after, 0, 0.3, invalid=blank), "|tgt - rectified|"),
                ],
                1,
            )
        )
    return stack(lines)


def stack(images):
    """BGR images one above the other, padded on the right to the widest."""
    width = max(img.shape[1] for img in images)
    return np.concatenate([np.pad(i, ((0, 0), (0, width - i.shape[1]), (0, 0))) for i in images])
