"""scdepth-infer: depth maps and a side-by-side video from a checkpoint, for a folder of
images or a video; the work is scdepth/infer.py."""

from __future__ import annotations

import argparse

from .. import checkpoint, infer
from .common import add_device, add_progress, resolve_device


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
    ap.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="network input, multiples of 32 (default: the checkpoint's training size); "
        "frames are resized into it with their aspect ratio kept and padded",
    )
    ap.add_argument(
        "--fps",
        type=float,
        help=f"video frame rate (default: the source's, or {infer.FOLDER_FPS:g})",
    )
    ap.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out, replace --video-out"
    )
    add_device(ap)
    add_progress(ap)
    a = ap.parse_args(argv)
    try:
        n = infer.run(
            a.checkpoint,
            a.source,
            a.out,
            video_out=a.video_out,
            size=a.size,
            fps=a.fps,
            overwrite=a.overwrite,
            device=resolve_device(a.device),
            progress=not a.no_progress,
        )
    except (ValueError, checkpoint.CheckpointError) as e:
        ap.error(str(e))
    wrote = [f"depth maps to {a.out}"] if a.out else []
    wrote += [f"a video to {a.video_out}"] if a.video_out else []
    print(f"wrote {n} frames: {' and '.join(wrote)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
