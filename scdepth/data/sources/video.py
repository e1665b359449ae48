"""A video file (anything OpenCV reads) or a folder of images, in natural order of their
names (digit runs compared as numbers: frame_2 before frame_10, as recorders number frames).

A folder may hold ``intrinsics.txt`` (fx fy cx cy) or ``cam.txt`` (3x3) beside the frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from ..layout import IMAGE_EXTS, DatasetError, list_files
from .common import Recording, SourceOptions, files_reader, intrinsics_file


def open_folder(source: Path, opts: SourceOptions) -> Recording:
    if not source.is_dir():
        raise DatasetError(f"{source}: not a folder of images")
    files = list_files(source, IMAGE_EXTS)
    if not files:
        raise DatasetError(f"{source}: no {', '.join(IMAGE_EXTS)} images")
    rec = Recording("folder", source, len(files), files_reader(files))
    found = intrinsics_file(source)
    if found is not None:
        rec.K, path = found
        rec.K_from = path.name
    return rec


def open_video(source: Path, opts: SourceOptions) -> Recording:
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such video file or image folder")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise DatasetError(f"{source}: OpenCV cannot open it as a video")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None  # may be approximate
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()

    def read(selection: range):
        cap = cv2.VideoCapture(str(source))
        try:
            i = 0
            while i < selection.stop and cap.grab():  # grab without decoding skipped frames
                if i in selection:
                    ok, img = cap.retrieve()
                    if not ok:
                        raise DatasetError(f"{source}: frame {i} cannot be decoded")
                    yield i, img, None
                i += 1
        finally:
            cap.release()

    rec = Recording("video", source, count, read)
    rec.fps = fps if 0 < fps < 1000 else None  # 0 or absurd where the container does not say
    return rec
