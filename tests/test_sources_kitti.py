"""KITTI odometry and raw importers: calib -> cam.txt, poses moved to the used camera, the
velodyne projection on a hand-computed point, and their refusals."""

import cv2
import numpy as np
import pytest
from source_fixtures import (
    AXES,
    P_RECT_02,
    SIZE,
    kitti_calib_P,
    kitti_P,
    kitti_poses,
    texture,
    write_kitti_odometry,
    write_kitti_raw,
)

from scdepth.data.layout import DatasetError
from scdepth.data.poses import read_poses, read_times
from scdepth.data.prepare import prepare
from scdepth.data.sources.kitti import velodyne_depth

# Hand-computed: velodyne (10, 1, -0.5) -> camera 0 (-0.9, 0.3, 10.3) -> P_rect_02 gives
# (120.5, 184.5, 10.305): u = 11.69, v = 17.90, depth 10.305. (15.15, 1.45, -0.65) lands at
# (11.55, 17.91), on the same pixel either way, at 15.455 (farther, so it loses);
# (-10, 1, -0.5) is behind, and (10, -50, 0) is right of the image. (10, 2.18, -0.5) gives
# u = 2.5 / 10.305 = 0.24 and (10, -1.88, -0.5) u = 408.5 / 10.305 = 39.64, both at v = 17.90
# and depth 10.305. Nearest pixel: (v, u) = (18, 12), (18, 0); u = 40 is outside the 40-wide
# image. The Eigen-split standard, rounded then minus 1: (17, 11), (17, 39); u = -1 is outside.
POINTS = [[15.15, 1.45, -0.65], [10, 1, -0.5], [-10, 1, -0.5], [10, -50, 0]]
EDGES = [[10, 2.18, -0.5], [10, -1.88, -0.5]]
PIXELS = {"eigen": {(17, 11), (17, 39)}, "nearest": {(18, 12), (18, 0)}}


def _rigid(R, T):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R, T
    return out


@pytest.mark.parametrize("pixels", ["eigen", "nearest"])
@pytest.mark.parametrize(
    "velo_to_cam, R_rect",
    [
        (_rigid(AXES, [0.1, -0.2, 0.3]), np.eye(4)),
        (_rigid(np.eye(3), [0.3, -0.1, 0.2]), _rigid(AXES, [0, 0, 0])),  # R_rect after R|T
    ],
)
def test_velodyne_projection_known_points(velo_to_cam, R_rect, pixels):
    d = velodyne_depth(np.array(POINTS + EDGES), velo_to_cam, R_rect, P_RECT_02, SIZE, pixels)
    assert d.dtype == np.float32 and d.shape == SIZE
    assert set(zip(*np.nonzero(d), strict=True)) == PIXELS[pixels]
    assert d[d > 0] == pytest.approx(10.305, abs=1e-5)


def test_raw_drive_val_and_test(tmp_path):
    drive = write_kitti_raw(tmp_path / "2011_09_26", points=POINTS)
    root = tmp_path / "ds"
    lines = []
    scene = prepare(drive.parent, root, "d1", split="val", image_size=(15, 20), progress=False,
                    log=lines.append)  # fmt: skip
    assert "format: kitti-raw (auto: calib_cam_to_cam.txt (a date folder))" in lines
    assert any("pixels as the Eigen-split standard" in s for s in lines)
    np.testing.assert_allclose(
        np.loadtxt(scene / "cam.txt"), [[50, 0, 9.75], [0, 50, 7.25], [0, 0, 1]], atol=1e-6
    )  # P_rect_02[:, :3] at half size: (c + 0.5) / 2 - 0.5
    assert sorted(p.stem for p in scene.glob("*.jpg")) == ["000000", "000001", "000002"]
    d = np.load(scene / "depth/000001.npy")
    assert d.shape == SIZE and d[17, 11] == pytest.approx(10.305, abs=1e-5)  # source size
    assert np.count_nonzero(d) == 1
    np.testing.assert_allclose(np.diff(read_times(scene / "times.txt", 3)), 0.1, atol=1e-6)
    near = prepare(drive, root, "d2", split="val", kitti_gt="nearest", progress=False, log=None)
    d = np.load(near / "depth/000001.npy")
    assert d[18, 12] == pytest.approx(10.305, abs=1e-5) and np.count_nonzero(d) == 1
    with pytest.raises(ValueError, match=r"--kitti-gt must be one of eigen, nearest, got 'x'"):
        prepare(drive, root, "d3", split="val", kitti_gt="x", progress=False, log=None)
    out = prepare(drive, root, "d1", split="test", progress=False, log=None)  # the drive folder
    assert sorted(p.name for p in (out / "depth").iterdir())[0] == "d1_000000.npy"
    train = prepare(drive, root, "d1t", progress=False, log=None)
    assert not (train / "depth").exists()  # GT only for val/test


def test_raw_needs_drive_choice_and_calib_rows(tmp_path):
    date = tmp_path / "2011_09_26"
    write_kitti_raw(date, "2011_09_26_drive_0001_sync")
    write_kitti_raw(date, "2011_09_26_drive_0002_sync")
    with pytest.raises(DatasetError, match=r"holds 2 drives .* choose one with --sequence"):
        prepare(date, tmp_path / "ds", "x", progress=False, log=None)
    prepare(date, tmp_path / "ds", "x", sequence="2011_09_26_drive_0002_sync", progress=False,
            log=None)  # fmt: skip
    cc = date / "calib_cam_to_cam.txt"
    cc.write_text("".join(s + "\n" for s in cc.read_text().splitlines() if "P_rect_02" not in s))
    with pytest.raises(DatasetError, match=r"calib_cam_to_cam\.txt: no 'P_rect_02:' row"):
        prepare(date, tmp_path / "ds", "y", sequence="2011_09_26_drive_0001_sync",
                progress=False, log=None)  # fmt: skip


def test_odometry_grayscale_with_poses_and_frames(tmp_path):
    write_kitti_odometry(tmp_path / "odo", cameras=("0",), n=6)
    lines = []
    scene = prepare(tmp_path / "odo", tmp_path / "ds", "s05", frames="1:6:2", ext="png",
                    progress=False, log=lines.append)  # fmt: skip
    assert any("image_0 is grayscale: replicated to three channels" in s for s in lines)
    assert sorted(p.stem for p in scene.glob("*.png")) == ["000001", "000003", "000005"]
    img = cv2.imread(str(scene / "000003.png"))
    grey = cv2.cvtColor(texture(3), cv2.COLOR_BGR2GRAY)
    assert (img == grey[..., None]).all()
    np.testing.assert_allclose(np.loadtxt(scene / "cam.txt"), kitti_calib_P("0")[:, :3])
    np.testing.assert_allclose(read_poses(scene / "poses.txt"), kitti_poses(6)[[1, 3, 5]])
    np.testing.assert_allclose(read_times(scene / "times.txt"), [0.1, 0.3, 0.5], atol=1e-9)


# KITTI's P_c = K [I | t_c] (camera c sees camera-0 points shifted by t_c = K^-1 P_c[:, 3]), so
# camera c sits at -t_c in camera 0. By hand from the rows in KITTI_CALIB (f 721.5377,
# cx 609.5593, cy 172.8540): t_z = P[2, 3], t_y = (P[1, 3] - cy t_z) / f,
# t_x = (P[0, 3] - cx t_z) / f. P2: t_z = 0.002745884, t_y = (0.2163791 - 0.474637) / f =
# -0.00035793, t_x = (44.85728 - 1.673779) / f = 0.0598493: camera 2 is 6 cm left of camera 0.
# P3: t_z = 0.002729905, t_y = (2.199936 - 0.471875) / f = 0.0023950,
# t_x = (-339.5242 - 1.664039) / f = -0.472862: camera 3 is 47 cm right of it.
CENTRE_IN_CAM0 = {
    "2": [-0.0598493, 0.00035793, -0.002745884],
    "3": [0.472862, -0.0023950, -0.002729905],
}


@pytest.mark.parametrize("cams, used", [(("0", "2"), "2"), (("3",), "3")])
def test_odometry_colour_camera_poses(tmp_path, cams, used):
    """poses/NN.txt are camera 0's; the colour camera's pose is moved to its own centre."""
    seq = write_kitti_odometry(tmp_path / "odo", cameras=cams, n=3)
    lines = []
    scene = prepare(seq, tmp_path / "ds", "c", progress=False, log=lines.append)  # the sequence
    assert any(f"moved to image_{used}'s camera" in s for s in lines)
    assert cv2.imread(str(scene / "000000.jpg")).std(axis=2).mean() > 1  # colour, not image_0
    np.testing.assert_allclose(np.loadtxt(scene / "cam.txt"), kitti_calib_P(used)[:, :3])
    got = read_poses(scene / "poses.txt", 3)
    cam0 = kitti_poses(3)
    np.testing.assert_allclose(got[:, :3, :3], cam0[:, :3, :3])
    want = cam0[:, :3, 3] + cam0[:, :3, :3] @ np.array(CENTRE_IN_CAM0[used])
    np.testing.assert_allclose(got[:, :3, 3], want, atol=1e-6)


def test_odometry_refusals(tmp_path):
    root = tmp_path / "ds"
    seq = write_kitti_odometry(tmp_path / "odo", cameras=("2",), n=5)
    write_kitti_odometry(tmp_path / "odo", seq="06", cameras=("2",), n=2)
    with pytest.raises(DatasetError, match=r"holds 2 sequences \(05, 06\)"):
        prepare(tmp_path / "odo", root, "x", progress=False, log=None)
    with pytest.raises(DatasetError, match=r"no sequence '07'"):
        prepare(tmp_path / "odo", root, "x", sequence="07", progress=False, log=None)
    poses = tmp_path / "odo/poses/05.txt"
    poses.write_text("".join(poses.read_text().splitlines(keepends=True)[:4]))
    with pytest.raises(DatasetError, match=r"poses/05\.txt: 4 poses for 5 frames"):
        prepare(tmp_path / "odo", root, "x", sequence="05", progress=False, log=None)
    (seq / "calib.txt").write_text("P0: " + " ".join(map(str, kitti_P().ravel())) + "\n")
    with pytest.raises(DatasetError, match=r"calib\.txt: no 'P2:' row \(needed for image_2\)"):
        prepare(seq, root, "x", poses=False, progress=False, log=None)
    assert not root.exists()
