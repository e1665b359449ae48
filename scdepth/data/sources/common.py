"""What every importer hands to the writer: a Recording (frames, camera, optional GT)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..layout import DatasetError, check_intrinsics, read_intrinsics

# (index, BGR uint8 [H, W, 3], GT depth reader or None); the reader returns float32 metres
# [H, W] at the frame's size, 0 = no reading. Depth is read only when the split writes it.
FrameItem = tuple[int, np.ndarray, "Callable[[], np.ndarray] | None"]
DepthReader = Callable[[int, tuple[int, int]], np.ndarray]  # (index, frame (H, W)) -> metres


@dataclass
class SourceOptions:
    """Format-specific settings of one import (the CLI's options, with their defaults)."""

    split: str = "train"
    sequence: str | None = None  # KITTI: sequence NN or drive name when the source has several
    depth_scale: float | None = None  # PNG value / depth_scale = metres (TUM: 5000)
    max_dt: float = 0.02  # TUM: RGB-depth pairs are less than this apart (s)
    associations: Path | None = None  # TUM: a given association file
    poses: bool = True  # write poses.txt where the source has GT poses
    gt_pixels: str = "eigen"  # KITTI raw: velodyne GT pixels, "eigen" or "nearest"


@dataclass
class Recording:
    """One opened source. ``poses``/``times`` are aligned with the frame indices 0..count-1."""

    format: str
    source: Path
    count: int | None  # None: unknown before reading (some videos)
    read: Callable[[range], Iterator[FrameItem]]  # frames whose index is in the range
    K: np.ndarray | None = None  # [3, 3] at the source resolution (before undistortion)
    K_from: str = ""  # where K comes from, for the log
    K_size: tuple[int, int] | None = None  # (H, W) the K is for, when it is a fixed one
    dist: np.ndarray | None = None  # OpenCV (k1, k2, p1, p2, k3) of K, when known
    poses: np.ndarray | None = None  # [count, 4, 4] camera-to-world
    times: np.ndarray | None = None  # [count] seconds
    has_depth: bool = False
    fps: float | None = None  # frames per second, where the source says (videos)
    notes: list[str] = field(default_factory=list)  # said in the log (choices made)


def read_bgr(path: Path) -> np.ndarray:
    """uint8 BGR [H, W, 3]; grayscale files are replicated to three channels."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot be read as an image")
    return img


def read_depth_png(path: Path, scale: float, size=None) -> np.ndarray:
    """16-bit depth PNG -> float32 metres (value / scale; 0 stays 0 = no reading); with
    ``size`` (H, W) it must be the size of its colour frame."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise DatasetError(f"{path}: cannot be read as a depth image")
    if d.ndim != 2 or d.dtype != np.uint16:
        raise DatasetError(f"{path}: depth must be a 16-bit single-channel PNG, got {d.dtype}")
    if size is not None and d.shape != tuple(size):
        raise DatasetError(f"{path}: depth is {d.shape}, its colour frame {tuple(size)}")
    return d.astype(np.float32) / np.float32(scale)


def files_reader(
    images: Sequence[Path], depth: DepthReader | None = None
) -> Callable[[range], Iterator[FrameItem]]:
    """``Recording.read`` for a list of image files (and a per-index depth reader)."""

    def read(selection: range) -> Iterator[FrameItem]:
        for i in selection:
            if i >= len(images):
                return
            img = read_bgr(images[i])
            d = None if depth is None else (lambda i=i, s=img.shape[:2]: depth(i, s))
            yield i, img, d

    return read


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """``KEY: numbers`` lines (KITTI calib files); lines whose values are not numbers (dates)
    are skipped."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    rows = {}
    for line in path.read_text().splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            rows[key.strip()] = np.array([float(v) for v in rest.split()])
        except ValueError:
            continue
    return rows


def calib_row(calib: dict, key: str, size: int, path: Path, why: str) -> np.ndarray:
    """The row ``key`` of a calib file with ``size`` numbers, or an error naming the file."""
    if key not in calib:
        raise DatasetError(f"{path}: no '{key}:' row (needed for {why})")
    if calib[key].size != size:
        raise DatasetError(f"{path}: '{key}:' has {calib[key].size} numbers, expected {size}")
    return calib[key]


def intrinsics_file(folder: Path) -> tuple[np.ndarray, Path] | None:
    """K from ``intrinsics.txt`` (fx fy cx cy) or ``cam.txt`` (3x3) in ``folder``, if any."""
    path = folder / "intrinsics.txt"
    if path.is_file():
        try:
            v = np.loadtxt(path, dtype=np.float64, ndmin=1).ravel()
        except ValueError as e:
            raise DatasetError(f"{path}: cannot parse: {e}") from None
        if v.size != 4:
            raise DatasetError(f"{path}: expected 4 numbers (fx fy cx cy), got {v.size}")
        K = np.array([[v[0], 0, v[2]], [0, v[1], v[3]], [0, 0, 1]])
        return check_intrinsics(K, path), path
    path = folder / "cam.txt"
    return (read_intrinsics(path), path) if path.is_file() else None
