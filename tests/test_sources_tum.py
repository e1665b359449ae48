"""TUM RGB-D importer: association, depth units, interpolated GT poses, published calibration
with undistortion, association files (RealSense layout), and its refusals."""

import cv2
import numpy as np
import pytest
from source_fixtures import SIZE, T0, blob_image, centroid, texture, tum_pose, write_tum

from scdepth.data.folders import TestFolder, ValFolder
from scdepth.data.layout import DatasetError
from scdepth.data.poses import quaternion_to_rotation, read_poses, read_times, slerp
from scdepth.data.prepare import prepare
from scdepth.data.sources.tum import TUM_CALIBRATION, associate

R_T = [T0 + 0.1 + 0.04 * k for k in range(6)]
# rgb 3's depth is 25 ms late (over 20 ms); it is also 15 ms from rgb 4, whose own depth
# (7 ms) must win: pairs are unique, closest first.
D_T = [t + (0.025 if k == 3 else 0.007) for k, t in enumerate(R_T)]


def _tum(tmp_path, **kw):
    kw.setdefault("gt_range", (T0, R_T[4] + 0.005))  # rgb 5 is after the trajectory's end
    return write_tum(tmp_path / "rec", R_T, D_T, missing=(1,), **kw)


def test_associate_nearest_unique_pairs():
    t_rgb = np.array([0.0, 0.01, 0.1, 0.3])
    t_depth = np.array([0.006, 0.095, 0.5])
    assert associate(t_rgb, t_depth, 0.02) == [(1, 0), (2, 1)]  # rgb 1 is closer to depth 0


def test_associate_as_tums_tool():
    """Every pair within max_dt is a candidate, not only each RGB's neighbours: rgb 0's
    neighbour (depth 0) goes to rgb 1 (5 ms), so rgb 0 takes depth 1, 90 ms away, its
    second-nearest (it lies beyond depth 0). Exactly max_dt apart is not a pair (TUM's '<');
    the offset is added to the depth times."""
    assert associate(np.array([0.0, 0.05]), np.array([0.045, 0.09]), 0.1) == [(0, 1), (1, 0)]
    assert associate(np.array([0.0]), np.array([0.5]), 0.5) == []
    assert associate(np.array([1.0]), np.array([0.0, 0.75]), 0.1, offset=0.25) == [(0, 1)]


def _tums_associate(t_rgb, t_depth, max_dt):
    """TUM's associate.py's steps over all pairs, by index."""
    cands = sorted(
        (abs(a - b), a, b, i, j)
        for i, a in enumerate(t_rgb)
        for j, b in enumerate(t_depth)
        if abs(a - b) < max_dt
    )
    free_r, free_d, out = set(range(len(t_rgb))), set(range(len(t_depth))), []
    for *_, i, j in cands:
        if i in free_r and j in free_d:
            free_r.remove(i)
            free_d.remove(j)
            out.append((i, j))
    return sorted(out, key=lambda p: t_rgb[p[0]])


@pytest.mark.parametrize("seed", range(5))
def test_associate_matches_all_pairs_on_jittered_streams(seed):
    """30 Hz RGB and depth with jitter and drop-outs, at a max_dt over two frame periods."""
    rng = np.random.default_rng(seed)
    t_rgb = np.sort(np.arange(200) / 30 + rng.normal(0, 0.004, 200))[rng.random(200) > 0.1]
    t_depth = np.arange(200) / 30 + 0.011 + rng.normal(0, 0.004, 200)
    t_depth = rng.permutation(t_depth[rng.random(200) > 0.1])  # depth.txt need not be sorted
    assert associate(t_rgb, t_depth, 0.1) == _tums_associate(t_rgb, t_depth, 0.1)


def test_quaternion_and_slerp():
    a = 0.7  # about z: q = (0, 0, sin a/2, cos a/2)
    q = np.array([[0, 0, np.sin(a / 2), np.cos(a / 2)]])
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(quaternion_to_rotation(q)[0], R, atol=1e-12)
    q0, q1 = np.array([[0, 0, 0, 1.0]]), np.array([[0, 0, np.sin(0.5), np.cos(0.5)]])  # 0, 1 rad
    half = np.array([[0, 0, np.sin(0.25), np.cos(0.25)]])
    np.testing.assert_allclose(slerp(q0, q1, np.array([0.5])), half, atol=1e-12)
    np.testing.assert_allclose(slerp(q0, -q1, np.array([0.5])), half, atol=1e-12)  # -q == q
    np.testing.assert_allclose(slerp(q0, q0, np.array([0.3])), q0, atol=1e-12)


def test_tum_val_scene(tmp_path):
    src = _tum(tmp_path)
    root = tmp_path / "ds"
    lines = []
    scene = prepare(
        src, root, "desk", split="val", fx=35.0, image_size=(15, 20), progress=False,
        log=lines.append,
    )  # fmt: skip
    log = "\n".join(lines)
    assert "format: tum (auto: rgb.txt and depth.txt)" in log
    assert "using the 5 and 6 present on disk" in log
    assert "associated 4 of 5 RGB images" in log
    assert "1 frames outside groundtruth.txt" in log
    # kept: rgb 0, 2, 4 (1 missing, 3 without depth, 5 without a pose), named 0, 1, 2
    frames = sorted(p.name for p in scene.glob("*.jpg"))
    assert frames == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert cv2.imread(str(scene / frames[0])).shape == (15, 20, 3)
    K = np.loadtxt(scene / "cam.txt")  # half size: f / 2, c -> (c + 0.5) / 2 - 0.5
    np.testing.assert_allclose(K, [[17.5, 0, 9.5], [0, 17.5, 7], [0, 0, 1]], atol=1e-6)
    for name, k in zip(("000000", "000001", "000002"), (0, 2, 4), strict=True):
        d = np.load(scene / "depth" / f"{name}.npy")
        assert d.dtype == np.float32 and d.shape == SIZE  # GT stays at the source size
        np.testing.assert_allclose(d, 1 + 0.1 * k, rtol=1e-6)  # PNG / 5000 = metres
    times = read_times(scene / "times.txt", 3)
    np.testing.assert_allclose(times, [R_T[0], R_T[2], R_T[4]], atol=1e-6)
    want = np.array([tum_pose(t) for t in times])
    np.testing.assert_allclose(read_poses(scene / "poses.txt", 3), want, atol=1e-7)
    assert (root / "training/val.txt").read_text() == "desk\n"
    assert len(ValFolder(root, image_size=(16, 24), dataset="tum")) == 3


def test_static_frames_keep_poses_aligned(tmp_path):
    """With static skipping the kept frames, poses and times stay one-to-one."""
    imgs = [texture(k) for k in range(6)]
    imgs[2] = imgs[0].copy()  # rgb 2 repeats rgb 0: a still camera
    src = _tum(tmp_path, images=imgs)
    scene = prepare(src, tmp_path / "ds", "s", fx=35.0, progress=False, log=None)
    assert sorted(p.stem for p in scene.glob("*.jpg")) == ["000000", "000002"]  # rgb 0, 4
    times = read_times(scene / "times.txt", 2)
    np.testing.assert_allclose(times, [R_T[0], R_T[4]], atol=1e-6)
    np.testing.assert_allclose(
        read_poses(scene / "poses.txt", 2), [tum_pose(t) for t in times], atol=1e-7
    )
    assert sorted(p.stem for p in (scene / "depth").glob("*.npy")) == ["000000", "000002"]


def test_test_split_and_overwrite(tmp_path):
    src = _tum(tmp_path)
    root = tmp_path / "ds"
    out = prepare(src, root, "desk", split="test", fx=35.0, ext="png", progress=False, log=None)
    assert out == root / "testing"
    names = sorted(p.stem for p in (out / "color").iterdir())
    assert names == ["desk_000000", "desk_000001", "desk_000002"]
    assert sorted(p.stem for p in (out / "depth").iterdir()) == names
    assert not (out / "seg_mask").exists() and not (root / "training").exists()
    assert [r[0] for r in TestFolder(root, dataset="tum").records] == names
    with pytest.raises(FileExistsError, match="desk_000000"):
        prepare(src, root, "desk", split="test", fx=35.0, progress=False, log=None)
    prepare(src, root, "desk", split="test", fx=35.0, frames="1:", ext="png", overwrite=True,
            progress=False, log=None)  # fmt: skip
    assert sorted(p.stem for p in (out / "color").iterdir()) == ["desk_000001", "desk_000002"]
    assert sorted(p.stem for p in (out / "depth").iterdir()) == ["desk_000001", "desk_000002"]


def test_published_calibration_undistorts_and_cam_txt_matches(tmp_path):
    """freiburg1 in rgb.txt -> TUM's K and distortion; dots rendered through the distorted
    lens land where the written cam.txt projects their 3D points in the written images."""
    (fx, fy, cx, cy), dist = TUM_CALIBRATION["1"]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    xs, ys = np.meshgrid(np.linspace(-0.5, 0.5, 5), np.linspace(-0.38, 0.38, 4))
    X = np.c_[xs.ravel(), ys.ravel(), np.ones(xs.size)] * 2.0  # on a plane 2 m away
    px, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, np.array(dist))
    img = blob_image(px[:, 0], (480, 640))
    src = write_tum(
        tmp_path / "rec", R_T[:2], D_T[:2], images=[img, img],
        header="# file: 'rgbd_dataset_freiburg1_desk.bag'", size=(480, 640),
    )  # fmt: skip
    lines = []
    scene = prepare(src, tmp_path / "ds", "fr1", split="val", image_size=(240, 320), ext="png",
                    progress=False, log=lines.append)  # fmt: skip
    assert any("TUM freiburg1 published calibration" in s for s in lines)
    assert any("undistorting" in s for s in lines)

    def error(scene):
        K_out = np.loadtxt(scene / "cam.txt")
        out = cv2.imread(str(scene / "000000.png"))
        uv = (K_out @ X.T).T
        uv = uv[:, :2] / uv[:, 2:]
        return max(np.hypot(*np.subtract(centroid(out, u, v), (u, v))) for u, v in uv)

    assert error(scene) < 0.2  # pixels: well under the control's miss below
    # control: the same K without undistortion misplaces the dots near the borders
    control = prepare(src, tmp_path / "ds", "nodist", split="val", K=K, image_size=(240, 320),
                      ext="png", progress=False, log=None)  # fmt: skip
    assert error(control) > 1.0


def _square_depth(centres, size=(480, 640)) -> np.ndarray:
    """uint16 depth: 1 m, with a 5x5 square at 2 m around each (u, v) in ``centres``."""
    d = np.full(size, 5000, np.uint16)
    for u, v in centres:
        d[v - 2 : v + 3, u - 2 : u + 3] = 10000
    return d


@pytest.mark.parametrize("undistort_depth", [False, True])
def test_registered_depth_is_moved_not_undistorted_by_default(tmp_path, undistort_depth):
    """Squares of far depth near two corners of a freiburg1 depth image: by default each moves
    only by the change of pinhole camera K -> the written K' (K' K^-1 p); with undistort_depth
    as a colour pixel there would (OpenCV's undistortPoints into K'), several pixels apart."""
    (fx, fy, cx, cy), dist = TUM_CALIBRATION["1"]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    centres = [(540, 400), (100, 80)]
    depth = _square_depth(centres)
    src = write_tum(
        tmp_path / "rgbd_dataset_freiburg1_desk", R_T[:2], D_T[:2], depths=[depth, depth],
        size=(480, 640),
    )  # fmt: skip
    lines = []
    scene = prepare(src, tmp_path / "ds", "d", split="val", undistort_depth=undistort_depth,
                    progress=False, log=lines.append)  # fmt: skip
    said = "GT depth: " + ("remapped" if undistort_depth else "not undistorted")
    assert any(s.startswith(said) for s in lines)
    K_out = np.loadtxt(scene / "cam.txt")  # at the source size: the undistorted camera K'
    d = np.load(scene / "depth" / "000000.npy")
    assert set(np.unique(d)) == {np.float32(1.0), np.float32(2.0)}  # nearest: no blends
    for u, v in centres:
        moved = (K_out @ np.linalg.inv(K) @ [u, v, 1])[:2]
        undistorted = cv2.undistortPoints(np.array([[[u, v]]], float), K, np.array(dist),
                                          P=K_out)[0, 0]  # fmt: skip
        assert np.hypot(*(moved - undistorted)) > 5
        want = undistorted if undistort_depth else moved
        got = centroid((d == 2.0).astype(np.float64), *want)
        assert np.hypot(*np.subtract(got, want)) < 0.75


def test_published_calibration_needs_its_image_size(tmp_path):
    src = write_tum(tmp_path / "rgbd_dataset_freiburg2_xyz", R_T[:2], D_T[:2])
    with pytest.raises(DatasetError, match=r"freiburg2 .* is for 640x480 images, these are 40x30"):
        prepare(src, tmp_path / "ds", "x", progress=False, log=None)
    assert not (tmp_path / "ds/training/x").exists()


def _realsense(folder, order=(2, 0, 1, 3)):
    """associations.txt 't rgb/x.png t depths/y.png' (times not increasing), depth in mm."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "depths").mkdir()
    lines = []
    for k in order:
        cv2.imwrite(str(folder / f"rgb/rgb{k:05d}.png"), texture(k))
        cv2.imwrite(str(folder / f"depths/depth{k:05d}.png"), np.full(SIZE, 1000 + k, np.uint16))
        lines.append(f"0.0{7 - k} rgb/rgb{k:05d}.png 0.0{7 - k} depths/depth{k:05d}.png")
    (folder / "associations.txt").write_text("\n".join(lines))  # no final newline
    return folder


def test_association_file_layout(tmp_path):
    src = _realsense(tmp_path / "rs")
    root = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"holds no intrinsics; give --cam .*--fx .*--fov"):
        prepare(src, root, "rs", depth_scale=1000, progress=False, log=None)
    lines = []
    scene = prepare(src, root, "rs", split="val", depth_scale=1000, fov=60, ext="png",
                    progress=False, log=lines.append)  # fmt: skip
    assert "format: tum (auto: associations.txt)" in lines
    assert any("not increasing: no times.txt" in s for s in lines)
    assert not (scene / "times.txt").exists() and not (scene / "poses.txt").exists()
    for i, k in enumerate((2, 0, 1, 3)):  # in the file's order
        np.testing.assert_allclose(np.load(scene / "depth" / f"{i:06d}.npy"), (1000 + k) / 1000)
        np.testing.assert_array_equal(cv2.imread(str(scene / f"{i:06d}.png")), texture(k))


def test_lists_that_cannot_be_associated(tmp_path):
    src = write_tum(tmp_path / "rec", R_T, [t + 1.0 for t in R_T])
    with pytest.raises(DatasetError, match=r"rgb\.txt and .*depth\.txt: no RGB image has a depth"):
        prepare(src, tmp_path / "ds", "x", fx=30, progress=False, log=None)
    # a wider --max-dt pairs them
    prepare(src, tmp_path / "ds", "x", fx=30, max_dt=1.5, progress=False, log=None)


def test_trajectory_covering_no_frame(tmp_path):
    src = write_tum(tmp_path / "rec", R_T, D_T, gt_range=(T0 + 5, T0 + 6))
    with pytest.raises(DatasetError, match=r"groundtruth\.txt: covers none of the frame times"):
        prepare(src, tmp_path / "ds", "x", fx=30, progress=False, log=None)
    scene = prepare(src, tmp_path / "ds", "x", fx=30, poses=False, progress=False, log=None)
    assert not (scene / "poses.txt").exists() and len(list(scene.glob("*.jpg"))) == 5


def test_bad_list_line_and_unreadable_image(tmp_path):
    src = _tum(tmp_path)
    root = tmp_path / "ds"
    (root / "training").mkdir(parents=True)
    (root / "training/train.txt").write_text("old\n")
    bad = src / f"rgb/{R_T[2]:.6f}.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match=rf"{bad.name}: cannot be read as an image"):
        prepare(src, root, "x", fx=30, progress=False, log=None)
    assert sorted(p.name for p in (root / "training").iterdir()) == ["train.txt"]  # untouched
    assert (root / "training/train.txt").read_text() == "old\n"
    with open(src / "depth.txt", "a") as f:
        f.write("1305031460.0 depth/x.png extra\n")
    with pytest.raises(DatasetError, match=r"depth\.txt: line \d+ has 3 fields"):
        prepare(src, root, "x", fx=30, progress=False, log=None)
