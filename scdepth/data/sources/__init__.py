"""Importers of raw recordings, one small module per format, and the one writer they share.

- common.py  Recording (what an importer returns), image / depth / calib readers
- video.py   a video file, or a folder of images (+ intrinsics.txt or cam.txt)
- tum.py     TUM RGB-D layout (Bonn, RealSense recordings in the same layout)
- bonn.py    Bonn RGB-D Dynamic's camera and marker-to-camera transforms
- kitti.py   KITTI odometry sequences and KITTI raw drives (velodyne GT depth)
- sevenscenes.py  Microsoft 7-Scenes sequences (frame-N.color/depth/pose)
- writer.py  undistort, resize, drop static frames, write the scene atomically
"""

from __future__ import annotations

from pathlib import Path

from ..layout import IMAGE_EXTS, DatasetError, list_files
from .common import Recording, SourceOptions
from .kitti import is_odometry_sequence, open_odometry, open_raw
from .sevenscenes import is_sevenscenes, open_sevenscenes
from .tum import ASSOCIATION_FILES, open_tum
from .video import open_folder, open_video

OPENERS = {
    "video": open_video,
    "folder": open_folder,
    "tum": open_tum,
    "kitti-odometry": open_odometry,
    "kitti-raw": open_raw,
    "7scenes": open_sevenscenes,
}
FORMATS = ("auto", *OPENERS)


def detect(source: Path) -> tuple[str, str]:
    """(format, why) from what SOURCE holds; an error says what was looked for."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() in IMAGE_EXTS:
            raise DatasetError(f"{source}: a single image; give the folder of the frames")
        return "video", "a file"
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such video file or folder")
    if (source / "rgb.txt").is_file() and (source / "depth.txt").is_file():
        return "tum", "rgb.txt and depth.txt"
    for name in ASSOCIATION_FILES:
        if (source / name).is_file():
            return "tum", name
    if (source / "calib_cam_to_cam.txt").is_file():
        return "kitti-raw", "calib_cam_to_cam.txt (a date folder)"
    if (source / "image_02" / "data").is_dir():
        if (source.parent / "calib_cam_to_cam.txt").is_file():
            return "kitti-raw", "image_02/data, calib_cam_to_cam.txt in the parent"
    seqs = source / "sequences"
    if seqs.is_dir() and any(is_odometry_sequence(d) for d in seqs.iterdir()):
        return "kitti-odometry", "sequences/NN/image_N with calib.txt"
    if is_odometry_sequence(source):
        return "kitti-odometry", "image_N folders with calib.txt"
    if is_sevenscenes(source):
        return "7scenes", "frame-N.color.* with frame-N.pose.txt"
    images = list_files(source, IMAGE_EXTS)
    if images:
        return "folder", f"{len(images)} images"
    raise DatasetError(
        f"{source}: matches no format: looked for rgb.txt + depth.txt or associations.txt "
        "(tum), sequences/NN/image_N or image_N + calib.txt (kitti-odometry), "
        "calib_cam_to_cam.txt or image_02/data (kitti-raw), frame-N.color.* + frame-N.pose.txt "
        "(7scenes), .jpg/.png images (folder); "
        "choose one with --format"
    )


def open_source(source, format: str = "auto", opts: SourceOptions | None = None):
    """(Recording, log line saying which format and why)."""
    source = Path(source)
    if format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "auto":
        format, why = detect(source)
        said = f"format: {format} (auto: {why})"
    else:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such video file or folder")
        said = f"format: {format}"
    return OPENERS[format](source, opts or SourceOptions()), said


__all__ = ["FORMATS", "Recording", "SourceOptions", "detect", "open_source"]
