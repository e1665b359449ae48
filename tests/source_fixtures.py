"""Tiny raw recordings of each importer's format, written inside tests (tmp_path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = (30, 40)  # (H, W) of the tiny frames


def texture(i: int, size=SIZE) -> np.ndarray:
    """A distinct smooth random BGR image per i (JPEG-safe, far from static)."""
    rng = np.random.default_rng(100 + i)
    small = rng.integers(0, 256, (size[0] // 5 + 1, size[1] // 5 + 1, 3), np.uint8)
    return cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC)


def blob_image(points_px, size, sigma=2.0) -> np.ndarray:
    """BGR uint8 image of Gaussian dots centred at sub-pixel ``points_px`` [(u, v), ...]."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros(size)
    for u, v in points_px:
        img += np.exp(-((x - u) ** 2 + (y - v) ** 2) / (2 * sigma**2))
    return cv2.cvtColor(np.clip(img * 250, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def centroid(img, u, v, r=4) -> tuple[float, float]:
    """Intensity centroid (u, v) of the first channel in a window around (u, v)."""
    g = img if img.ndim == 2 else img[..., 0]
    g = g.astype(np.float64)
    u0, v0 = int(round(u)), int(round(v))
    win = g[v0 - r : v0 + r + 1, u0 - r : u0 + r + 1]
    yy, xx = np.mgrid[v0 - r : v0 + r + 1, u0 - r : u0 + r + 1]
    return (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# --- TUM ------------------------------------------------------------------------------------

T0 = 1305031453.0  # TUM-like epoch timestamps
V = np.array([0.5, -0.2, 0.1])  # m/s of the analytic GT trajectory
W = 0.8  # rad/s about z


def tum_pose(t: float) -> np.ndarray:
    """The analytic camera-to-world pose [4, 4] the fixture's groundtruth.txt samples."""
    T = np.eye(4)
    T[:3, :3] = rot_z(W * (t - T0))
    T[:3, 3] = V * (t - T0)
    return T


def write_tum(
    folder: Path,
    rgb_times,
    depth_times,
    *,
    gt_range=None,
    header="# file: 'rgbd_dataset_test.bag'",
    images=None,
    depths=None,
    size=SIZE,
    missing=(),
) -> Path:
    """rgb/, depth/ (uint16 = 5000 * (1 + 0.1 i) m, or ``depths``), rgb.txt, depth.txt and,
    with gt_range (t_start, t_end), groundtruth.txt sampled at 100 Hz from ``tum_pose``.
    ``missing``: rgb indices listed in rgb.txt but not on disk."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    rgb_lines, depth_lines = ["# color images", header, "# timestamp filename"], ["# depth"]
    for i, t in enumerate(rgb_times):
        name = f"rgb/{t:.6f}.png"
        rgb_lines.append(f"{t:.6f} {name}")
        if i not in missing:
            img = texture(i, size) if images is None else images[i]
            cv2.imwrite(str(folder / name), img)
    for i, t in enumerate(depth_times):
        name = f"depth/{t:.6f}.png"
        depth_lines.append(f"{t:.6f} {name}")
        d = np.full(size, 5000 * (1 + 0.1 * i), np.uint16) if depths is None else depths[i]
        cv2.imwrite(str(folder / name), d)
    (folder / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (folder / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    if gt_range is not None:
        rows = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
        for t in np.round(np.arange(gt_range[0], gt_range[1] + 1e-9, 0.01), 4):
            a = W * (t - T0)  # rotation about z: q = (0, 0, sin a/2, cos a/2)
            x, y, z = V * (t - T0)
            rows.append(
                f"{t:.4f} {x:.9f} {y:.9f} {z:.9f} 0 0 {np.sin(a / 2):.9f} {np.cos(a / 2):.9f}"
            )
        (folder / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return folder


# --- KITTI ----------------------------------------------------------------------------------

P_ROW = "{}: " + " ".join(["{:.12e}"] * 12)


def kitti_P(fx=35.0, cx=19.5, cy=14.5, tx=0.0) -> np.ndarray:
    """A rectified KITTI projection K [I | t] with t = (tx, 0, 0)."""
    K = np.array([[fx, 0, cx], [0, fx, cy], [0, 0, 1]])
    return K @ np.c_[np.eye(3), [tx, 0, 0]]


def kitti_poses(n: int) -> np.ndarray:
    """Camera-0-to-world poses [n, 4, 4]: driving forward (z) while turning about y."""
    out = []
    for i in range(n):
        T = np.eye(4)
        c, s = np.cos(0.1 * i), np.sin(0.1 * i)
        T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        T[:3, 3] = [0.3 * i, 0.0, 1.2 * i]
        out.append(T)
    return np.array(out)


# calib.txt rows P0..P3 as KITTI publishes them for its 2011_09_26 drives (odometry sequence
# 03; the raw drives' P_rect_00..03): grayscale 0 and 1, colour 2 and 3 of one rectified K.
KITTI_CALIB = {
    "0": "7.215377e+02 0 6.095593e+02 0 0 7.215377e+02 1.728540e+02 0 0 0 1 0",
    "1": "7.215377e+02 0 6.095593e+02 -3.875744e+02 0 7.215377e+02 1.728540e+02 0 0 0 1 0",
    "2": "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 "
    "0 0 1 2.745884e-03",
    "3": "7.215377e+02 0 6.095593e+02 -3.395242e+02 0 7.215377e+02 1.728540e+02 2.199936e+00 "
    "0 0 1 2.729905e-03",
}


def kitti_calib_P(c: str) -> np.ndarray:
    return np.array(KITTI_CALIB[c].split(), dtype=np.float64).reshape(3, 4)


def write_kitti_odometry(
    root: Path, seq="05", n=5, cameras=("2",), P=None, poses=True, times=True
) -> Path:
    """root/sequences/<seq>/image_<c>/NNNNNN.png, calib.txt (P0..P3, KITTI's unless ``P``),
    times.txt, poses/."""
    folder = root / "sequences" / seq
    P = P or {c: kitti_calib_P(c) for c in "0123"}
    for c in cameras:
        (folder / f"image_{c}").mkdir(parents=True)
        for i in range(n):
            img = texture(i)
            if c in "01":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            cv2.imwrite(str(folder / f"image_{c}" / f"{i:06d}.png"), img)
    (folder / "calib.txt").write_text(
        "".join(P_ROW.format(f"P{c}", *P[c].ravel()) + "\n" for c in sorted(P))
        + "Tr: " + " ".join(["0"] * 12) + "\n"
    )  # fmt: skip
    if times:
        (folder / "times.txt").write_text("".join(f"{0.1 * i:e}\n" for i in range(n)))
    if poses:
        (root / "poses").mkdir(exist_ok=True)
        np.savetxt(root / "poses" / f"{seq}.txt", kitti_poses(n)[:, :3].reshape(n, 12))
    return folder


# The velodyne geometry of the hand-computed case in test_sources_kitti.py.
AXES = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # velodyne (x fwd, y left, z up) -> camera
P_RECT_02 = np.array([[100.0, 0, 20, 4.5], [0, 100, 15, 0], [0, 0, 1, 0.005]])


def write_kitti_raw(date: Path, drive="2011_09_26_drive_0001_sync", n=3, points=None) -> Path:
    """date/calib_*.txt and date/drive/{image_02/data, image_02/timestamps.txt,
    velodyne_points/data}; every scan holds ``points`` (velodyne x y z)."""
    date.mkdir(parents=True, exist_ok=True)
    R_rect = np.eye(3)
    (date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"R_rect_00: {' '.join(map(str, R_rect.ravel()))}\n"
        f"P_rect_00: {' '.join(map(str, kitti_P(100, 20, 15).ravel()))}\n"
        f"P_rect_02: {' '.join(map(str, P_RECT_02.ravel()))}\n"
    )
    (date / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {' '.join(map(str, AXES.ravel()))}\nT: 0.1 -0.2 0.3\n"
        "delta_f: 0 0\ndelta_c: 0 0\n"
    )
    d = date / drive
    (d / "image_02" / "data").mkdir(parents=True)
    (d / "velodyne_points" / "data").mkdir(parents=True)
    stamps = []
    for i in range(n):
        cv2.imwrite(str(d / "image_02" / "data" / f"{i:010d}.png"), texture(i))
        pts = np.array(points if points is not None else [[10, 1, -0.5]], np.float32)
        scan = np.c_[pts, np.full(len(pts), 0.5, np.float32)]
        scan.astype(np.float32).tofile(d / "velodyne_points" / "data" / f"{i:010d}.bin")
        stamps.append(f"2011-09-26 13:02:25.{100000000 * i + 5:09d}")
    (d / "image_02" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    return d


# --- 7-Scenes -------------------------------------------------------------------------------


def sevenscenes_pose(i: int) -> np.ndarray:
    """The camera-to-world pose [4, 4] of fixture frame i: walking along x, turning about z."""
    T = np.eye(4)
    T[:3, :3] = rot_z(0.05 * i)
    T[:3, 3] = [0.007 * i, 0.001 * i, -0.002 * i]
    return T


def sevenscenes_depth_mm(i: int, size=SIZE) -> np.ndarray:
    """uint16 depth in mm of frame i: 1000 + 100 i, with 0 and 65535 (no reading) in the
    first row's first and second pixel."""
    d = np.full(size, 1000 + 100 * i, np.uint16)
    d[0, 0], d[0, 1] = 0, 65535
    return d


def write_sevenscenes(
    folder: Path, numbers=range(4), *, ext="png", K=None, pose_text=None, depth=True
) -> Path:
    """folder/frame-NNNNNN.{color.<ext>, depth.png, pose.txt} for each number, and with K a
    camera-intrinsics.txt; ``pose_text`` {number: text} replaces those pose files."""
    folder.mkdir(parents=True)
    for n in numbers:
        stem = folder / f"frame-{n:06d}"
        cv2.imwrite(f"{stem}.color.{ext}", texture(n))
        if depth:
            cv2.imwrite(f"{stem}.depth.png", sevenscenes_depth_mm(n))
        text = (pose_text or {}).get(n)
        if text is None:
            np.savetxt(f"{stem}.pose.txt", sevenscenes_pose(n))
        else:
            Path(f"{stem}.pose.txt").write_text(text)
    if K is not None:
        np.savetxt(folder / "camera-intrinsics.txt", K)
    return folder
