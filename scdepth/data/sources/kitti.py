"""KITTI odometry and KITTI raw.

Odometry (SOURCE is the dataset folder, with ``--sequence NN`` when it has several, or one
``sequences/NN`` folder)::

    sequences/NN/image_2/*.png   colour (preferred); image_0 grayscale, replicated to 3 channels
    sequences/NN/calib.txt       rows P0..P3: the 3x4 rectified projections; cam.txt = P[:, :3]
    sequences/NN/times.txt       optional, one timestamp a frame
    poses/NN.txt                 optional, camera 0 to world per frame (moved to the used camera)

Raw (SOURCE is a date folder, with ``--sequence DRIVE`` when it has several, or a drive)::

    DATE/calib_cam_to_cam.txt    R_rect_00, P_rect_02 (cam.txt = P_rect_02[:, :3])
    DATE/calib_velo_to_cam.txt   R, T: velodyne -> camera 0
    DATE/DRIVE/image_02/data/*.png, image_02/timestamps.txt (optional)
    DATE/DRIVE/velodyne_points/data/*.bin   float32 x y z reflectance, for GT depth

GT depth of raw drives (``--split val|test``) is the velodyne scan projected into camera 2
(Eigen et al.'s protocol): points in front (x > 0), to camera 0 by R|T, rectified by
R_rect_00, projected by P_rect_02, the nearest point kept where several hit one pixel;
depth = z in camera 2. Pixels (``gt_pixels``): "eigen" (default) as the standard Eigen-split
GT every published KITTI number is computed on (monodepth2's ``generate_depth_map``): rounded,
then 1 subtracted, as KITTI's 1-based MATLAB code indexes; "nearest": rounded to the nearest
pixel (pixel centres at integer coordinates).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..layout import DatasetError, list_files
from ..poses import read_poses, read_times
from .common import Recording, SourceOptions, calib_row, files_reader, read_calib

CAMERAS = ("2", "0", "3", "1")  # preference: left colour, then left grayscale
GT_PIXELS = ("eigen", "nearest")  # how a projected velodyne point picks its pixel
PIXEL_NOTES = {
    "eigen": "pixels as the Eigen-split standard (rounded, minus 1; --kitti-gt nearest: "
    "the nearest pixel)",
    "nearest": "the nearest pixel (--kitti-gt nearest; the Eigen-split standard is one pixel "
    "up-left)",
}


def _pick(options: list[Path], wanted: str | None, source: Path, what: str) -> Path:
    names = [p.name for p in options]
    if not options:
        raise DatasetError(f"{source}: no {what} found")
    if wanted is not None:
        if wanted not in names:
            raise DatasetError(f"{source}: no {what} {wanted!r}; it has {', '.join(names)}")
        return options[names.index(wanted)]
    if len(options) > 1:
        raise DatasetError(
            f"{source}: holds {len(options)} {what}s ({', '.join(names)}); choose one "
            "with --sequence"
        )
    return options[0]


def _cameras(seq: Path) -> list[str]:
    return [c for c in CAMERAS if (seq / f"image_{c}").is_dir()]


def is_odometry_sequence(folder: Path) -> bool:
    return bool(_cameras(folder)) and (folder / "calib.txt").is_file()


def open_odometry(source: Path, opts: SourceOptions) -> Recording:
    if (source / "sequences").is_dir():
        seqs = sorted(d for d in (source / "sequences").iterdir() if _cameras(d))
        seq = _pick(seqs, opts.sequence, source / "sequences", "sequence")
        poses_path = source / "poses" / f"{seq.name}.txt"
    elif _cameras(source):
        seq = source
        poses_path = source.parent.parent / "poses" / f"{seq.name}.txt"
    else:
        raise DatasetError(f"{source}: neither sequences/NN/image_N nor image_N folders")
    cam = _cameras(seq)[0]
    images = list_files(seq / f"image_{cam}", (".png", ".jpg", ".jpeg"))
    if not images:
        raise DatasetError(f"{seq / f'image_{cam}'}: no images")
    calib_path = seq / "calib.txt"
    P = calib_row(read_calib(calib_path), f"P{cam}", 12, calib_path, f"image_{cam}").reshape(3, 4)
    K = P[:, :3].copy()
    notes = [f"sequence {seq.name}, camera image_{cam}"]
    if cam in "01":
        notes.append(f"image_{cam} is grayscale: replicated to three channels")
    rec = Recording("kitti-odometry", seq, len(images), files_reader(images), notes=notes)
    rec.K, rec.K_from = K, f"{calib_path} P{cam}"
    if (seq / "times.txt").is_file():
        rec.times = read_times(seq / "times.txt", len(images))
    if opts.poses and poses_path.is_file():
        world_cam0 = read_poses(poses_path, len(images))
        # P_c = K [I | t_c]: camera c sees camera-0 points shifted by t_c = K^-1 P_c[:, 3].
        cam0_cam = np.eye(4)
        cam0_cam[:3, 3] = -np.linalg.solve(K, P[:, 3])
        rec.poses = world_cam0 @ cam0_cam
        notes.append(f"poses: {poses_path} (camera 0, moved to image_{cam}'s camera)")
    return rec


# --- KITTI raw -------------------------------------------------------------------------------


def _drives(date: Path) -> list[Path]:
    return sorted(d for d in date.iterdir() if (d / "image_02" / "data").is_dir())


def read_raw_calib(date: Path) -> dict[str, np.ndarray]:
    """velo_to_cam [4, 4], R_rect [4, 4] (R_rect_00), P_rect [3, 4] (P_rect_02)."""
    cc_path, vc_path = date / "calib_cam_to_cam.txt", date / "calib_velo_to_cam.txt"
    cc, vc = read_calib(cc_path), read_calib(vc_path)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = calib_row(vc, "R", 9, vc_path, "the velodyne").reshape(3, 3)
    velo_to_cam[:3, 3] = calib_row(vc, "T", 3, vc_path, "the velodyne")
    R_rect = np.eye(4)
    R_rect[:3, :3] = calib_row(cc, "R_rect_00", 9, cc_path, "rectification").reshape(3, 3)
    P_rect = calib_row(cc, "P_rect_02", 12, cc_path, "image_02").reshape(3, 4)
    return {"velo_to_cam": velo_to_cam, "R_rect": R_rect, "P_rect": P_rect}


def read_velodyne(path: Path) -> np.ndarray:
    """A KITTI velodyne scan: float32 [N, 4] (x, y, z, reflectance)."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing (the velodyne scan of this frame)")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise DatasetError(f"{path}: {raw.size} floats, not a multiple of 4 (x y z r)")
    return raw.reshape(-1, 4)


def velodyne_depth(points, velo_to_cam, R_rect, P_rect, size, pixels="eigen") -> np.ndarray:
    """Sparse depth float32 [H, W] (metres, 0 = no point) of velodyne points [N, >=3];
    ``pixels`` one of GT_PIXELS."""
    if pixels not in GT_PIXELS:
        raise ValueError(f"--kitti-gt must be one of {', '.join(GT_PIXELS)}, got {pixels!r}")
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    pts = pts[pts[:, 0] > 0]  # in front of the car
    X = np.c_[pts, np.ones(len(pts))].T  # [4, N]
    p = P_rect @ R_rect @ velo_to_cam @ X  # [3, N]; p[2] = z in camera 2
    z = p[2]
    front = z > 0
    u = np.round(p[0, front] / z[front]).astype(np.int64)
    v = np.round(p[1, front] / z[front]).astype(np.int64)
    if pixels == "eigen":  # the published numbers' GT, one pixel up-left of the nearest
        u, v = u - 1, v - 1
    z = z[front]
    h, w = size
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    depth = np.full(h * w, np.inf)
    np.minimum.at(depth, v[inside] * w + u[inside], z[inside])  # nearest point per pixel
    depth[np.isinf(depth)] = 0
    return depth.reshape(h, w).astype(np.float32)


def _raw_times(path: Path, n: int) -> np.ndarray | None:
    """image_02/timestamps.txt ('2011-09-26 13:02:25.594360375') -> seconds since 1970."""
    if not path.is_file():
        return None
    lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    if len(lines) != n:
        raise DatasetError(f"{path}: {len(lines)} timestamps for {n} frames")
    out = []
    for k, s in enumerate(lines, 1):
        try:
            day, _, frac = s.partition(".")
            t = datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            out.append(t.timestamp() + (float("0." + frac) if frac else 0.0))
        except ValueError:
            raise DatasetError(f"{path}: line {k} is not a timestamp: {s!r}") from None
    return np.array(out)


def open_raw(source: Path, opts: SourceOptions) -> Recording:
    if (source / "calib_cam_to_cam.txt").is_file():
        date, drive = source, _pick(_drives(source), opts.sequence, source, "drive")
    elif (source / "image_02" / "data").is_dir():
        date, drive = source.parent, source
    else:
        raise DatasetError(f"{source}: neither a date folder nor a drive with image_02/data")
    calib = read_raw_calib(date)
    images = list_files(drive / "image_02" / "data", (".png", ".jpg", ".jpeg"))
    if not images:
        raise DatasetError(f"{drive / 'image_02' / 'data'}: no images")
    want_depth = opts.split in ("val", "test")
    velo_dir = drive / "velodyne_points" / "data"
    if want_depth and not velo_dir.is_dir():
        raise DatasetError(f"{velo_dir}: missing (GT depth of --split {opts.split})")

    geometry = (calib["velo_to_cam"], calib["R_rect"], calib["P_rect"])

    def depth(i: int, size) -> np.ndarray:
        scan = read_velodyne(velo_dir / f"{images[i].stem}.bin")
        return velodyne_depth(scan, *geometry, size, opts.gt_pixels)

    notes = [f"drive {drive.name}"]
    if want_depth:
        notes.append(f"GT depth: velodyne projected into camera 2, {PIXEL_NOTES[opts.gt_pixels]}")
    return Recording(
        "kitti-raw",
        drive,
        len(images),
        files_reader(images, depth if want_depth else None),
        K=calib["P_rect"][:, :3].copy(),
        K_from=f"{date / 'calib_cam_to_cam.txt'} P_rect_02",
        times=_raw_times(drive / "image_02" / "timestamps.txt", len(images)),
        has_depth=want_depth,
        notes=notes,
    )
