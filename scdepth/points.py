"""Point clouds: back-projection of a depth map with pinhole intrinsics, binary PLY files, a
voxel grid that fuses many frames into one cloud, and its top view.

Points are in a camera's frame as OpenCV and this project have it (x right, y down, z
forward; pixel centres at integer coordinates); a fused cloud is in the first frame's
camera. The command that writes them is scdepth-infer (--ply, --fuse; scdepth/clouds.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)
PLY_TYPES = {"f4": "float", "u1": "uchar"}
MAX_PLOTTED = 300_000  # points drawn in a top view (a random subset beyond)


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points [h * w, 3] (float64, row-major pixel order) of depth [h, w]:
    depth(u, v) * K^-1 [u, v, 1]."""
    h, w = depth.shape
    v, u = np.mgrid[:h, :w]
    pix = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3).astype(np.float64)
    return (pix @ np.linalg.inv(np.asarray(K, np.float64)).T) * depth.reshape(-1, 1)


def transform(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """points [N, 3] moved by the 4x4 (or 3x4) pose: R p + t."""
    pose = np.asarray(pose, np.float64)
    return points @ pose[:3, :3].T + pose[:3, 3]


# --- PLY -------------------------------------------------------------------------------------


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray, comments=()) -> bytes:
    """A binary little-endian PLY of coloured vertices: float x, y, z and uchar red, green,
    blue; `comments` become header comment lines (units, camera, source)."""
    xyz, rgb = np.asarray(xyz), np.asarray(rgb)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or rgb.shape != xyz.shape:
        raise ValueError(f"xyz and rgb must both be [N, 3], got {xyz.shape} and {rgb.shape}")
    vertices = np.empty(len(xyz), PLY_VERTEX)
    for i, axis in enumerate("xyz"):
        vertices[axis] = xyz[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = rgb[:, i]
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {' '.join(str(c).split())}" for c in comments]
    lines.append(f"element vertex {len(xyz)}")
    lines += [f"property {PLY_TYPES[PLY_VERTEX[n].str[1:]]} {n}" for n in PLY_VERTEX.names]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii") + vertices.tobytes()


def read_ply(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(xyz [N, 3] float32, rgb [N, 3] uint8, header comments) of a PLY written here."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY is read here")
    count = next(int(h.split()[2]) for h in header if h.startswith("element vertex"))
    body = np.frombuffer(data, PLY_VERTEX, count, offset=end + len(b"end_header\n"))
    xyz = np.stack([body[a] for a in "xyz"], 1)
    rgb = np.stack([body[c] for c in ("red", "green", "blue")], 1)
    comments = [h[len("comment ") :] for h in header if h.startswith("comment ")]
    return xyz, rgb, comments


# --- fusion ----------------------------------------------------------------------------------


class VoxelGrid:
    """Points averaged per cube of side `size`: each occupied voxel keeps the centroid and
    the mean colour of its points. Points are merged in batches, so memory follows the
    occupied voxels rather than the points added."""

    def __init__(self, size: float, batch: int = 1 << 21):
        if not size > 0:
            raise ValueError(f"voxel size must be > 0, got {size}")
        self.size, self.batch = float(size), batch
        self.ijk = np.empty((0, 3), np.int64)
        self.sums = np.empty((0, 6))  # x, y, z, r, g, b summed over the voxel's points
        self.counts = np.empty(0, np.int64)
        self.pending, self.n_pending = [], 0

    def add(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        self.pending.append(np.concatenate([xyz, rgb], 1).astype(np.float64))
        self.n_pending += len(xyz)
        if self.n_pending >= self.batch:
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        new = np.concatenate(self.pending)
        self.pending, self.n_pending = [], 0
        ijk = np.concatenate([self.ijk, np.floor(new[:, :3] / self.size).astype(np.int64)])
        sums = np.concatenate([self.sums, new])
        counts = np.concatenate([self.counts, np.ones(len(new), np.int64)])
        self.ijk, inverse = np.unique(ijk, axis=0, return_inverse=True)
        inverse, n = inverse.ravel(), len(self.ijk)
        self.sums = np.stack(
            [np.bincount(inverse, weights=sums[:, c], minlength=n) for c in range(6)], 1
        )
        self.counts = np.bincount(inverse, weights=counts, minlength=n).astype(np.int64)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(centroids [M, 3] float64, mean colours [M, 3] uint8), one per occupied voxel."""
        self._merge()
        mean = self.sums / np.maximum(self.counts, 1)[:, None]
        return mean[:, :3], np.clip(np.rint(mean[:, 3:]), 0, 255).astype(np.uint8)


# --- the top view ----------------------------------------------------------------------------


def plot_top_view(path, xyz, rgb, poses, unit: str, title: str) -> None:
    """PNG of the cloud seen from above (along the cameras' mean "down", their y axis) in
    its colours, highest points drawn last, with the camera trajectory (poses [N, 4, 4]) and
    its start and end marked."""
    from .trajectory import top_view_axes

    a, b = top_view_axes(poses)
    up = 3 - a - b
    down = np.sign(np.asarray(poses)[:, up, 1].mean() or 1.0)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(xyz), MAX_PLOTTED, replace=False) if len(xyz) > MAX_PLOTTED else None
    pts, col = (xyz, rgb) if pick is None else (xyz[pick], rgb[pick])
    order = np.argsort(-down * pts[:, up])  # y grows downwards: the highest points last
    pts, col = pts[order], col[order]
    fig = Figure(figsize=(7.0, 6.4), dpi=130, layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(pts[:, a], pts[:, b], c=col / 255.0, s=0.6, linewidths=0, rasterized=True)
    c = np.asarray(poses)[:, :3, 3]
    ax.plot(c[:, a], c[:, b], color="tab:red", lw=1.6, label="camera trajectory")
    ax.plot(c[0, a], c[0, b], "o", color="tab:red", ms=7, mfc="white", mew=2, label="start")
    ax.plot(c[-1, a], c[-1, b], "s", color="tab:red", ms=7, label="end")
    lo, hi = np.percentile(pts[:, [a, b]], [1, 99], axis=0) if len(pts) else ([-1, -1], [1, 1])
    lo, hi = np.minimum(lo, c[:, [a, b]].min(0)), np.maximum(hi, c[:, [a, b]].max(0))
    pad = 0.05 * (hi - lo).max() + 1e-9
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"{'xyz'[a]} [{unit}]")
    ax.set_ylabel(f"{'xyz'[b]} [{unit}]")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.savefig(path)
