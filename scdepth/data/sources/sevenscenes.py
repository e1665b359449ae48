"""Microsoft 7-Scenes layout: one sequence folder (``seq-01/`` or a scene's frames).

    SOURCE/frame-NNNNNN.color.png|jpg   colour, 640x480
    SOURCE/frame-NNNNNN.depth.png       16-bit depth in millimetres; 0 and 65535 = no reading
    SOURCE/frame-NNNNNN.pose.txt        4x4 camera-to-world (KinectFusion's track)
    SOURCE/camera-intrinsics.txt        optional 3x3 K (also looked for in the parent, the
                                        scene folder); without it 7-Scenes' published
                                        calibration, fx = fy = 585, cx = 320, cy = 240

Frames are taken in the order of their numbers (which need not start at 0 nor be contiguous;
the index written is the position in that order). Depth comes from the Kinect's depth camera
and is only approximately registered to the colour image: good enough for evaluation at the
scales SC-Depth trains at, not for per-pixel work. A frame whose pose is not finite (lost
tracking) is left out, and the log says how many.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..layout import DatasetError, read_intrinsics
from ..poses import check_rigid
from ..specs import RAW_DEPTH_PNG_SCALES
from .common import Recording, SourceOptions, files_reader, read_depth_png

FRAME = re.compile(r"frame-(\d+)\.color\.(?:png|jpg)", re.IGNORECASE)
INTRINSICS_FILE = "camera-intrinsics.txt"
# The calibration 7-Scenes publishes for every sequence (640x480).
SEVENSCENES_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
SEVENSCENES_SIZE = (480, 640)
NO_READING = 65535  # the Kinect's "invalid" depth value in 7-Scenes, besides 0


def is_sevenscenes(folder: Path) -> bool:
    """Whether ``folder`` holds 7-Scenes frames (a colour frame with its pose file)."""
    for p in folder.glob("frame-*.color.*"):
        m = FRAME.fullmatch(p.name)
        if m and (folder / f"frame-{m.group(1)}.pose.txt").is_file():
            return True
    return False


def _frames(source: Path) -> list[tuple[str, Path]]:
    """(number as written, colour path) sorted by number."""
    found = []
    for p in source.iterdir():
        m = FRAME.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), m.group(1), p))
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        dup = next(n for n in numbers if numbers.count(n) > 1)
        raise DatasetError(f"{source}: frame {dup} has both a .png and a .jpg colour image")
    return [(digits, p) for _, digits, p in sorted(found)]


def read_pose(path: Path) -> np.ndarray:
    """A 4x4 camera-to-world pose file; NaN-filled when its values are not finite."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing (every 7-Scenes frame has its pose)")
    try:
        P = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DatasetError(f"{path}: cannot parse a 4x4 pose: {e}") from None
    if P.shape != (4, 4):
        raise DatasetError(f"{path}: expected a 4x4 pose, got shape {P.shape}")
    if not np.isfinite(P).all():
        return np.full((4, 4), np.nan)
    return check_rigid(P[None], path)[0]


def read_depth_mm(path: Path, scale: float, size) -> np.ndarray:
    """Depth PNG -> metres, with 7-Scenes' 65535 'no reading' set to 0 like the other zeros."""
    raw = read_depth_png(path, 1.0, size)
    raw[raw == NO_READING] = 0
    return raw / np.float32(scale)


def open_sevenscenes(source: Path, opts: SourceOptions) -> Recording:
    if not source.is_dir():
        raise DatasetError(f"{source}: not a folder (7-Scenes: frame-NNNNNN.color.png ...)")
    frames = _frames(source)
    if not frames:
        raise DatasetError(f"{source}: no frame-NNNNNN.color.png or .jpg (7-Scenes layout)")
    colors = [p for _, p in frames]
    depths = [source / f"frame-{n}.depth.png" for n, _ in frames]
    notes = []
    keep = np.ones(len(frames), dtype=bool)
    poses = None
    if opts.poses:
        poses = np.stack([read_pose(source / f"frame-{n}.pose.txt") for n, _ in frames])
        lost = ~np.isfinite(poses).all(axis=(1, 2))
        if lost.all():
            raise DatasetError(f"{source}: no frame has a finite pose; --no-poses imports them")
        if lost.any():
            notes.append(
                f"{int(lost.sum())} frames with a non-finite pose (lost tracking) are left out "
                "(--no-poses keeps them)"
            )
        keep &= ~lost
        notes.append("poses: frame-N.pose.txt (camera-to-world)")
    missing = [d for d in depths if not d.is_file()]
    if missing and opts.split != "train":
        raise DatasetError(f"{missing[0]}: missing (the {opts.split} split writes GT depth)")
    has_depth = not missing
    if missing:
        notes.append(f"{len(missing)} frames have no depth PNG: no GT depth written")
    idx = np.flatnonzero(keep)
    colors, depths = [colors[i] for i in idx], [depths[i] for i in idx]
    if poses is not None:
        poses = poses[idx]
    scale = opts.depth_scale or RAW_DEPTH_PNG_SCALES["7scenes"]
    reader = None
    if has_depth:
        notes.append(f"depth: PNG value / {scale:g} = metres (0 and {NO_READING} = no reading)")
        reader = lambda i, size: read_depth_mm(depths[i], scale, size)  # noqa: E731
    rec = Recording(
        "7scenes",
        source,
        len(colors),
        files_reader(colors, reader),
        poses=poses,
        has_depth=has_depth,
        notes=notes,
    )
    for folder in (source, source.parent):
        if (folder / INTRINSICS_FILE).is_file():
            rec.K = read_intrinsics(folder / INTRINSICS_FILE)
            rec.K_from = str(folder / INTRINSICS_FILE)
            break
    else:
        rec.K = SEVENSCENES_K.copy()
        rec.K_from = "7-Scenes published calibration"
        rec.K_size = SEVENSCENES_SIZE  # a file's K is taken for the frames beside it
    return rec
