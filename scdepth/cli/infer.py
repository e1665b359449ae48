"""scdepth-infer: depth maps and a side-by-side video from a checkpoint, for a folder of
images or a video; the work is scdepth/infer.py."""

from __future__ import annotations

import argparse

from .. import checkpoint, clouds, infer
from .common import (
    add_device,
    add_intrinsics,
    add_progress,
    add_size,
    checkpoint_refusal,
    resolve_device,
)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="scdepth-infer",
        description=infer.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("checkpoint", help="a checkpoint written by scdepth-train (best.pt, last.pt)")
    ap.add_argument("source", help="a folder of images or a video file")
    ap.add_argument(
        "--out",
        help="folder for <name>.npy (float32 depth at the frame's resolution, network unit: "
        "right up to scale) and <name>.png (colour-mapped inverse depth)",
    )
    ap.add_argument(
        "--video-out", metavar="FILE.mp4", help="a side-by-side video: frame | colour-mapped depth"
    )
    add_size(
        ap,
        "network input, multiples of 32 (default: the checkpoint's training size); frames "
        "are resized into it with their aspect ratio kept and padded",
    )
    ap.add_argument(
        "--fps",
        type=float,
        help=f"video frame rate (default: the source's, or {infer.FOLDER_FPS:g})",
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out or --ply, replace --video-out and --fuse",
    )
    add_point_options(ap)
    add_device(ap)
    add_progress(ap)
    a = ap.parse_args(argv)
    try:
        n = infer.run(
            a.checkpoint,
            a.source,
            a.out,
            video_out=a.video_out,
            points=point_options(a),
            size=a.size,
            fps=a.fps,
            overwrite=a.overwrite,
            device=resolve_device(a.device),
            progress=not a.no_progress,
        )
    except (ValueError, checkpoint.CheckpointError) as e:
        ap.error(checkpoint_refusal(e, a.checkpoint))
    wrote = [f"depth maps to {a.out}"] if a.out else []
    wrote += [f"a video to {a.video_out}"] if a.video_out else []
    wrote += [f"point clouds to {a.ply}"] if a.ply else []
    wrote += [f"a fused cloud to {a.fuse}"] if a.fuse else []
    print(f"wrote {n} frames: {' and '.join(wrote)}")
    return 0


def add_point_options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("point clouds (scdepth/clouds.py)")
    g.add_argument("--ply", metavar="DIR", help="a coloured point cloud <name>.ply per frame")
    g.add_argument(
        "--fuse",
        metavar="FILE.ply",
        help="the frames in one voxel-downsampled cloud placed by the PoseNet's chained poses, "
        "with FILE.png (top view, trajectory) and FILE.tum.txt (trajectory)",
    )
    add_intrinsics(g, "frames' resolution")
    g.add_argument(
        "--scale",
        type=float,
        help="metres per network unit (default: median scaling against the folder's depth/ GT "
        "when every frame has one, else the network's unit)",
    )
    g.add_argument(
        "--voxel",
        type=float,
        help="--fuse voxel side in the cloud's unit (default: "
        f"{clouds.AUTO_VOXEL:g} of the first frame's median depth)",
    )
    g.add_argument("--max-depth", type=float, help="leave out points farther than this")


def point_options(a) -> clouds.PointOptions | None:
    if not (a.ply or a.fuse):
        return None
    camera = None
    if any(v is not None for v in (a.cam, a.fx, a.fy, a.cx, a.cy, a.fov)):
        camera = clouds.camera_of(a.source, a.cam, a.fx, a.fy, a.cx, a.cy, a.fov)
    for name in ("voxel", "max_depth"):
        if getattr(a, name) is not None and not getattr(a, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(a, name)}")
    return clouds.PointOptions(a.ply, a.fuse, camera, a.scale, voxel=a.voxel, max_depth=a.max_depth)


if __name__ == "__main__":
    raise SystemExit(main())
