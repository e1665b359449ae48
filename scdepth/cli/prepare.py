"""scdepth-prepare: a raw recording (video, image folder, TUM / Bonn, KITTI odometry or raw,
7-Scenes) -> one scene of the SC-Depth layout; the work is scdepth/data/prepare.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import prepare
from ..data.layout import read_intrinsics
from ..data.sources import FORMATS
from ..data.sources.kitti import GT_PIXELS
from .common import add_intrinsics, add_progress, add_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scdepth-prepare", description=prepare.__doc__.split("\n")[0])
    ap.add_argument("source", help="video file, image folder, TUM folder, KITTI folder")
    ap.add_argument("--root", required=True, help="dataset root (ROOT/training, ROOT/testing)")
    ap.add_argument("--scene", required=True, help="scene folder name")
    ap.add_argument("--format", choices=FORMATS, default="auto")
    ap.add_argument("--split", choices=prepare.SPLITS, default="train")
    ap.add_argument("--frames", metavar="A:B[:STEP]", help="slice of the source's frames")
    ap.add_argument("--stride", type=int, default=1, help="use every N-th selected frame")
    add_intrinsics(ap, "source resolution")
    ap.add_argument(
        "--dist", type=float, nargs="+", metavar="K", help="distortion k1 k2 p1 p2 [k3]"
    )
    ap.add_argument(
        "--undistort-depth",
        action="store_true",
        help="remap GT depth with the lens distortion like the frames (default: depth "
        "registered to the colour image, as TUM's and Bonn's, is not undistorted, as TUM "
        "advises; it is only moved to the undistorted camera)",
    )
    add_size(ap, "output size (default: the source's)")
    ap.add_argument(
        "--static-threshold",
        type=float,
        help="drop frames whose mean |grey difference| to the last kept is below "
        f"(default {prepare.STATIC_THRESHOLD:g} for train, 0 for val/test)",
    )
    ap.add_argument("--depth-scale", type=float, help="depth PNG value / this = metres")
    ap.add_argument(
        "--max-dt",
        type=float,
        default=0.02,
        help="TUM: RGB and depth are paired when less than this apart (s), closest pairs "
        "first, as TUM's associate.py",
    )
    ap.add_argument("--associations", help="TUM: association file (t rgb t depth a line)")
    ap.add_argument("--sequence", "--drive", help="KITTI: sequence NN or drive folder name")
    ap.add_argument("--no-poses", action="store_true", help="do not write GT poses")
    ap.add_argument(
        "--kitti-gt",
        choices=GT_PIXELS,
        default="eigen",
        help="KITTI raw GT depth pixels: 'eigen' (default) as the Eigen-split GT of published "
        "results (monodepth2's generate_depth_map: projected velodyne points rounded, then 1 "
        "subtracted, as KITTI's 1-based MATLAB code); 'nearest': the nearest pixel",
    )
    ap.add_argument("--ext", choices=("jpg", "png"), default="jpg")
    ap.add_argument("--overwrite", action="store_true")
    add_progress(ap)
    a = ap.parse_args(argv)
    try:
        prepare.prepare(
            a.source,
            a.root,
            a.scene,
            format=a.format,
            split=a.split,
            frames=a.frames,
            stride=a.stride,
            image_size=a.size,
            K=read_intrinsics(Path(a.cam)) if a.cam else None,
            fov=a.fov,
            fx=a.fx,
            fy=a.fy,
            cx=a.cx,
            cy=a.cy,
            dist=a.dist,
            depth_scale=a.depth_scale,
            max_dt=a.max_dt,
            associations=a.associations,
            sequence=a.sequence,
            poses=not a.no_poses,
            kitti_gt=a.kitti_gt,
            undistort_depth=a.undistort_depth,
            static_threshold=a.static_threshold,
            ext=a.ext,
            overwrite=a.overwrite,
            progress=not a.no_progress,
        )
    except (ValueError, OSError) as e:
        ap.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
