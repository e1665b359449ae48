"""Bonn RGB-D Dynamic: the marker's trajectory moved to the camera and the built-in
calibration, each against numbers worked out by hand from the dataset's published values."""

import cv2
import numpy as np
import pytest
from source_fixtures import T0, blob_image, centroid, write_tum

from scdepth.data.layout import DatasetError
from scdepth.data.poses import read_poses
from scdepth.data.prepare import prepare
from scdepth.data.sources.bonn import BONN_CALIBRATION

BONN = (480, 640)
R_T = [T0 + 0.1, T0 + 0.14]
D_T = [t + 0.005 for t in R_T]


def test_marker_pose_becomes_the_camera_pose(tmp_path):
    """A marker held still, turned 90 deg about z at (1, 2, 3): the camera pose
    T_ros^-1 T_gt T_ros T_m worked out by hand. T_ros swaps y and z and negates x, so
    T_ros Rz(90) T_ros = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]] and T_ros (1, 2, 3) = (-1, 3, 2);
    times T_m: rows (T_m row 3, T_m row 2, -T_m row 1), and R' t_m + (-1, 3, 2) with
    t_m = (0.0113, -0.0098, 0.0111). The published rotation block has norm 1.0593 in every
    column (sqrt(1.0157^2 + 0.0009^2 + 0.3009^2)): its rotation is the block / 1.0593."""
    src = write_tum(tmp_path / "rgbd_bonn_still", R_T, D_T, size=BONN)
    s = np.sin(np.pi / 4)
    (src / "groundtruth.txt").write_text(
        "".join(f"{T0 + 0.01 * k:.4f} 1 2 3 0 0 {s:.12f} {s:.12f}\n" for k in range(30))
    )
    lines = []
    scene = prepare(src, tmp_path / "ds", "b", progress=False, static_threshold=0,
                    log=lines.append)  # fmt: skip
    assert any("marker's pose; moved to the colour camera" in s for s in lines)
    want = np.eye(4)
    want[:3, :3] = (
        np.array(
            [[-0.3009, 0.6147, -0.8085], [0.0009, -0.8431, -0.6413], [-1.0157, -0.1828, 0.2389]]
        )
        / 1.0593
    )
    want[:3, 3] = [0.0111 - 1, -0.0098 + 3, -0.0113 + 2]
    got = read_poses(scene / "poses.txt", 2)  # checks the poses are rigid
    for pose in got:
        np.testing.assert_allclose(pose[:3, 3], want[:3, 3], atol=1e-9)
        np.testing.assert_allclose(pose[:3, :3], want[:3, :3], atol=2e-4)


# Worked by hand through the published lens (x = X/Z, r2 = x^2 + y^2; OpenCV's model with
# k1 0.039903, k2 -0.099343, p1 -0.000730, p2 -0.000144, k3 0): the point (0.8, 0.6, 2) has
# x = 0.4, y = 0.3, r2 = 0.25, radial 1 + 0.039903 r2 - 0.099343 r2^2 = 1.00376681,
# dx = 2 p1 x y + p2 (r2 + 2 x^2) = -0.00025728, dy = p1 (r2 + 2 y^2) + 2 p2 x y = -0.00034846,
# so u = 542.822841 * 0.40124944 + 315.593520 = 533.4009,
# v = 542.576870 * 0.30078158 + 237.756098 = 400.9532; (-0.8, -0.6, 2) likewise (97.5068, 74.1808).
POINTS = np.array([[0.8, 0.6, 2.0], [-0.8, -0.6, 2.0]])
THROUGH_LENS = [(533.4009, 400.9532), (97.5068, 74.1808)]


def test_built_in_calibration_puts_a_known_point_where_cam_txt_says(tmp_path):
    img = blob_image(THROUGH_LENS, BONN)
    src = write_tum(tmp_path / "rgbd_bonn_balloon", R_T, D_T, images=[img, img], size=BONN)
    lines = []
    scene = prepare(src, tmp_path / "ds", "b", split="val", ext="png", progress=False,
                    log=lines.append)  # fmt: skip
    assert any(s.startswith("intrinsics: Bonn RGB-D Dynamic published calibration") for s in lines)

    def error(scene):
        K_out = np.loadtxt(scene / "cam.txt")
        out = cv2.imread(str(scene / "000000.png"))
        uv = [(K_out @ X)[:2] / X[2] for X in POINTS]
        return max(np.hypot(*np.subtract(centroid(out, u, v), (u, v))) for u, v in uv)

    assert error(scene) < 0.2
    # no other sequence name gets Bonn's camera
    other = write_tum(tmp_path / "balloon", R_T, D_T, images=[img, img], size=BONN)
    with pytest.raises(DatasetError, match=r"holds no intrinsics"):
        prepare(other, tmp_path / "ds", "o", progress=False, log=None)
    # control: Bonn's K without its lens leaves the dots where the distortion put them
    (fx, fy, cx, cy), _ = BONN_CALIBRATION
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    control = prepare(other, tmp_path / "ds", "k", split="val", K=K, ext="png", progress=False,
                      log=None)  # fmt: skip
    assert error(control) > 0.4


def test_built_in_calibration_needs_its_image_size(tmp_path):
    src = write_tum(tmp_path / "rgbd_bonn_crowd", R_T, D_T)
    with pytest.raises(DatasetError, match=r"Bonn .* is for 640x480 images, these are 40x30"):
        prepare(src, tmp_path / "ds", "x", progress=False, log=None)
