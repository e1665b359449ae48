"""Importing (scdepth-prepare): a raw recording -> one scene of the SC-Depth layout.

Formats (``--format auto`` picks one from what SOURCE holds and says which): a video file, a
folder of images, the TUM RGB-D layout (also Bonn and RealSense recordings laid out the same
way), a KITTI odometry sequence, a KITTI raw drive, a 7-Scenes sequence; see
scdepth/data/sources/.

``--split train|val`` writes ``ROOT/training/<scene>/`` (frames, cam.txt, and where the source
has them depth/*.npy GT in metres, poses.txt, times.txt) and lists the scene in
train.txt / val.txt; ``--split test`` writes ``ROOT/testing/color`` and, where the source has
GT, ``ROOT/testing/depth`` (files ``<scene>_NNNNNN``). Frames are resized to ``--size`` with
cam.txt scaled to match, and named by their index in the source. For train, near-static
frames are dropped: a frame is kept when the mean absolute grey-level difference to the last
kept frame reaches ``static_threshold`` (taken in float32: in uint8, 3 - 5 wraps around to
254 and a still camera looks like it moved); poses and times follow the kept frames. An
import that fails leaves ROOT as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import DatasetError, check_intrinsics
from .sources import SourceOptions, open_source
from .sources.kitti import GT_PIXELS
from .sources.writer import destination_taken, frame_difference, write_scene

__all__ = ["frame_difference", "intrinsics_from_fov", "parse_frames", "prepare"]

SPLITS = ("train", "val", "test")
STATIC_THRESHOLD = 1.0  # default for --split train; val/test keep every selected frame
DEPTH_NOTES = {
    False: "GT depth: not undistorted (taken as registered to the pinhole colour camera, as "
    "TUM advises for its pre-registered depth), only moved to the undistorted camera; "
    "--undistort-depth remaps it with the lens distortion",
    True: "GT depth: remapped with the lens distortion like the frames (--undistort-depth)",
}


def intrinsics_from_fov(fov_deg: float, size) -> np.ndarray:
    """Pinhole K with square pixels and the principal point at the centre; fov across W."""
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(
            f"--fov must be a horizontal field of view in degrees in (1, 179), got {fov_deg}"
        )
    h, w = size
    f = (w / 2) / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


def check_intrinsics_options(K=None, fov=None, fx=None, fy=None, cx=None, cy=None) -> bool:
    """Whether the command's options give the intrinsics (--cam, --fx, --fov); ValueError
    when they give them more than one way, or --fy/--cx/--cy without --fx."""
    given = [n for n, v in (("--cam", K), ("--fx", fx), ("--fov", fov)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give the intrinsics one way (--cam, --fx or --fov), got {given}")
    if fx is None and any(v is not None for v in (fy, cx, cy)):
        raise ValueError("--fy/--cx/--cy need --fx")
    return bool(given)


def intrinsics_from_options(size, K=None, fov=None, fx=None, fy=None, cx=None, cy=None):
    """(K, where) for frames of size (h, w) from the one option given (check_intrinsics_options):
    K as it is, fx (fy default fx, the principal point default the image centre), or fov."""
    h, w = size
    if K is not None:
        return np.asarray(K, np.float64), "--cam"
    if fx is not None:
        u0 = (w - 1) / 2 if cx is None else cx
        v0 = (h - 1) / 2 if cy is None else cy
        K = [[fx, 0, u0], [0, fx if fy is None else fy, v0], [0, 0, 1]]
        return np.asarray(K, np.float64), "--fx/--fy/--cx/--cy"
    return intrinsics_from_fov(fov, size), f"--fov {fov:g}"


def parse_frames(frames) -> slice:
    """``"A:B[:STEP]"`` (any part may be empty), a slice, or None -> slice."""
    if frames is None or isinstance(frames, slice):
        s = frames or slice(None)
    else:
        parts = str(frames).split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--frames must be A:B or A:B:STEP, got {frames!r}")
        try:
            s = slice(*(int(p) if p.strip() else None for p in parts))
        except ValueError:
            raise ValueError(f"--frames must hold integers, got {frames!r}") from None
    if s.step is not None and s.step < 1:
        raise ValueError(f"--frames STEP must be >= 1, got {s.step}")
    return s


def _selection(frames: slice, stride: int, count: int | None) -> range:
    """Source indices to import: frames[A:B:STEP], then every stride-th of those."""
    step = (frames.step or 1) * stride
    if count is not None:
        start, stop, _ = frames.indices(count)
        return range(start, stop, step)
    if any(v is not None and v < 0 for v in (frames.start, frames.stop)):
        raise ValueError("--frames: negative indices need a source whose length is known")
    return range(frames.start or 0, frames.stop if frames.stop is not None else 2**62, step)


def _check_options(scene, split, stride, static_threshold, ext, image_size, depth_scale, dist):
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not scene or "/" in scene or "\\" in scene or scene.startswith("."):
        raise ValueError(f"--scene must be a plain folder name, got {scene!r}")
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if static_threshold is not None and static_threshold < 0:
        raise ValueError(f"--static-threshold must be >= 0, got {static_threshold}")
    if ext not in ("jpg", "png"):
        raise ValueError(f"--ext must be jpg or png, got {ext!r}")
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(f"--size must be two positive integers H W, got {image_size}")
    if depth_scale is not None and not depth_scale > 0:
        raise ValueError(f"--depth-scale must be > 0, got {depth_scale}")
    if dist is not None and len(dist) not in (4, 5, 8):
        raise ValueError(f"--dist takes k1 k2 p1 p2 [k3] (4, 5 or 8 numbers), got {len(dist)}")


def _camera(rec, K, fov, fx, fy, cx, cy, dist, undistort_depth, log):
    """camera(source size) -> (K, dist) for the writer; the options win over the source."""
    given = check_intrinsics_options(K, fov, fx, fy, cx, cy)
    if not given and rec.K is None:
        raise DatasetError(
            f"{rec.source}: the {rec.format} source holds no intrinsics; give --cam cam.txt, "
            "--fx (and --fy/--cx/--cy) or --fov"
        )
    dist = None if dist is None else np.asarray(dist, dtype=np.float64)

    def camera(size):
        h, w = size
        if given:
            out, where = intrinsics_from_options(size, K, fov, fx, fy, cx, cy)
            d = dist
        else:
            if rec.K_size is not None and tuple(rec.K_size) != tuple(size):
                raise DatasetError(
                    f"{rec.source}: {rec.K_from} is for {rec.K_size[1]}x{rec.K_size[0]} "
                    f"images, these are {w}x{h}; give --cam, --fx or --fov"
                )
            out, where, d = rec.K, rec.K_from, dist if dist is not None else rec.dist
        out = check_intrinsics(out, where)
        if log:
            log(f"intrinsics: {where}: fx {out[0, 0]:.2f} fy {out[1, 1]:.2f} "
                f"cx {out[0, 2]:.2f} cy {out[1, 2]:.2f} at {w}x{h}")  # fmt: skip
            if d is not None and np.any(d):
                log(f"undistorting (k1 k2 p1 p2 k3 = {' '.join(f'{v:g}' for v in d)})")
                if rec.has_depth:
                    log(DEPTH_NOTES[undistort_depth])
        return out, d

    return camera


def prepare(
    source,
    root,
    scene: str,
    *,
    format: str = "auto",
    split: str = "train",
    frames=None,
    stride: int = 1,
    image_size=None,
    K=None,
    fov: float | None = None,
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
    dist=None,
    depth_scale: float | None = None,
    max_dt: float = 0.02,
    associations=None,
    sequence: str | None = None,
    poses: bool = True,
    kitti_gt: str = "eigen",
    undistort_depth: bool = False,
    static_threshold: float | None = None,
    ext: str = "jpg",
    overwrite: bool = False,
    progress: bool = True,
    log=print,
) -> Path:
    """Import one recording into ROOT; returns the scene folder (``ROOT/testing`` for test).

    frames: "A:B[:STEP]" or a slice of the source's frame indices; stride: then every N-th.
    image_size: output (H, W), default the source size. Intrinsics at the source size, one
    of K (3x3), fx (fy, cx, cy default fx and the centre) or fov (degrees across W); without
    them the source's own (calib, intrinsics.txt, TUM's or Bonn's published calibration).
    dist: OpenCV k1 k2 p1 p2 [k3]. static_threshold: None = 1.0 for train, 0 (keep all)
    otherwise. kitti_gt: the pixels of KITTI raw velodyne GT, "eigen" (the Eigen-split
    standard: rounded, then 1 subtracted) or "nearest". undistort_depth: remap GT depth with
    the lens distortion like the frames (default: it is taken as registered to the pinhole
    colour camera and only moved to the undistorted camera).
    log: a print-like callable for what was chosen, or None.
    """
    _check_options(scene, split, stride, static_threshold, ext, image_size, depth_scale, dist)
    if max_dt <= 0:
        raise ValueError(f"--max-dt must be > 0 seconds, got {max_dt}")
    if kitti_gt not in GT_PIXELS:
        raise ValueError(f"--kitti-gt must be one of {', '.join(GT_PIXELS)}, got {kitti_gt!r}")
    frames = parse_frames(frames)
    root = Path(root)
    taken = destination_taken(root, scene, split)
    if taken is not None and not overwrite:
        raise FileExistsError(
            f"{taken}: not empty, scene {scene!r} exists; pass --overwrite to replace it"
        )
    opts = SourceOptions(
        split=split,
        sequence=sequence,
        depth_scale=depth_scale,
        max_dt=max_dt,
        associations=None if associations is None else Path(associations),
        poses=poses,
        gt_pixels=kitti_gt,
    )
    rec, said = open_source(source, format, opts)
    if log:
        log(said)
        for note in rec.notes:
            log(note)
        if split == "test" and not rec.has_depth:
            log("no GT depth in this source: testing/color only (scdepth-eval leaves it out)")
    camera = _camera(rec, K, fov, fx, fy, cx, cy, dist, undistort_depth, log)
    if static_threshold is None:
        static_threshold = STATIC_THRESHOLD if split == "train" else 0.0
    out, _ = write_scene(
        rec,
        root,
        scene,
        split=split,
        selection=_selection(frames, stride, rec.count),
        camera=camera,
        image_size=image_size,
        static_threshold=static_threshold,
        ext=ext,
        undistort_depth=undistort_depth,
        progress=progress,
        log=log,
    )
    return out
