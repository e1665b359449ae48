"""Inference (scdepth-infer): depth maps at the source's resolution for a folder of images
or a video.

Each frame is resized to fit the network input (H, W) with its aspect ratio kept, padded by
reflection to (H, W) and run through the DepthNet; the padding is cut off the prediction,
which is resized (bilinear) to the frame's own resolution. Depth is in the network's unit:
a self-supervised model's depth is right up to one unknown scale (about constant over a
video), so median-scale it against GT (as scdepth-eval does) before reading it as metres.

With intrinsics, --ply writes a coloured point cloud per frame and --fuse one cloud of the
whole video placed by the PoseNet's poses (scdepth/clouds.py says how, and in what unit).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint, clouds
from .data import transforms as T
from .data.layout import IMAGE_EXTS, list_files
from .data.sources.common import SourceOptions
from .data.sources.video import open_folder, open_video
from .viz import depth_to_bgr

FOLDER_FPS = 10.0  # frame rate of a video made from a folder of images
MAX_VIDEO_WIDTH = 3840  # side-by-side frames wider than this (4K UHD) are downscaled


def check_size(size) -> tuple[int, int]:
    """The network input (H, W): positive multiples of 32 (the encoder's stride)."""
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"--size must be H W, positive multiples of 32, got {h} {w}")
    return h, w


@dataclass(frozen=True)
class Fit:
    """A frame of `frame` (h, w) inside the network input `net` (H, W): resized to `inner`
    (aspect kept) and padded by `pad` (top, bottom, left, right) pixels."""

    frame: tuple[int, int]
    net: tuple[int, int]
    inner: tuple[int, int]
    pad: tuple[int, int, int, int]

    @classmethod
    def of(cls, frame, net) -> Fit:
        (h, w), (H, W) = frame, net
        s = min(H / h, W / w)
        ih, iw = min(H, max(1, round(h * s))), min(W, max(1, round(w * s)))
        top, left = (H - ih) // 2, (W - iw) // 2
        return cls(tuple(frame), tuple(net), (ih, iw), (top, H - ih - top, left, W - iw - left))

    def describe(self) -> str:
        (h, w), (H, W), (ih, iw) = self.frame, self.net, self.inner
        rows, cols = self.pad[0] + self.pad[1], self.pad[2] + self.pad[3]
        padded = f"padded {cols} columns" if cols else f"padded {rows} rows"
        return (
            f"input {w}x{h} -> network {W}x{H} (resized to {iw}x{ih}, {padded}); "
            f"depth written at {w}x{h} (sizes W x H)"
        )

    def resized(self, rgb) -> np.ndarray:
        """uint8 RGB [h, w, 3] -> the frame resized to `inner`, before padding."""
        return T.apply(rgb, self.inner, T.Augmentation())

    def to_input(self, rgb) -> torch.Tensor:
        """uint8 RGB [h, w, 3] -> normalised [3, H, W]."""
        img = cv2.copyMakeBorder(self.resized(rgb), *self.pad, cv2.BORDER_REFLECT_101)
        return T.to_tensor(img)

    def crop(self, depth) -> np.ndarray:
        """Network depth [H, W] -> its `inner` part [ih, iw] (padding cut)."""
        top, _, left, _ = self.pad
        return depth[top : top + self.inner[0], left : left + self.inner[1]]

    def to_frame(self, depth) -> np.ndarray:
        """Network depth [H, W] -> depth [h, w] of the frame (padding cut, bilinear)."""
        h, w = self.frame
        inner = np.ascontiguousarray(self.crop(depth))
        return cv2.resize(inner, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass
class Prediction:
    """One frame's result, as every output takes it."""

    name: str
    rgb: np.ndarray  # the frame, uint8 RGB [h, w, 3]
    fit: Fit
    net_depth: np.ndarray  # the network's output [H, W], padding included
    depth: np.ndarray  # at the frame's resolution [h, w]
    colour: np.ndarray  # colour-mapped depth, BGR [h, w, 3]


@dataclass
class Frames:
    """The frames of a folder of images (in natural name order) or a video file."""

    frames: object  # iterator of (name, uint8 RGB [h, w, 3])
    count: int | None
    fps: float
    names: list[str] | None = None  # a folder's, known before reading


def open_frames(source) -> Frames:
    """The frames of an image folder (in natural name order, as every folder of frames is
    read) or of a video, as (name, RGB) pairs, through the importers' readers."""
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source}: no such video file or image folder")
    if source.is_dir():
        rec, names = open_folder(source, SourceOptions()), list_files(source, IMAGE_EXTS)
        names = [p.stem for p in names]
    else:
        rec, names = open_video(source, SourceOptions()), None
    return Frames(_rgb_frames(rec, names), rec.count, rec.fps or FOLDER_FPS, names)


def _rgb_frames(rec, names):
    n = 0
    for i, bgr, _ in rec.read(range(rec.count if names else sys.maxsize)):
        yield (names[i] if names else f"{i:06d}"), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    if n == 0:
        raise ValueError(f"{rec.source} has no readable frames")


class StagedFolder:
    """Files written into a hidden temporary folder beside `out`, moved into `out` only when
    every frame is done (`option` names the command-line option in errors)."""

    def __init__(self, out, overwrite, option="--out"):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{option} {self.out} exists and is not a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not overwrite:
            raise ValueError(
                f"{option} {self.out} is not empty; choose another folder or pass --overwrite "
                "(files of the same name are replaced, others kept)"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.part-"))

    def write_bytes(self, name, data: bytes):
        (self.tmp / name).write_bytes(data)

    def finish(self):
        self.out.mkdir(exist_ok=True)
        for f in sorted(self.tmp.iterdir()):
            os.replace(f, self.out / f.name)
        self.tmp.rmdir()

    def discard(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class DepthFolder(StagedFolder):
    """<name>.npy (depth [h, w] float32) and <name>.png (colour-mapped) per frame."""

    def write(self, p: Prediction):
        np.save(self.tmp / f"{p.name}.npy", p.depth)
        cv2.imwrite(str(self.tmp / f"{p.name}.png"), p.colour)


class SideBySide:
    """An mp4 (mp4v) of frame | colour-mapped depth at the first frame's resolution (each half
    downscaled when the pair is wider than MAX_VIDEO_WIDTH, and kept to even sizes, which the
    codec needs); written to a temporary file renamed to `path` at the end."""

    def __init__(self, path, fps, overwrite, log):
        self.path, self.fps, self.log = Path(path), fps, log
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"--video-out {self.path} must be an .mp4 file")
        if self.path.exists() and not overwrite:
            raise ValueError(f"--video-out {self.path} exists; choose another name or --overwrite")
        if not self.path.parent.is_dir():
            raise ValueError(f"--video-out {self.path}: folder {self.path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".mp4"
        )
        os.close(fd)
        self.tmp, self.writer, self.size, self.frames = Path(tmp), None, None, 0

    def _open(self, h, w):
        s = min(1.0, MAX_VIDEO_WIDTH / (2 * w))
        vh, vw = max(2, int(h * s) // 2 * 2), max(2, int(w * s) // 2 * 2)
        self.size = (vh, vw)
        self.writer = cv2.VideoWriter(
            str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (2 * vw, vh)
        )
        if not self.writer.isOpened():
            raise ValueError(f"--video-out {self.path}: OpenCV cannot write an mp4v video here")
        note = "" if (vh, vw) == (h, w) else f", each half resized from {w}x{h}"
        self.log(f"video {self.path}: {2 * vw}x{vh} at {self.fps:g} fps (frame | depth{note})")

    def write(self, p: Prediction):
        if self.writer is None:
            self._open(*p.rgb.shape[:2])
        vh, vw = self.size
        halves = [cv2.cvtColor(p.rgb, cv2.COLOR_RGB2BGR), p.colour]
        if p.rgb.shape[:2] != (vh, vw):
            halves = [cv2.resize(x, (vw, vh), interpolation=cv2.INTER_AREA) for x in halves]
        self.writer.write(np.concatenate(halves, 1))
        self.frames += 1

    def finish(self):
        self.writer.release()
        os.replace(self.tmp, self.path)

    def discard(self):
        if self.writer is not None:
            self.writer.release()
        self.tmp.unlink(missing_ok=True)


def _stderr(msg):
    tqdm.write(msg, file=sys.stderr)


@torch.no_grad()
def run(
    checkpoint_path,
    source,
    out_dir=None,
    *,
    video_out=None,
    points: clouds.PointOptions | None = None,
    size=None,
    fps=None,
    overwrite=False,
    device="cpu",
    progress=True,
    log=_stderr,
):
    """Depth of every frame of `source` into `out_dir`, a side-by-side `video_out` and, with
    `points`, point clouds (clouds.PointOptions: --ply, --fuse); `size` (H, W) is the
    network input (default: the checkpoint's training size). Returns the number of frames."""
    wants_points = points is not None and bool(points.ply_dir or points.fuse)
    if out_dir is None and video_out is None and not wants_points:
        raise ValueError(
            "give --out (depth maps), --video-out (a video), --ply or --fuse (point clouds)"
        )
    net_size = None if size is None else check_size(size)
    src = open_frames(source)
    if fps is not None and not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    points = _resolve_points(points, source, src, overwrite) if wants_points else None
    model, train_size = checkpoint.load_depth_model(checkpoint_path, device)
    sinks = []
    try:
        _open_sinks(sinks, out_dir, video_out, points, fps or src.fps, overwrite, log)
        if points is not None and points.fuse:
            pose_model = checkpoint.load_pose_model(checkpoint_path, device)
            sinks.append(clouds.FusedCloud(points.fuse, overwrite, points, pose_model, device, log))
        n = _predict(model, src, net_size or train_size, sinks, device, progress, log)
        for sink in sinks:
            sink.finish()
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    return n


def _resolve_points(points, source, src, overwrite) -> clouds.PointOptions:
    """The intrinsics (the options' or the folder's) and units (--scale, else GT median
    scaling where the folder has GT for every frame), checked before any network runs."""
    if points.fuse:
        clouds.check_fuse_path(Path(points.fuse), overwrite)
    camera = points.camera or clouds.camera_of(source)
    gt = None if points.scale is not None else clouds.gt_depth_of(source, src.names)
    return replace(points, camera=camera, units=clouds.Units(points.scale, gt))


def _open_sinks(sinks, out_dir, video_out, points, fps, overwrite, log) -> None:
    """Appends the outputs asked for to `sinks` (one at a time, so that a failure leaves the
    ones opened before it in the list, to be discarded)."""
    if out_dir is not None:
        sinks.append(DepthFolder(out_dir, overwrite))
    if video_out is not None:
        sinks.append(SideBySide(video_out, fps, overwrite, log))
    if points is not None and points.ply_dir:
        staged = StagedFolder(points.ply_dir, overwrite, "--ply")
        sinks.append(clouds.PointFolder(staged, points, log))


def _predict(model, src, net_size, sinks, device, progress, log) -> int:
    """Runs the DepthNet on every frame and hands each Prediction to every sink."""
    n, fit = 0, None
    bar = tqdm(
        src.frames, total=src.count, desc="scdepth-infer", unit="frame", disable=not progress
    )
    for name, rgb in bar:
        if fit is None or fit.frame != rgb.shape[:2]:
            fit = Fit.of(rgb.shape[:2], net_size)
            log(fit.describe())
        net_depth = model(fit.to_input(rgb)[None].to(device))[0, 0].float().cpu().numpy()
        depth = fit.to_frame(net_depth)
        prediction = Prediction(name, rgb, fit, net_depth, depth, depth_to_bgr(depth))
        for sink in sinks:
            sink.write(prediction)
        n += 1
    return n
