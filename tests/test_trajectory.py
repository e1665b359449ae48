"""Trajectory math: Umeyama, ATE, snippet ATE, RPE, chaining, TUM/KITTI files, poses.txt errors."""

import numpy as np
import pytest
from helpers import read_tum

from scdepth import trajectory as tj
from scdepth.data.layout import DatasetError
from scdepth.data.poses import (
    quaternion_to_rotation,
    read_poses,
    relative_pose,
    rotation_to_quaternion,
    write_poses,
)


def rot(axis, angle):
    """Rotation about x, y or z (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)]["xyz".index(axis)]
    R = np.eye(3)
    R[i, i] = R[j, j] = c
    R[i, j], R[j, i] = -s, s
    return R


def pose(R=None, c=(0, 0, 0)):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = np.eye(3) if R is None else R, c
    return T


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        R = (
            rot("x", rng.uniform(-3, 3))
            @ rot("y", rng.uniform(-3, 3))
            @ rot("z", rng.uniform(-3, 3))
        )
        out.append(pose(R, rng.normal(size=3) * 5))
    return np.array(out)


@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_a_known_similarity(with_scale):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    s = 2.7 if with_scale else 1.0
    R = rot("z", 0.4) @ rot("x", -1.1) @ rot("y", 2.5)
    t = np.array([1.0, -3.0, 0.5])
    a = tj.umeyama(x, s * x @ R.T + t, with_scale=with_scale)
    assert a.s == pytest.approx(s, rel=1e-13, abs=0)
    np.testing.assert_allclose(a.R, R, rtol=0, atol=1e-13)
    np.testing.assert_allclose(a.t, t, rtol=0, atol=1e-13)
    assert np.linalg.det(a.R) == pytest.approx(1.0)


def test_umeyama_never_reflects_and_handles_a_point_cloud_without_spread():
    x = np.random.default_rng(2).normal(size=(10, 3))
    mirrored = x * np.array([1, 1, -1])  # the best orthogonal fit is a reflection
    assert np.linalg.det(tj.umeyama(x, mirrored).R) == pytest.approx(1.0)
    still = tj.umeyama(np.zeros((4, 3)), x[:4])
    assert still.s == 0 and np.allclose(still.points(np.zeros((4, 3))), x[:4].mean(0))
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        tj.umeyama(x[:, :2], x[:, :2])


def test_ate_is_zero_for_a_perfect_trajectory_in_another_frame_and_scale():
    gt = random_poses(12)
    sim = tj.Sim3(0.3, rot("y", 1.0) @ rot("x", 0.2), np.array([4.0, 5.0, -6.0]))
    pred = sim.poses(gt)  # the same trajectory, elsewhere and smaller
    err, a = tj.ate(gt, pred)
    assert err < 1e-12 and a.s == pytest.approx(1 / 0.3)
    np.testing.assert_allclose(a.poses(pred), gt, atol=1e-12)  # rotations move with it


def test_ate_of_a_perturbed_square_by_hand():
    """Corners (+-1, +-1, 0) of a square, the prediction lifted by eps * x * y out of the
    plane: mean zero and uncorrelated with the corners, so the best rotation is I and the
    best scale 2 / (2 + eps^2); ATE^2 = 2 (s - 1)^2 + s^2 eps^2 (by hand)."""
    eps = 0.1
    xy = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float)
    g = np.column_stack([xy, np.zeros(4)])
    p = g + np.column_stack([np.zeros((4, 2)), eps * xy[:, 0] * xy[:, 1]])
    gt, pred = np.array([pose(c=c) for c in g]), np.array([pose(c=c) for c in p])
    s = 2 / 2.01
    err, a = tj.ate(gt, pred)
    assert a.s == pytest.approx(s, rel=1e-12)
    assert err == pytest.approx(np.sqrt(2 * (s - 1) ** 2 + s**2 * 0.01), rel=1e-12)
    err_se3, b = tj.ate(gt, pred, with_scale=False)  # no scale: the lift alone remains
    assert b.s == 1 and err_se3 == pytest.approx(eps, rel=1e-12)


def test_snippet_ate_by_hand():
    """GT moves 1 m a frame along x; the prediction half as far with its last step off:
    p = (0, .5, 1, 1.5, 2.5). s = 17 / 9.75; errors s p - g = (0, -1.25, -2.5, -3.75, 3.5)
    / 9.75; the protocol's value sqrt(sum e^2) / 5 = sqrt(34.125) / 9.75 / 5."""
    g = [pose(c=(x, 0, 0)) for x in range(5)]
    p = [pose(c=(x, 0, 0)) for x in (0, 0.5, 1, 1.5, 2.5)]
    # both in frames of their own (first pose not the identity): relative to the first
    start = pose(rot("y", 0.7), (3, 1, 2))
    gt = np.array([start @ T for T in g])
    pred = np.array([pose(rot("x", -2.0), (-5, 0, 9)) @ T for T in p])
    err = tj.snippet_errors(gt, pred, 5)
    assert err.shape == (1,)
    assert err[0] == pytest.approx(np.sqrt(34.125) / 9.75 / 5, rel=1e-12)
    # a snippet starts at every frame; a perfect prediction up to scale scores 0
    gt8 = random_poses(8)
    perfect = tj.Sim3(0.5, rot("z", 1.0), np.ones(3)).poses(gt8)
    assert np.abs(tj.snippet_errors(gt8, perfect, 5)).max() < 1e-12
    assert tj.snippet_errors(gt8, perfect, 5).shape == (4,)
    zero = np.tile(np.eye(4), (5, 1, 1))  # no motion: scale 0, the error is |g|
    assert tj.snippet_errors(gt, zero)[0] == pytest.approx(np.sqrt(1 + 4 + 9 + 16) / 5)
    with pytest.raises(ValueError, match="at least 5"):
        tj.snippet_errors(gt[:4], pred[:4], 5)


def test_kitti_rpe_by_hand():
    """GT 1 m a frame along z (0..30 m); prediction 1.1 m a frame. Lengths 10 and 20 m,
    a start every 10 frames: a segment ends at the first frame more than L beyond its start,
    so (0, 11), (10, 21) for 10 m and (0, 21) for 20 m; errors 1.1 / 10, 1.1 / 10, 2.1 / 20."""
    gt = np.array([pose(c=(0, 0, z)) for z in range(31)])
    pred = np.array([pose(c=(0, 0, 1.1 * z)) for z in range(31)])
    t, r, seg = tj.rpe_kitti(gt, pred, lengths=(10, 20), step=10)
    np.testing.assert_allclose(t, [0.11, 0.105, 0.11], rtol=1e-12)
    np.testing.assert_array_equal(seg, [10, 20, 10])
    assert np.all(r == 0)
    assert 100 * t.mean() == pytest.approx(100 * (0.11 + 0.105 + 0.11) / 3)
    # right positions, heading drifting by th a frame about y: the error pose of (a, b) turns
    # by th (b - a), and moves by |(R_a - I) d| = 2 sin(th a / 2) |d|
    th = 0.01
    yawed = np.array([pose(rot("y", th * z), (0, 0, z)) for z in range(31)])
    t, r, _ = tj.rpe_kitti(gt, yawed, lengths=(10,), step=10)
    np.testing.assert_allclose(r, [11 * th / 10, 11 * th / 10], rtol=1e-9)
    np.testing.assert_allclose(t, [0, 2 * np.sin(th * 10 / 2) * 11 / 10], atol=1e-12)
    assert tj.kitti_lengths(gt) == tj.SHORT_LENGTHS  # 30 m: no 100 m segment
    long = np.array([pose(c=(0, 0, 2 * z)) for z in range(60)])
    assert tj.kitti_lengths(long) == tj.KITTI_LENGTHS


def test_rpe_per_frame_by_hand():
    gt = np.array([pose(c=(z, 0, 0)) for z in range(4)])
    pred = gt.copy()
    pred[2:, :3, 3] += [0, 0.3, 0]  # one step 0.3 m off sideways
    pred[3, :3, :3] = rot("z", np.radians(2))  # the last frame turned by 2 deg
    t, r = tj.rpe_frames(gt, pred)
    np.testing.assert_allclose(t, [0, 0.3, 0], atol=1e-12)
    np.testing.assert_allclose(r, [0, 0, 2], atol=1e-9)


def test_rotation_angle():
    for a in (0.0, 1e-9, 1e-4, 0.5, 3.0, np.pi):
        assert tj.rotation_angle(rot("y", a) @ np.eye(3)) == pytest.approx(a, rel=1e-9, abs=1e-15)
    R = rot("z", 0.3) @ rot("x", 0.2)
    assert tj.rotation_angle(R.T @ R) == pytest.approx(0, abs=1e-15)


def test_chain_inverts_relative_pose():
    gt = random_poses(7, seed=3)
    rel = relative_pose(gt[1:], gt[:-1])  # T_t<-t+1: target t+1, source t
    np.testing.assert_allclose(tj.chain(rel, gt[0]), gt, atol=1e-12)
    assert np.allclose(tj.chain(rel)[0], np.eye(4))


def test_quaternions_round_trip_also_near_half_turns():
    Rs = [rot("x", np.pi), rot("y", np.pi - 1e-9), rot("z", -np.pi / 2), np.eye(3)]
    Rs += [T[:3, :3] for T in random_poses(50, seed=4)]
    Rs = np.array(Rs)
    q = rotation_to_quaternion(Rs)
    assert np.allclose(np.linalg.norm(q, axis=1), 1) and (q[:, 3] >= 0).all()
    np.testing.assert_allclose(quaternion_to_rotation(q), Rs, atol=1e-12)
    np.testing.assert_allclose(
        rotation_to_quaternion(rot("z", np.pi / 2)), [0, 0, 0.5**0.5, 0.5**0.5]
    )


def test_tum_and_kitti_files_round_trip(tmp_path):
    poses = random_poses(6, seed=5)
    times = 1305031102.175304 + np.arange(6) / 30
    tj.write_tum(tmp_path / "t.txt", times, poses)
    t2, p2 = read_tum(tmp_path / "t.txt")
    np.testing.assert_array_equal(t2, times)
    np.testing.assert_allclose(p2, poses, rtol=0, atol=1e-13)
    write_poses(tmp_path / "k.txt", poses)
    np.testing.assert_array_equal(read_poses(tmp_path / "k.txt", 6), poses)
    (tmp_path / "bad.txt").write_text("1 2 3 4 5 6 7\n")
    with pytest.raises(DatasetError, match="bad.txt: line 1 has 7 fields"):
        read_tum(tmp_path / "bad.txt")


def test_poses_txt_bad_input_names_the_file(tmp_path):
    good = random_poses(3)[:, :3, :].reshape(3, 12)
    f = tmp_path / "poses.txt"
    np.savetxt(f, good)
    with pytest.raises(DatasetError, match=r"poses.txt: 3 poses for 4 frames"):
        read_poses(f, 4)
    bad = good.copy()
    bad[1, 5] = np.nan
    np.savetxt(f, bad)
    with pytest.raises(DatasetError, match=r"poses.txt: pose 1 \(line 2\) is not finite"):
        read_poses(f)
    bad = good.copy()
    bad[2, :3] *= 1.5  # a scaled rotation row
    np.savetxt(f, bad)
    with pytest.raises(DatasetError, match=r"poses.txt: pose 2 \(line 3\) is not a rigid"):
        read_poses(f)


def test_top_view_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import cv2

    gt = np.array([pose(rot("y", 0.05 * i), (np.sin(i / 5), 0.01 * i, i)) for i in range(20)])
    assert tj.top_view_axes(gt) == (0, 2)  # KITTI: y is down, the view is x-z
    tj.plot_top_view(tmp_path / "p.png", gt, {"posenet": gt * 1.0}, "title")
    img = cv2.imread(str(tmp_path / "p.png"))
    assert img is not None and min(img.shape[:2]) > 300 and img.std() > 5


def test_tum_rpe_pairs_one_second_apart_by_hand():
    """Frames at 0, 0.5, 1.1, 1.4, 2.0, 2.6 s, GT 1 m a second along x: pairs as TUM's
    evaluate_rpe.py --fixed_delta --delta 1 forms them -- (0, 2) (1.0 s: nearest 1.1),
    (1, 3) (1.5: nearest 1.4), (2, 4) (2.1: nearest 2.0); frames 3..5 would pair with the
    last frame, which the tool leaves out. The prediction moves 1.5 m a second after 1.1 s."""
    times = np.array([0, 0.5, 1.1, 1.4, 2.0, 2.6])
    gt = np.array([pose(c=(t, 0, 0)) for t in times])
    pred = np.array([pose(c=(min(t, 1.1) + 1.5 * max(t - 1.1, 0), 0, 0)) for t in times])
    t, r = tj.rpe_time(gt, pred, times, delta=1.0)
    # (0, 2): 1.1 m against 1.1; (1, 3): 1.05 against 0.9; (2, 4): 1.35 against 0.9
    np.testing.assert_allclose(t, [0, 0.15, 0.45], atol=1e-12)
    np.testing.assert_allclose(r, 0, atol=1e-9)
    turned = gt.copy()
    turned[3, :3, :3] = rot("z", np.radians(3))
    t, r = tj.rpe_time(gt, turned, times, delta=1.0)
    np.testing.assert_allclose(r, [0, 3, 0], atol=1e-9)
    # the TUM tool's order, (inv(P_1) P_3) inv(inv(G_1) G_3) = [R | (I - R) 0.9 x]: the turn
    # moves the error pose by 0.9 * 2 sin(1.5 deg) (the other order would give 0)
    assert t[1] == pytest.approx(0.9 * 2 * np.sin(np.radians(1.5)), rel=1e-9)
    assert tj.rpe_time(gt[:3], pred[:3], times[:3])[0].size == 0  # nothing 1 s apart


def test_kitti_rpe_rows_per_length_and_no_mixing_of_length_sets():
    from scdepth.pose_metrics import kitti_rpe, overall, scene_errors

    t = np.array([0.1, 0.3, 0.5])
    r = np.radians(np.array([0.01, 0.03, 0.05]))
    m = kitti_rpe(t, r, np.array([10.0, 10.0, 20.0]))
    assert m["rpe_by_length"]["10"] == pytest.approx({"t_pct": 20, "r_deg_100m": 2, "segments": 2})
    assert m["rpe_by_length"]["20"] == pytest.approx({"t_pct": 50, "r_deg_100m": 5, "segments": 1})
    # the devkit's stats.txt: the mean over all segments, (10 + 30 + 50) / 3 and (1 + 3 + 5) / 3,
    # not the mean of the lengths' means ((20 + 50) / 2 = 35, (2 + 5) / 2 = 3.5)
    assert m["rpe_t_pct"] == pytest.approx(30.0) and m["rpe_r_deg_100m"] == pytest.approx(3.0)
    assert kitti_rpe(np.zeros(0), np.zeros(0), np.zeros(0))["rpe_t_pct"] is None
    short = np.array([pose(c=(0, 0, z)) for z in range(31)])  # 30 m: the 10..50 m set
    long = np.array([pose(c=(0, 0, 5 * z)) for z in range(40)])  # 195 m: 100..800 m
    rows = {n: scene_errors(g, g * 1.0, "driving") for n, g in (("s", short), ("l", long))}
    mixed = overall(rows, "driving")
    assert mixed["rpe_t_pct"] is None and set(mixed["rpe_by_set"]) == {"10-50 m", "100-800 m"}
    one = overall({"s": rows["s"]}, "driving")
    assert one["rpe_lengths_m"] == list(tj.SHORT_LENGTHS) and one["rpe_t_pct"] < 1e-9


def test_pose_table_has_a_row_per_segment_length_within_each_length_set():
    from scdepth.pose_metrics import overall, scene_errors
    from scdepth.pose_report import markdown_table

    th = 0.01  # heading drifting about y: every segment has an error
    short = np.array([pose(c=(0, 0, z)) for z in range(31)])  # 30 m: 10 m x2, 20 m x1
    drift = np.array([pose(rot("y", th * z), (0, 0, z)) for z in range(31)])
    long = np.array([pose(c=(0, 0, 5 * z)) for z in range(40)])  # 195 m: 100 m x2
    rows = {"s": scene_errors(short, drift, "driving"), "l": scene_errors(long, long, "driving")}

    def table(scenes):
        o = overall(scenes, "driving")
        results = {"motion": "driving", "methods": {"m": {"scenes": scenes, "overall": o}}}
        cells = [[c.strip() for c in s.strip("|").split("|")] for s in markdown_table(results)
                 .splitlines() if s.startswith("| m | ")]  # fmt: skip
        return o, [c for c in cells if c[1].endswith(" m")]  # the per-length table's rows

    o, cells = table({"s": rows["s"]})
    assert [(c[1], c[2], c[3]) for c in cells] == [
        ("10-50 m", "10", "2"), ("10-50 m", "20", "1"), ("10-50 m", "all", "3")
    ]  # fmt: skip
    t, r, seg = (rows["s"][k] for k in ("_t", "_r", "_seg"))
    r = 100 * np.degrees(r)
    assert t.max() > 0.01 and r.min() > 0.1  # every row below is a real error
    assert float(cells[2][4]) == pytest.approx(100 * t.mean(), abs=0.005)
    assert float(cells[2][5]) == pytest.approx(r.mean(), abs=5e-4)
    assert float(cells[0][4]) == pytest.approx(100 * t[seg == 10].mean(), abs=0.005)
    assert float(cells[1][5]) == pytest.approx(r[seg == 20].mean(), abs=5e-4)
    assert o["rpe_t_pct"] == pytest.approx(100 * t.mean())
    _, cells = table(rows)  # two length sets: each its own rows, never one pooled "all"
    assert [c[1:3] for c in cells] == [
        ["10-50 m", "10"], ["10-50 m", "20"], ["10-50 m", "all"],
        ["100-800 m", "100"], ["100-800 m", "all"],
    ]  # fmt: skip
