"""Camera poses on disk: the one reader and writer of a scene's ``poses.txt`` and ``times.txt``.

Conventions, written down once for the whole project:

- ``poses.txt`` (optional, per scene): one line per frame of the scene folder (frames sorted
  by name, before any ``frame_index.txt`` selection), 12 numbers: the 3x4 matrix [R | c]
  row-major, **camera-to-world** (a point X_cam in that frame's camera is R X_cam + c in the
  world), as in KITTI odometry's ``poses/NN.txt``. The first pose need not be the identity.
- ``times.txt`` (optional, per scene): one timestamp in seconds per frame (KITTI odometry's
  ``times.txt``; TUM's timestamps). Without it, trajectories are stamped by frame index.
- The warp's pose (``scdepth.ops.inverse_warp``, the PoseNet's output) goes the other way:
  [R | t] maps points of the **target** camera into the **source** camera, that is
  T_src<-tgt = inv(T_world<-src) @ T_world<-tgt (see ``relative_pose``).
- The PoseNet's output for (tgt, ref) is that pose, T_ref<-tgt: the trainer feeds
  pose_net(tgt, ref) to inverse_warp(ref, tgt_depth, ...). Visual odometry therefore runs
  pose_net(frame t+1, frame t) = T_t<-t+1 = inv(T_world<-t) @ T_world<-t+1, with no inverse,
  and chains T_world<-t+1 = T_world<-t @ T_t<-t+1 from T_world<-0 = I
  (``scdepth.pose_eval.predict_relative``, ``scdepth.trajectory.chain``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import DatasetError

POSES_FILE = "poses.txt"
TIMES_FILE = "times.txt"
ROTATION_TOL = 1e-3  # |R^T R - I| and |det R - 1|: KITTI's poses are printed to ~1e-9


def to_homogeneous(poses: np.ndarray) -> np.ndarray:
    """[N, 3, 4] -> [N, 4, 4] (last row 0 0 0 1); [N, 4, 4] passes through."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape[-2:] == (4, 4):
        return poses
    out = np.tile(np.eye(4), (*poses.shape[:-2], 1, 1))
    out[..., :3, :] = poses
    return out


def check_rigid(poses: np.ndarray, source) -> np.ndarray:
    """Raise DatasetError naming ``source`` and the row unless every pose is a finite rigid
    transform (orthonormal R with det +1)."""
    poses = to_homogeneous(poses)
    bad = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
    if bad.size:
        raise DatasetError(f"{source}: pose {bad[0]} (line {bad[0] + 1}) is not finite")
    R = poses[:, :3, :3]
    ortho = np.abs(R.transpose(0, 2, 1) @ R - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bad = np.flatnonzero((ortho > ROTATION_TOL) | (np.abs(det - 1) > ROTATION_TOL))
    if bad.size:
        i = bad[0]
        raise DatasetError(
            f"{source}: pose {i} (line {i + 1}) is not a rigid transform "
            f"(|R^T R - I| = {ortho[i]:.2g}, det R = {det[i]:.4g})"
        )
    return poses


def read_poses(path, n_frames: int | None = None) -> np.ndarray:
    """Camera-to-world poses [N, 4, 4] float64 from a KITTI-format file (12 numbers a line).

    With ``n_frames`` the line count must match it. Errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            values = [float(s) for s in line.split()]
        except ValueError:
            raise DatasetError(f"{path}: line {i + 1} is not numbers: {line[:60]!r}") from None
        if len(values) != 12:
            raise DatasetError(
                f"{path}: line {i + 1} has {len(values)} numbers, expected 12 (3x4 row-major)"
            )
        rows.append(values)
    if not rows:
        raise DatasetError(f"{path}: no poses")
    if n_frames is not None and len(rows) != n_frames:
        raise DatasetError(f"{path}: {len(rows)} poses for {n_frames} frames (one line a frame)")
    return check_rigid(np.array(rows).reshape(-1, 3, 4), path)


def write_poses(path, poses: np.ndarray) -> None:
    """Write camera-to-world poses ([N, 3, 4] or [N, 4, 4]) in KITTI format."""
    poses = check_rigid(poses, path)
    np.savetxt(path, poses[:, :3, :].reshape(-1, 12), fmt="%.17g")  # exact round trip


def read_times(path, n_frames: int | None = None) -> np.ndarray:
    """Timestamps in seconds [N] float64, one a line (KITTI ``times.txt``)."""
    path = Path(path)
    try:
        t = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read timestamps: {e}") from None
    if t.ndim != 1 or not np.isfinite(t).all():
        raise DatasetError(f"{path}: must hold one finite timestamp a line")
    if n_frames is not None and t.size != n_frames:
        raise DatasetError(f"{path}: {t.size} timestamps for {n_frames} frames")
    return t


def write_times(path, times) -> None:
    np.savetxt(path, np.asarray(times, dtype=np.float64), fmt="%.6f")


def relative_pose(world_from_tgt: np.ndarray, world_from_src: np.ndarray) -> np.ndarray:
    """The warp's pose T_src<-tgt [..., 4, 4] from two camera-to-world poses."""
    return np.linalg.inv(to_homogeneous(world_from_src)) @ to_homogeneous(world_from_tgt)


def scene_poses(scene_dir, n_frames: int) -> np.ndarray | None:
    """``scene_dir/poses.txt`` checked against the frame count, or None when absent."""
    path = Path(scene_dir) / POSES_FILE
    return read_poses(path, n_frames) if path.exists() else None


def scene_times(scene_dir, n_frames: int) -> np.ndarray | None:
    path = Path(scene_dir) / TIMES_FILE
    return read_times(path, n_frames) if path.exists() else None


# --- rotations as quaternions (x, y, z, w), as TUM trajectory files hold them --------------


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Rotations [..., 3, 3] -> unit quaternions [..., 4] as (qx, qy, qz, qw), qw >= 0.
    From the largest of the four diagonal combinations (stable near 180 degrees)."""
    R = np.asarray(R, np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # 4 qx^2, 4 qy^2, 4 qz^2, 4 qw^2
    cand = np.stack(
        [1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1
    )
    k = cand.argmax(-1)
    q = np.empty(R.shape[:-2] + (4,))
    r = lambda i, j: R[..., i, j]  # noqa: E731
    # each row: 4 q_k times (qx, qy, qz, qw) from the off-diagonal sums and differences
    rows = [
        np.stack([cand[..., 0], r(0, 1) + r(1, 0), r(0, 2) + r(2, 0), r(2, 1) - r(1, 2)], -1),
        np.stack([r(0, 1) + r(1, 0), cand[..., 1], r(1, 2) + r(2, 1), r(0, 2) - r(2, 0)], -1),
        np.stack([r(0, 2) + r(2, 0), r(1, 2) + r(2, 1), cand[..., 2], r(1, 0) - r(0, 1)], -1),
        np.stack([r(2, 1) - r(1, 2), r(0, 2) - r(2, 0), r(1, 0) - r(0, 1), cand[..., 3]], -1),
    ]
    for i in range(4):
        sel = k == i
        q[sel] = rows[i][sel]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] as (qx, qy, qz, qw) (normalised here) -> rotations [..., 3, 3]."""
    q = np.asarray(q, np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    R = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, -1) for row in R], -2)


def slerp(q0: np.ndarray, q1: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions [N, 4] at fractions a [N] (shortest arc)."""
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # q and -q are the same rotation
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-8  # (almost) the same rotation: linear is exact enough
    s = np.where(small, 1.0, s)
    w0 = np.where(small, 1 - a, np.sin((1 - a) * theta) / s)
    w1 = np.where(small, a, np.sin(a * theta) / s)
    q = w0[:, None] * q0 + w1[:, None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
