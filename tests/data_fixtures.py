"""Tiny SC-Depth layouts written inside tests (imported by tests/test_data_*.py and others)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

K_TINY = np.array([[40.0, 0, 19.5], [0, 40.0, 15.5], [0, 0, 1]])


def write_scene(
    scene: Path,
    n_frames=7,
    size=(32, 40),
    *,
    values=None,
    pseudo=True,
    depth=None,
    masks=False,
    ext="png",
    K=K_TINY,
    seed=0,
):
    """Frames (constant grey value per frame unless random), cam.txt, leres_depth, optional
    GT depth ("png5000", "png1000", "npy", "npz") and seg masks."""
    rng = np.random.default_rng(seed)
    scene.mkdir(parents=True, exist_ok=True)
    np.savetxt(scene / "cam.txt", K)
    for i in range(n_frames):
        if values is None:
            img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        else:
            img = np.full((*size, 3), values[i], np.uint8)
        cv2.imwrite(str(scene / f"{i:06d}.{ext}"), img)
        gt = np.full(size, 1.0 + i, np.float32)
        if pseudo:
            (scene / "leres_depth").mkdir(exist_ok=True)
            cv2.imwrite(
                str(scene / "leres_depth" / f"{i:06d}.png"),
                np.full(size, 1000 * (i + 1), np.uint16),
            )
        if depth is not None:
            (scene / "depth").mkdir(exist_ok=True)
            _write_depth(scene / "depth" / f"{i:06d}", gt, depth)
        if masks:
            (scene / "seg_mask").mkdir(exist_ok=True)
            m = np.zeros(size, np.uint8)
            m[: size[0] // 2] = 255
            cv2.imwrite(str(scene / "seg_mask" / f"{i:06d}.png"), m)
    return scene


def _write_depth(stem: Path, gt, kind):
    if kind == "npy":
        np.save(stem.with_suffix(".npy"), gt)
    elif kind == "npz":
        np.savez(stem.with_suffix(".npz"), depth=gt)
    else:
        scale = {"png5000": 5000, "png1000": 1000}[kind]
        cv2.imwrite(str(stem.with_suffix(".png")), np.round(gt * scale).astype(np.uint16))


def make_layout(root: Path, *, train=("s0", "s1"), val=("v0",), depth="npy", **kw):
    training = root / "training"
    for name in train:
        write_scene(training / name, **kw)
    for name in val:
        write_scene(training / name, depth=depth, masks=True, **kw)
    (training / "train.txt").write_text("".join(f"{n}\n" for n in train))
    (training / "val.txt").write_text("".join(f"{n}\n" for n in val))
    return root


def make_testing(root: Path, n=4, size=(32, 40), depth="npy", masks=True):
    """ROOT/testing with color/, depth/ and (with `masks`) seg_mask/."""
    t = root / "testing"
    for sub in ("color", "depth", "seg_mask") if masks else ("color", "depth"):
        (t / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(t / "color" / f"img{i}.png"), rng.integers(0, 256, (*size, 3), np.uint8))
        gt = np.linspace(1.0, 4.0, size[0] * size[1], dtype=np.float32).reshape(size)
        _write_depth(t / "depth" / f"img{i}", gt, depth)
        if masks:
            m = np.zeros(size, np.uint8)
            m[:, : size[1] // 4] = 255
            cv2.imwrite(str(t / "seg_mask" / f"img{i}.png"), m)
    return root
