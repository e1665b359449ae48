"""TUM RGB-D layout (also Bonn RGB-D Dynamic, see bonn.py, and recordings laid out the same
way).

    SOURCE/rgb.txt, depth.txt    ``timestamp path`` a line ('#' comments), paths relative
    SOURCE/associations.txt      or associate.txt: ``t_rgb rgb/x.png t_depth depth/y.png``
    SOURCE/groundtruth.txt       optional: ``timestamp tx ty tz qx qy qz qw`` (camera-to-world)

RGB and depth are paired by timestamp as TUM's associate.py pairs them (less than ``max_dt``
apart, closest pairs first, each image used once) from rgb.txt and depth.txt, or taken as
listed from a given association file (or from the association file in SOURCE when there are
no lists). Entries whose files are missing are left out and the log says how many. The
trajectory is interpolated at the RGB times (translation linearly, rotation by slerp); frames
outside the trajectory's time range, or in a gap of more than ``MAX_GT_GAP`` between its
samples, are dropped so that every written frame has a pose (``poses=False`` keeps them and
writes no poses). A Bonn sequence's trajectory is its marker's, moved to the camera by the
published transforms.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..layout import DatasetError
from ..poses import quaternion_to_rotation, slerp
from ..specs import RAW_DEPTH_PNG_SCALES
from .bonn import BONN_CALIBRATION, BONN_SIZE, is_bonn, marker_to_camera
from .common import Recording, SourceOptions, files_reader, read_depth_png

ASSOCIATION_FILES = ("associations.txt", "associate.txt")
MAX_GT_GAP = 0.1  # s: TUM's motion capture runs at 100 Hz; a longer gap is lost tracking
# Published calibration of the TUM RGB-D sequences (640x480; OpenCV k1 k2 p1 p2 k3).
TUM_SIZE = (480, 640)
TUM_CALIBRATION = {
    "1": ((517.3, 516.5, 318.6, 255.3), (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "2": ((520.9, 521.0, 325.1, 249.7), (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "3": ((535.4, 539.2, 320.1, 247.6), None),  # freiburg3 images are already undistorted
}


def _rows(path: Path, ncols: int, what: str) -> list[list[str]]:
    """Non-comment lines of a TUM text file split into ``ncols`` fields."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != ncols:
            raise DatasetError(f"{path}: line {n} has {len(fields)} fields, expected {what}")
        try:
            float(fields[0])
            if ncols == 4:
                float(fields[2])
        except ValueError:
            raise DatasetError(f"{path}: line {n}: timestamp is not a number: {line!r}") from None
        rows.append(fields)
    if not rows:
        raise DatasetError(f"{path}: no entries")
    return rows


def _present(folder: Path, names: list[str]) -> np.ndarray:
    return np.array([(folder / n).is_file() for n in names], dtype=bool)


def associate(
    t_rgb: np.ndarray, t_depth: np.ndarray, max_dt: float, offset: float = 0.0
) -> list[tuple[int, int]]:
    """Pairs (i_rgb, i_depth) as TUM's associate.py makes them: every pair with
    |t_rgb - (t_depth + offset)| < max_dt is a candidate, candidates are taken closest first
    (ties: earlier RGB, then earlier depth) while both members are unused; sorted by RGB
    time."""
    order = np.argsort(t_depth, kind="stable")
    ts = t_depth[order]
    lo = np.searchsorted(ts + offset, t_rgb - max_dt, side="left")
    hi = np.searchsorted(ts + offset, t_rgb + max_dt, side="right")
    cands = []
    for i, t in enumerate(t_rgb):
        for k in range(lo[i], hi[i]):  # the window holds every candidate, and a few more
            dt = abs(t - (ts[k] + offset))
            if dt < max_dt:
                cands.append((dt, t, ts[k], i, int(order[k])))
    used_r, used_d, pairs = set(), set(), []
    for *_, i, j in sorted(cands):
        if i not in used_r and j not in used_d:
            used_r.add(i)
            used_d.add(j)
            pairs.append((i, j))
    return sorted(pairs, key=lambda p: (t_rgb[p[0]], t_depth[p[1]]))


def read_trajectory(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """TUM groundtruth.txt -> (times [M] sorted, rows [M, 7] tx ty tz qx qy qz qw)."""
    rows = _rows(path, 8, "8 (timestamp tx ty tz qx qy qz qw)")
    try:
        data = np.array(rows, dtype=np.float64)
    except ValueError:
        raise DatasetError(f"{path}: every field must be a number") from None
    if not np.isfinite(data).all():
        raise DatasetError(f"{path}: holds non-finite values")
    if (np.linalg.norm(data[:, 4:], axis=1) < 0.5).any():
        raise DatasetError(f"{path}: holds a quaternion that is not of unit length")
    data = data[np.argsort(data[:, 0], kind="stable")]
    return data[:, 0], data[:, 1:]


def interpolate_poses(gt_t, gt, times, max_gap: float = MAX_GT_GAP):
    """Camera-to-world [N, 4, 4] at ``times`` and a mask [N] of the times the trajectory
    covers (inside its range, bracketing samples at most max_gap apart)."""
    k = np.clip(np.searchsorted(gt_t, times), 1, len(gt_t) - 1)
    t0, t1 = gt_t[k - 1], gt_t[k]
    ok = (times >= gt_t[0]) & (times <= gt_t[-1]) & (t1 - t0 <= max_gap)
    a = np.clip((times - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0)
    poses = np.tile(np.eye(4), (len(times), 1, 1))
    poses[:, :3, 3] = (1 - a)[:, None] * gt[k - 1, :3] + a[:, None] * gt[k, :3]
    poses[:, :3, :3] = quaternion_to_rotation(slerp(gt[k - 1, 3:], gt[k, 3:], a))
    return poses, ok


def tum_calibration(source: Path, rgb_list: Path | None):
    """(key "1"/"2"/"3", where found) when the folder name or the bag name in rgb.txt names
    freiburg1/2/3 (also 'fr1_' style), else None."""
    pattern = re.compile(r"(?:freiburg|(?<![a-z0-9])fr)([123])(?![0-9])", re.IGNORECASE)
    m = pattern.search(source.resolve().name)
    if m:
        return m.group(1), f"folder name {source.resolve().name!r}"
    if rgb_list is not None:
        for line in rgb_list.read_text().splitlines():
            if line.startswith("#") and (m := pattern.search(line)):
                return m.group(1), f"{rgb_list.name}: {line.strip()!r}"
    return None


def open_tum(source: Path, opts: SourceOptions) -> Recording:
    if not source.is_dir():
        raise DatasetError(f"{source}: not a folder (TUM layout: rgb.txt, depth.txt, rgb/...)")
    rgb_txt, depth_txt = source / "rgb.txt", source / "depth.txt"
    assoc = opts.associations
    if assoc is None and not (rgb_txt.is_file() and depth_txt.is_file()):
        assoc = next((source / n for n in ASSOCIATION_FILES if (source / n).is_file()), None)
        if assoc is None:
            raise DatasetError(
                f"{source}: TUM layout needs rgb.txt and depth.txt, or an association file "
                f"({' / '.join(ASSOCIATION_FILES)})"
            )
    notes = []
    if assoc is not None:
        assoc = Path(assoc)
        if not assoc.is_file():
            raise DatasetError(f"{assoc}: association file missing")
        rows = _rows(assoc, 4, "4 (t_rgb rgb_path t_depth depth_path)")
        base = assoc.parent
        times = np.array([float(r[0]) for r in rows])
        rgb = [base / r[1] for r in rows]
        depth = [base / r[3] for r in rows]
        keep = _present(base, [r[1] for r in rows]) & _present(base, [r[3] for r in rows])
        what = f"{assoc.name} lists {len(rows)} pairs"
        notes.append(f"RGB-depth pairs as listed in {assoc}")
    else:
        rgb_rows = _rows(rgb_txt, 2, "2 (timestamp path)")
        depth_rows = _rows(depth_txt, 2, "2 (timestamp path)")
        r_ok = _present(source, [r[1] for r in rgb_rows])
        d_ok = _present(source, [r[1] for r in depth_rows])
        if r_ok.sum() < len(rgb_rows) or d_ok.sum() < len(depth_rows):
            notes.append(
                f"{rgb_txt.name} lists {len(rgb_rows)} images, {depth_txt.name} "
                f"{len(depth_rows)}; using the {r_ok.sum()} and {d_ok.sum()} present on disk"
            )
        rgb_rows = [r for r, k in zip(rgb_rows, r_ok, strict=True) if k]
        depth_rows = [r for r, k in zip(depth_rows, d_ok, strict=True) if k]
        if not rgb_rows or not depth_rows:
            raise DatasetError(f"{source}: none of the images in rgb.txt / depth.txt exist")
        t_rgb = np.array([float(r[0]) for r in rgb_rows])
        t_depth = np.array([float(r[0]) for r in depth_rows])
        pairs = associate(t_rgb, t_depth, opts.max_dt)
        if not pairs:
            gap = np.min(np.abs(t_rgb[:, None] - t_depth[None, :]))
            raise DatasetError(
                f"{rgb_txt} and {depth_txt}: no RGB image has a depth image within "
                f"{opts.max_dt * 1000:g} ms (the closest pair is {gap * 1000:.1f} ms apart; "
                "see --max-dt, or give --associations)"
            )
        dts = [abs(t_rgb[i] - t_depth[j]) for i, j in pairs]
        notes.append(
            f"associated {len(pairs)} of {len(rgb_rows)} RGB images with depth by timestamp "
            f"(largest gap {max(dts) * 1000:.1f} ms, limit {opts.max_dt * 1000:g} ms)"
        )
        times = t_rgb[[i for i, _ in pairs]]
        rgb = [source / rgb_rows[i][1] for i, _ in pairs]
        depth = [source / depth_rows[j][1] for _, j in pairs]
        keep = np.ones(len(pairs), dtype=bool)
        what = f"{len(pairs)} associated pairs"
    if not keep.all():
        notes.append(f"{what}; {int((~keep).sum())} have a missing file and are left out")
    poses = None
    if opts.poses and (source / "groundtruth.txt").is_file():
        poses, keep = _gt_poses(source, times, keep, notes)
    if not keep.any():
        raise DatasetError(f"{source}: no RGB-depth pair has both files present")
    idx = np.flatnonzero(keep)
    rgb, depth, times = [rgb[i] for i in idx], [depth[i] for i in idx], times[idx]
    if poses is not None:
        poses = poses[idx]
    if not np.all(np.diff(times) > 0):
        notes.append("timestamps are not increasing: no times.txt written")
        times = None
    scale = opts.depth_scale or RAW_DEPTH_PNG_SCALES["tum"]
    notes.append(f"depth: PNG value / {scale:g} = metres")
    rec = Recording(
        "tum",
        source,
        len(rgb),
        files_reader(rgb, lambda i, size: read_depth_png(depth[i], scale, size)),
        poses=poses,
        times=times,
        has_depth=True,
        notes=notes,
    )
    _published_camera(rec, source, rgb_txt if rgb_txt.is_file() else None)
    return rec


def _gt_poses(source: Path, times: np.ndarray, keep: np.ndarray, notes: list[str]):
    """(camera-to-world poses at ``times``, ``keep`` less the frames groundtruth.txt does not
    cover); Bonn's marker trajectory moved to the camera."""
    gt_path = source / "groundtruth.txt"
    gt_t, gt = read_trajectory(gt_path)
    poses, covered = interpolate_poses(gt_t, gt, times)
    if not (covered & keep).any():
        raise DatasetError(
            f"{gt_path}: covers none of the frame times ({gt_t[0]:.3f}..{gt_t[-1]:.3f} s, "
            f"frames {times.min():.3f}..{times.max():.3f} s); pass --no-poses to import "
            "without poses"
        )
    if (keep & ~covered).any():
        notes.append(
            f"{int((keep & ~covered).sum())} frames outside {gt_path.name}'s time range "
            f"(or in a gap over {MAX_GT_GAP:g} s) are left out so that every frame has a "
            "pose (--no-poses keeps them)"
        )
    notes.append(f"poses: {gt_path.name} interpolated at the RGB times (slerp)")
    if is_bonn(source):
        poses = marker_to_camera(poses)
        notes.append(
            "poses: Bonn's groundtruth.txt is the motion-capture marker's pose; moved to the "
            "colour camera by the dataset's published T_ros and T_m"
        )
    return poses, keep & covered


def _published_camera(rec: Recording, source: Path, rgb_list: Path | None) -> None:
    """The published K and distortion of a Bonn or TUM freiburg1/2/3 sequence, if it is one."""
    if is_bonn(source):
        (fx, fy, cx, cy), dist = BONN_CALIBRATION
        rec.K_from = f"Bonn RGB-D Dynamic published calibration (folder {source.resolve().name!r})"
        rec.K_size = BONN_SIZE
    else:
        found = tum_calibration(source, rgb_list)
        if found is None:
            return
        key, where = found
        (fx, fy, cx, cy), dist = TUM_CALIBRATION[key]
        rec.K_from = f"TUM freiburg{key} published calibration ({where})"
        rec.K_size = TUM_SIZE
    rec.K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    rec.dist = None if dist is None else np.array(dist)
