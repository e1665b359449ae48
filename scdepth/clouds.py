"""What scdepth-infer writes for --ply (a coloured point cloud per frame) and --fuse (the
frames of a video in one cloud, placed by the PoseNet's chained poses, voxel-downsampled,
with a top view and the trajectory); the geometry and the files are scdepth/points.py.

A frame's cloud has one point per pixel of the network's prediction (the frame resized into
the network input, padding cut), back-projected with the frame's intrinsics scaled to that
resolution, coloured by the resized frame. Units: metres when a scale is known -- --scale
(metres per network unit) or, for a scene folder whose depth/ holds GT for every frame,
median scaling (each frame's cloud by its own GT / prediction median ratio, the fused cloud
by the median of those ratios) -- else the network's unit, which is right up to one unknown
factor. The PLY header and the log say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import points as P
from . import trajectory as tj
from .data.layout import (
    DatasetError,
    check_intrinsics,
    match_by_stem,
    read_depth,
    read_intrinsics,
)
from .data.prepare import check_intrinsics_options, intrinsics_from_options
from .data.sources.common import intrinsics_file
from .data.transforms import resize_image, scale_intrinsics
from .rectify import predict_pose

GT_EXTS = (".npy", ".npz")  # metres; PNG GT needs its dataset's scale (give --scale)
AUTO_VOXEL = 1 / 100  # default voxel: this share of the first frame's median depth


@dataclass(frozen=True)
class Camera:
    """The frames' intrinsics, as the options give them (data.prepare.intrinsics_from_options:
    K at the frames' resolution, fx, or fov) or a cam.txt / intrinsics.txt; `where` names
    the source."""

    K: np.ndarray | None = None
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    fov: float | None = None
    where: str = ""

    def at(self, size) -> np.ndarray:
        """K for frames of size (h, w)."""
        K, where = intrinsics_from_options(
            size, self.K, self.fov, self.fx, self.fy, self.cx, self.cy
        )
        return check_intrinsics(K, self.where or where)


def camera_of(source, cam=None, fx=None, fy=None, cx=None, cy=None, fov=None) -> Camera:
    """The Camera of the options (one of cam.txt, fx, fov), else of the source folder's
    intrinsics.txt or cam.txt; DatasetError when there is none."""
    if check_intrinsics_options(cam, fov, fx, fy, cx, cy):
        K = None if cam is None else read_intrinsics(Path(cam))
        return Camera(K=K, fx=fx, fy=fy, cx=cx, cy=cy, fov=fov, where=cam or "")
    found = intrinsics_file(Path(source)) if Path(source).is_dir() else None
    if found is None:
        raise DatasetError(
            f"{source}: point clouds need the camera's intrinsics: give --cam cam.txt, --fx "
            "(and --fy/--cx/--cy) or --fov (a folder's intrinsics.txt or cam.txt is read "
            "when it has one)"
        )
    return Camera(K=found[0], where=str(found[1]))


class Units:
    """Network depth -> the clouds' unit: --scale, median scaling against GT depth, or none.
    frame() gives a frame's factor, video() the fused cloud's."""

    def __init__(self, scale=None, gt: dict | None = None):
        if scale is not None and not scale > 0:
            raise ValueError(f"--scale must be > 0, got {scale}")
        self.scale, self.gt, self.ratios = scale, gt, {}

    @property
    def metric(self) -> bool:
        return self.scale is not None or self.gt is not None

    def frame(self, name: str, depth: np.ndarray) -> float:
        """The factor of frame `name` whose depth (frame resolution) is `depth`."""
        if self.scale is not None or self.gt is None:
            return self.scale or 1.0
        if name not in self.ratios:
            self.ratios[name] = median_ratio(read_depth(self.gt[name], 1.0), depth, name)
        return self.ratios[name]

    def video(self) -> float:
        if self.scale is not None or self.gt is None:
            return self.scale or 1.0
        return float(np.median(list(self.ratios.values())))

    def describe(self, s: float, fused: bool = False) -> str:
        if self.scale is not None:
            return f"metres (depth x {s:.6g}, --scale)"
        if self.gt is not None:
            how = "median over the frames of GT / prediction" if fused else "GT / prediction"
            return f"metres (depth x {s:.6g}, median scaling: {how})"
        return "network units (no scale known: right up to one unknown factor)"


def median_ratio(gt: np.ndarray, depth: np.ndarray, name: str) -> float:
    """median(GT) / median(prediction) over the pixels with GT (prediction resized to GT)."""
    import cv2

    if gt.shape != depth.shape:
        depth = cv2.resize(depth, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise DatasetError(f"frame {name}: its GT depth has no valid pixel")
    return float(np.median(gt[valid]) / np.median(depth[valid]))


def gt_depth_of(source, names: list[str] | None) -> dict | None:
    """{frame name: GT file} when the source folder's depth/ holds a .npy/.npz for every
    frame (a scene of the SC-Depth layout), else None."""
    folder = Path(source) / "depth"
    if names is None or not folder.is_dir():
        return None
    found = match_by_stem([Path(n) for n in names], folder, GT_EXTS)
    return dict(zip(names, found, strict=True)) if all(found) else None


@dataclass
class PointOptions:
    """--ply, --fuse and what they need."""

    ply_dir: str | None = None
    fuse: str | None = None
    camera: Camera | None = None  # None: the source folder's intrinsics file
    scale: float | None = None  # metres per network unit; None: GT median scaling or none
    units: Units | None = None  # set by infer.run from `scale` and the source
    voxel: float | None = None  # in the fused cloud's unit; None: AUTO_VOXEL
    max_depth: float | None = None  # in the clouds' unit; None: all points


def frame_points(p, K_frame, max_depth=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points [N, 3] in the network's unit, colours [N, 3] uint8, K at the prediction's
    resolution) of Prediction `p`: its network depth without the padding, back-projected."""
    depth = p.fit.crop(p.net_depth).astype(np.float64)
    K = scale_intrinsics(K_frame, p.fit.frame, p.fit.inner)
    xyz, rgb = P.backproject(depth, K), p.fit.resized(p.rgb).reshape(-1, 3)
    z = depth.reshape(-1)
    keep = np.isfinite(z) & (z > 0) & (True if max_depth is None else z <= max_depth)
    return xyz[keep], rgb[keep], K


def header(what: str, units: str, K, size) -> list[str]:
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return [
        f"scdepth-infer {what}",
        f"units {units}",
        "axes OpenCV camera: x right, y down, z forward",
        f"intrinsics fx {fx:.6g} fy {fy:.6g} cx {cx:.6g} cy {cy:.6g} at {size[1]}x{size[0]}",
    ]


class PointFolder:
    """<name>.ply per frame, into a StagedFolder (moved into place when every frame is
    done)."""

    def __init__(self, staged, opts: PointOptions, log):
        self.staged, self.opts, self.log, self.said = staged, opts, log, False

    def write(self, p):
        units = self.opts.units
        s = units.frame(p.name, p.depth)
        limit = None if self.opts.max_depth is None else self.opts.max_depth / s
        xyz, rgb, K = frame_points(p, self.opts.camera.at(p.fit.frame), limit)
        comments = header(f"frame {p.name}, origin its camera", units.describe(s), K, p.fit.inner)
        data = P.ply_bytes(xyz * s, rgb, comments)
        self.staged.write_bytes(f"{p.name}.ply", data)
        if not self.said:
            self.log(f"point clouds: {units.describe(s)}, intrinsics {self.opts.camera.where}")
            self.said = True

    def finish(self):
        self.staged.finish()

    def discard(self):
        self.staged.discard()


class FusedCloud:
    """The video's frames in one voxel-downsampled cloud (FILE.ply) in the first frame's
    camera, placed by the chained relative poses of the checkpoint's PoseNet on consecutive
    frames, with FILE.png (top view and trajectory) and FILE.tum.txt (the trajectory,
    camera-to-world, stamped by frame index)."""

    def __init__(self, path, overwrite, opts: PointOptions, pose_model, device, log):
        self.path, self.opts, self.log, self.device = Path(path), opts, log, device
        check_fuse_path(self.path, overwrite)
        self.net, self.size, self.rectify_net = pose_model
        self.grid, self.prev, self.poses = None, None, [np.eye(4)]
        self.K, self.inner = None, None  # the last frame's, for the PLY header

    def write(self, p):
        K = self.opts.camera.at(p.fit.frame)
        x = resize_image(p.rgb, self.size)[None].to(self.device)
        if self.prev is not None:
            self.poses.append(self.poses[-1] @ self._step(x, K, p.fit.frame))
        self.prev = x
        s = self.opts.units.frame(p.name, p.depth)
        limit = None if self.opts.max_depth is None else self.opts.max_depth / s
        xyz, rgb, self.K = frame_points(p, K, limit)
        if self.grid is None:
            self.grid = P.VoxelGrid(self._voxel(xyz, s))
        self.grid.add(P.transform(xyz, self.poses[-1]), rgb)
        self.inner = p.fit.inner

    def _step(self, x, K, frame) -> np.ndarray:
        """T_prev<-this (4x4) from pose_net(this frame, previous frame)."""
        Ks = None
        if self.rectify_net is not None:
            Ks = torch.from_numpy(scale_intrinsics(K, frame, self.size)).float()[None]
            Ks = Ks.to(self.device)
        T = predict_pose(self.net, x, self.prev, Ks, self.rectify_net)[0].double().cpu()
        return np.vstack([T.numpy(), [0, 0, 0, 1]])

    def _voxel(self, xyz, s) -> float:
        """The voxel side in network units: --voxel over the first frame's factor, else
        AUTO_VOXEL of the first frame's median depth."""
        if self.opts.voxel is not None:
            return self.opts.voxel / s
        z = xyz[:, 2]
        return AUTO_VOXEL * float(np.median(z)) if len(z) else 1.0

    def finish(self):
        if self.grid is None:
            raise ValueError("--fuse: no frame to fuse")
        s, units = self.opts.units.video(), self.opts.units
        xyz, rgb = self.grid.points()
        poses = np.array(self.poses)
        poses[:, :3, 3] *= s
        what = f"fused {len(poses)} frames, voxel {self.grid.size * s:.4g}, origin frame 0's camera"
        data = P.ply_bytes(xyz * s, rgb, header(what, units.describe(s, True), self.K, self.inner))
        _replace(self.path, data)
        unit = "m" if units.metric else "network units"
        title = f"{self.path.name}: {len(xyz)} points, {len(poses)} frames"
        P.plot_top_view(self.path.with_suffix(".png"), xyz * s, rgb, poses, unit, title)
        tj.write_tum(self.path.with_suffix(".tum.txt"), np.arange(len(poses)), poses)
        self.log(
            f"fused cloud {self.path}: {len(xyz)} points from {len(poses)} frames, voxel "
            f"{self.grid.size * s:.4g}, unit {units.describe(s, True)}; top view "
            f"{self.path.with_suffix('.png')}"
        )

    def discard(self):
        pass  # nothing is written before finish()


def check_fuse_path(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".ply":
        raise ValueError(f"--fuse {path} must be a .ply file")
    if not path.parent.is_dir():
        raise ValueError(f"--fuse {path}: folder {path.parent} does not exist")
    taken = [p for p in (path, path.with_suffix(".png")) if p.exists()]
    if taken and not overwrite:
        raise ValueError(f"--fuse: {taken[0]} exists; choose another name or --overwrite")


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
