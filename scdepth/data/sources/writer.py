"""The one writer every importer shares: frames (undistorted, resized, static ones dropped),
cam.txt, GT depth, poses.txt, times.txt, written into a hidden staging folder next to the
destination and moved into place only when everything succeeded.

Lens undistortion (when distortion coefficients are known) is applied at the source size,
before any resize, colour bilinearly. The undistorted camera is OpenCV's
``getOptimalNewCameraMatrix`` with alpha = 0, so every written pixel sees the scene (no black
border); cam.txt is that camera scaled to the output size. GT depth is resampled by nearest
neighbour (a depth value is a surface's z, it must not be blended across edges) onto the same
camera: by default it is not undistorted, only moved from the source's K to the new one, for
depth registered to the colour image by the sensor (TUM, Bonn) is already a pinhole image
and TUM advises against undistorting it; ``undistort_depth`` remaps it with the colour
frames' lens distortion instead.

GT depth is kept at the source size (on the undistorted camera), as float32 metres in .npy, 0 = no
reading: the evaluator resizes each prediction to its GT, so sparse scans (KITTI) are not
thinned by a resize and dense ones keep their detail.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..layout import DatasetError
from ..poses import write_poses, write_times
from ..transforms import Augmentation, apply, scale_intrinsics
from .common import Recording

SPLIT_LISTS = {"train": "train.txt", "val": "val.txt"}


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in a wide dtype (no wrap-around)."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


class Undistort:
    """Remap maps from (K, dist) at one size to the alpha = 0 undistorted camera ``K``: the
    colour frames' and GT depth's (the same with ``undistort_depth``, else K -> ``K`` alone)."""

    def __init__(self, K: np.ndarray, dist: np.ndarray, size, undistort_depth: bool = False):
        h, w = size
        self.K, _ = cv2.getOptimalNewCameraMatrix(K, dist, (w, h), 0, (w, h))
        self.maps = cv2.initUndistortRectifyMap(K, dist, None, self.K, (w, h), cv2.CV_32FC1)
        self.depth_maps = (
            self.maps
            if undistort_depth
            else cv2.initUndistortRectifyMap(K, None, None, self.K, (w, h), cv2.CV_32FC1)
        )

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return cv2.remap(img, *self.maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def depth(self, d: np.ndarray) -> np.ndarray:
        return cv2.remap(d, *self.depth_maps, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)


def scene_test_files(testing: Path, scene: str) -> list[Path]:
    """Files of ``scene`` in testing/color and testing/depth (stems ``<scene>_NNNNNN``)."""
    pattern = re.compile(re.escape(scene) + r"_\d{6,}")
    return [
        p
        for sub in ("color", "depth", "seg_mask")
        if (testing / sub).is_dir()
        for p in sorted((testing / sub).iterdir())
        if pattern.fullmatch(p.stem)
    ]


def destination_taken(root: Path, scene: str, split: str) -> Path | None:
    """What an import of ``scene`` would replace, or None when nothing is there."""
    if split == "test":
        taken = scene_test_files(root / "testing", scene)
        return taken[0] if taken else None
    out = root / "training" / scene
    return out if out.exists() and any(out.iterdir()) else None


def write_scene(
    rec: Recording,
    root: Path,
    scene: str,
    *,
    split: str,
    selection: range,
    camera: Callable[[tuple[int, int]], tuple[np.ndarray, np.ndarray | None]],
    image_size=None,
    static_threshold: float = 0.0,
    ext: str = "jpg",
    undistort_depth: bool = False,
    progress: bool = True,
    log=print,
) -> tuple[Path, int]:
    """Write the selected frames of ``rec``; returns (scene folder or ROOT/testing, frames).

    camera(source (H, W)) -> (K, dist or None) at the source size, asked at the first frame.
    undistort_depth: remap GT depth with the lens distortion too (see the module's text).
    """
    parent = root / ("testing" if split == "test" else "training")
    made = [p for p in (root, parent) if not p.exists()]  # removed again if the import fails
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{scene}.partial-", dir=parent))
    try:
        kept, K_out, wrote_depth = _write_frames(
            rec, stage, scene, split, selection, camera, image_size, static_threshold, ext,
            undistort_depth, progress,
        )  # fmt: skip
        if split == "test":
            out = _commit_test(stage, parent, scene)
        else:
            np.savetxt(stage / "cam.txt", K_out, fmt="%.6f")
            if rec.poses is not None:
                write_poses(stage / "poses.txt", rec.poses[kept])
            if rec.times is not None:
                write_times(stage / "times.txt", rec.times[kept])
            out = _commit_scene(stage, parent, scene, split)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for p in reversed(made):
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise
    if stage.exists():  # the test split's emptied staging folder
        shutil.rmtree(stage)
    if log:
        extra = [n for n in ("poses.txt", "times.txt") if split != "test" and (out / n).exists()]
        extra += ["GT depth"] * wrote_depth
        log(f"wrote {out} ({len(kept)} frames{''.join(', ' + e for e in extra)})")
    return out, len(kept)


def _write_frames(
    rec, stage, scene, split, selection, camera, image_size, static_threshold, ext,
    undistort_depth, progress,
):  # fmt: skip
    test = split == "test"
    color = stage / "color" if test else stage
    depth_dir = stage / "depth"
    prefix = f"{scene}_" if test else ""
    total = (
        len(range(selection.start, min(selection.stop, rec.count), selection.step))
        if rec.count
        else None
    )
    kept, last, src_size, undistort, K_out = [], None, None, None, None
    for i, img, depth in tqdm(
        rec.read(selection), total=total, desc=f"prepare {scene}", unit="frame",
        disable=not progress,
    ):  # fmt: skip
        if src_size is None:
            src_size = img.shape[:2]
            out_size = tuple(image_size) if image_size else src_size
            K, dist = camera(src_size)
            if dist is not None and np.any(dist):
                undistort = Undistort(K, dist, src_size, undistort_depth)
                K = undistort.K
            K_out = scale_intrinsics(K, src_size, out_size)
            color.mkdir(exist_ok=True)
        elif img.shape[:2] != src_size:
            raise DatasetError(f"{rec.source}: frame {i} is {img.shape[:2]}, the first {src_size}")
        if undistort is not None:
            img = undistort(img)
        img = apply(img, out_size, Augmentation())
        if static_threshold > 0:
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            if last is not None and frame_difference(grey, last) < static_threshold:
                continue
            last = grey
        name = f"{prefix}{i:06d}"
        if not cv2.imwrite(str(color / f"{name}.{ext}"), img):
            raise OSError(f"{color / name}.{ext}: cannot be written")
        if depth is not None:
            d = np.asarray(depth(), dtype=np.float32)
            if undistort is not None:
                d = undistort.depth(d)
            depth_dir.mkdir(exist_ok=True)
            np.save(depth_dir / f"{name}.npy", d)
        kept.append(i)
    if not kept:
        if src_size is None:
            raise DatasetError(f"{rec.source}: no frame selected (check --frames) or readable")
        raise DatasetError(f"{rec.source}: every selected frame was dropped as static")
    return kept, K_out, depth_dir.is_dir()


def _write_list(path: Path, names: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{n}\n" for n in names))
    os.replace(tmp, path)


def _commit_scene(stage: Path, training: Path, scene: str, split: str) -> Path:
    """Swap the staged scene in, then list it in <split>.txt (and in no other split list)."""
    out = training / scene
    old = None
    if out.exists():
        old = stage.with_name(stage.name + "-old")
        out.rename(old)
    stage.rename(out)
    for s, list_name in SPLIT_LISTS.items():
        path = training / list_name
        names = path.read_text().split() if path.is_file() else []
        if s == split and scene not in names:
            _write_list(path, [*names, scene])
        elif s != split and scene in names:
            _write_list(path, [n for n in names if n != scene])
    if old is not None:
        shutil.rmtree(old)
    return out


def _commit_test(stage: Path, testing: Path, scene: str) -> Path:
    """Move the staged files into testing/color and testing/depth; drop the scene's stale
    files of an earlier import."""
    old = scene_test_files(testing, scene)
    new = set()
    for sub in ("color", "depth"):
        if not (stage / sub).is_dir():
            continue
        (testing / sub).mkdir(exist_ok=True)
        for f in sorted((stage / sub).iterdir()):
            os.replace(f, testing / sub / f.name)
            new.add(testing / sub / f.name)
    for f in old:
        if f not in new:
            f.unlink()
    return testing
