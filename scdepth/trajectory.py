"""Trajectory math of pose evaluation (numpy, float64): Umeyama alignment, ATE, the 5-frame
snippet ATE, RPE (KITTI's and per frame), TUM trajectory files and the top-view plot.

Poses are camera-to-world [N, 4, 4] (scdepth/data/poses.py has the conventions); positions
[N, 3] are their translation columns. KITTI-format files are read and written by
``scdepth.data.poses`` (the one reader of poses.txt); TUM files here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .data.poses import check_rigid, rotation_to_quaternion, to_homogeneous

# KITTI odometry devkit: segments of 100..800 m, a segment starting every 10 frames.
KITTI_LENGTHS = (100, 200, 300, 400, 500, 600, 700, 800)
# Our shorter set for excerpts without a 100 m segment (e.g. 51 KITTI frames, ~60 m).
SHORT_LENGTHS = (10, 20, 30, 40, 50)
KITTI_STEP = 10


@dataclass
class Sim3:
    """x -> s R x + t (s = 1 for SE(3))."""

    s: float
    R: np.ndarray  # [3, 3]
    t: np.ndarray  # [3]

    def points(self, x: np.ndarray) -> np.ndarray:
        """[N, 3] -> [N, 3]."""
        return self.s * x @ self.R.T + self.t

    def poses(self, poses: np.ndarray) -> np.ndarray:
        """Camera-to-world poses [N, 4, 4] moved into the aligned world: R_i -> R R_i,
        c_i -> s R c_i + t (rotations stay rotations)."""
        out = to_homogeneous(poses).copy()
        out[:, :3, :3] = self.R @ out[:, :3, :3]
        out[:, :3, 3] = self.points(out[:, :3, 3])
        return out


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Sim3:
    """The least-squares Sim(3) (or SE(3)) with dst ~ s R src + t (Umeyama 1991), for
    corresponding points src, dst [N, 3]. A src without spread (all points equal) gets s = 0
    and R = I, so that it maps onto the mean of dst."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 2:
        raise ValueError(f"src and dst must be [N, 3] with N >= 2, got {src.shape}, {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s <= 1e-30:
        return Sim3(0.0 if with_scale else 1.0, np.eye(3), mu_d - (0 if with_scale else mu_s))
    U, D, Vt = np.linalg.svd(xd.T @ xs / len(src))
    S = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2] = -1  # a rotation, never a reflection
    R = (U * S) @ Vt
    s = float((D * S).sum() / var_s) if with_scale else 1.0
    return Sim3(s, R, mu_d - s * R @ mu_s)


def ate(gt: np.ndarray, pred: np.ndarray, with_scale: bool = True) -> tuple[float, Sim3]:
    """Absolute trajectory error: RMSE (GT units) of the positions of ``pred`` aligned to
    ``gt`` by Umeyama's Sim(3) (SE(3) without scale), and the alignment. Poses [N, 4, 4]."""
    g, p = to_homogeneous(gt)[:, :3, 3], to_homogeneous(pred)[:, :3, 3]
    align = umeyama(p, g, with_scale)
    return float(np.sqrt(np.mean(np.sum((align.points(p) - g) ** 2, 1)))), align


def snippet_errors(gt: np.ndarray, pred: np.ndarray, length: int = 5) -> np.ndarray:
    """The snippet ATE of SfMLearner (Zhou et al. 2017) and Monodepth2, one value a snippet
    of ``length`` consecutive frames (a snippet starts at every frame).

    Both trajectories are taken relative to the snippet's first frame (positions of
    inv(T_first) T_k, the first at the origin), the predicted positions are scaled by the
    least-squares factor s = sum(gt . pred) / sum(pred . pred) (0 when pred does not move),
    and the error is sqrt(sum_k |s pred_k - gt_k|^2) / length -- the published protocol's
    normalisation (the RMSE over the snippet is sqrt(length) times this), so that the
    numbers compare with the papers' tables."""
    gt, pred = to_homogeneous(gt), to_homogeneous(pred)
    n = len(gt)
    if len(pred) != n:
        raise ValueError(f"gt has {n} poses, pred {len(pred)}")
    if n < length:
        raise ValueError(f"{n} frames, the {length}-frame snippet ATE needs at least {length}")
    out = np.empty(n - length + 1)
    for i in range(len(out)):
        g = (np.linalg.inv(gt[i]) @ gt[i : i + length])[:, :3, 3]
        p = (np.linalg.inv(pred[i]) @ pred[i : i + length])[:, :3, 3]
        pp = float((p * p).sum())
        s = float((g * p).sum()) / pp if pp > 0 else 0.0
        out[i] = np.sqrt(((s * p - g) ** 2).sum()) / length
    return out


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Angle (rad) of rotations [..., 3, 3]: atan2(sin, cos) from the skew part and the
    trace, accurate for small angles too (arccos of the trace alone turns 1e-7 of rounding
    in a float32 rotation into 3e-4 rad)."""
    R = np.asarray(R, np.float64)
    skew = np.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    return np.arctan2(np.linalg.norm(skew, axis=-1) / 2, (np.trace(R, axis1=-2, axis2=-1) - 1) / 2)


def path_distances(poses: np.ndarray) -> np.ndarray:
    """Distance travelled [N] from the first frame along the positions (0 at frame 0)."""
    c = to_homogeneous(poses)[:, :3, 3]
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])


def kitti_lengths(gt: np.ndarray) -> tuple[int, ...]:
    """KITTI's 100..800 m when the GT path reaches 100 m, else our SHORT_LENGTHS (10..50 m)."""
    return KITTI_LENGTHS if path_distances(gt)[-1] > KITTI_LENGTHS[0] else SHORT_LENGTHS


def rpe_kitti(gt, pred, lengths=KITTI_LENGTHS, step: int = KITTI_STEP):
    """KITTI odometry RPE, as its devkit defines it: for every start frame (every ``step``
    frames) and length L, the segment ends at the first frame whose GT path distance exceeds
    the start's by more than L; the error pose inv(inv(P_a) P_b) (inv(G_a) G_b) gives the
    translational error |t| / L and the rotational error angle / L (rad/m).

    Returns (t_err [S] in m/m, r_err [S] in rad/m, segment lengths [S] in m); ``pred`` must
    already be in metres (e.g. Sim(3)-aligned)."""
    gt, pred = to_homogeneous(gt), to_homogeneous(pred)
    dist = path_distances(gt)
    t_err, r_err, seg = [], [], []
    for a in range(0, len(gt), step):
        for L in lengths:
            beyond = np.flatnonzero(dist > dist[a] + L)
            if not beyond.size:
                continue
            b = beyond[0]
            E = np.linalg.inv(np.linalg.inv(pred[a]) @ pred[b]) @ (np.linalg.inv(gt[a]) @ gt[b])
            t_err.append(np.linalg.norm(E[:3, 3]) / L)
            r_err.append(rotation_angle(E[:3, :3]) / L)
            seg.append(L)
    return np.array(t_err), np.array(r_err), np.array(seg, dtype=np.float64)


def rpe_frames(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    """RPE between consecutive frames (depends on the frame spacing): the error pose
    inv(inv(P_i) P_i+1) (inv(G_i) G_i+1); returns (translation [N-1] in GT units,
    rotation [N-1] in degrees). ``pred`` must already carry the GT's scale."""
    gt, pred = to_homogeneous(gt), to_homogeneous(pred)
    dg = np.linalg.inv(gt[:-1]) @ gt[1:]
    dp = np.linalg.inv(pred[:-1]) @ pred[1:]
    E = np.linalg.inv(dp) @ dg
    return np.linalg.norm(E[:, :3, 3], axis=1), np.degrees(rotation_angle(E[:, :3, :3]))


def closest_index(sorted_values: np.ndarray, value: float) -> int:
    """Index of the entry of an ascending array nearest to ``value`` (the earlier on a tie)."""
    i = int(np.searchsorted(sorted_values, value))
    if i == 0:
        return 0
    if i == len(sorted_values):
        return i - 1
    return i if sorted_values[i] - value < value - sorted_values[i - 1] else i - 1


def rpe_time(gt, pred, times, delta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """TUM RGB-D's RPE (evaluate_rpe.py with --fixed_delta): for every frame i, the frame j
    whose time is nearest to t_i + delta (pairs whose j is the last frame are left out, as
    the TUM tool does); the error pose (inv(P_i) P_j) inv(inv(G_i) G_j), in the TUM tool's
    order, gives the translation (GT units) and the rotation (degrees) of each pair.
    ``pred`` must carry the GT's scale."""
    gt, pred = to_homogeneous(gt), to_homogeneous(pred)
    times = np.asarray(times, np.float64)
    pairs = [(i, closest_index(times, t + delta)) for i, t in enumerate(times)]
    pairs = [(i, j) for i, j in pairs if j != len(times) - 1]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    a, b = (np.array(v) for v in zip(*pairs, strict=True))
    dg = np.linalg.inv(gt[a]) @ gt[b]
    dp = np.linalg.inv(pred[a]) @ pred[b]
    E = dp @ np.linalg.inv(dg)
    return np.linalg.norm(E[:, :3, 3], axis=1), np.degrees(rotation_angle(E[:, :3, :3]))


def chain(relative: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world poses [N + 1, 4, 4] from relative poses T_i<-i+1 [N, 4, 4] (points of
    camera i+1 into camera i): T_w<-0 = ``start`` (identity), T_w<-i+1 = T_w<-i T_i<-i+1."""
    relative = to_homogeneous(relative)
    out = np.empty((len(relative) + 1, 4, 4))
    out[0] = np.eye(4) if start is None else to_homogeneous(start[None])[0]
    for i, T in enumerate(relative):
        out[i + 1] = out[i] @ T
    return out


def write_tum(path, times, poses) -> None:
    """TUM RGB-D trajectory: ``timestamp tx ty tz qx qy qz qw`` a line, camera-to-world."""
    poses = check_rigid(poses, path)
    times = np.asarray(times, np.float64)
    if times.shape != (len(poses),):
        raise ValueError(f"{path}: {times.size} timestamps for {len(poses)} poses")
    rows = np.column_stack([times, poses[:, :3, 3], rotation_to_quaternion(poses[:, :3, :3])])
    header = "timestamp tx ty tz qx qy qz qw (camera-to-world)"
    np.savetxt(path, rows, fmt="%.17g", header=header)


# --- the top view ------------------------------------------------------------------------


def top_view_axes(gt: np.ndarray) -> tuple[int, int]:
    """The two world axes of a top view: all but the one closest to the cameras' mean "down"
    (their y axis, OpenCV/KITTI cameras): x-z for KITTI, the floor plane for most rigs."""
    down = to_homogeneous(gt)[:, :3, 1].mean(0)
    up_axis = int(np.abs(down).argmax())
    return tuple(a for a in range(3) if a != up_axis)


def plot_top_view(path, gt, preds: dict, title: str) -> None:
    """PNG of the GT and the aligned predicted trajectories ({label: poses [N, 4, 4]}) seen
    from above, in metres, start and end marked."""
    gt = to_homogeneous(gt)
    a, b = top_view_axes(gt)
    names = "xyz"
    fig = Figure(figsize=(6.4, 6.0), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    series = [("ground truth", gt, dict(color="black", lw=2.2))]
    styles = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple"]
    series += [
        (label, to_homogeneous(p), dict(color=styles[i % len(styles)], lw=1.6, ls="--"))
        for i, (label, p) in enumerate(preds.items())
    ]
    for label, poses, style in series:
        c = poses[:, :3, 3]
        ax.plot(c[:, a], c[:, b], label=label, **style)
        ax.plot(c[0, a], c[0, b], "o", color=style["color"], ms=7, mfc="white", mew=2)
        ax.plot(c[-1, a], c[-1, b], "s", color=style["color"], ms=7)
    ax.plot([], [], "o", color="grey", mfc="white", mew=2, label="start")
    ax.plot([], [], "s", color="grey", label="end")
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.savefig(path)
