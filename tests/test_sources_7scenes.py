"""7-Scenes importer: frame order, depth in millimetres with both 'no reading' values, the
camera-to-world poses, intrinsics from the file or the published calibration, refusals."""

import numpy as np
import pytest
from source_fixtures import sevenscenes_depth_mm, sevenscenes_pose, write_sevenscenes

from scdepth.data.layout import DatasetError, read_intrinsics
from scdepth.data.poses import read_poses
from scdepth.data.prepare import prepare
from scdepth.data.sources import detect
from scdepth.data.sources.sevenscenes import SEVENSCENES_K

K_FILE = np.array([[30.0, 0, 19.5], [0, 31.0, 14.5], [0, 0, 1]])  # at the fixture's 40x30


def test_auto_detects_and_imports_val_scene(tmp_path):
    # frame numbers that sort differently as strings would still be in order: 8, 9, 10, 11
    src = write_sevenscenes(tmp_path / "seq-01", numbers=[8, 9, 10, 11], K=K_FILE)
    assert detect(src)[0] == "7scenes"
    lines = []
    scene = prepare(src, tmp_path / "ds", "kitchen", split="val", progress=False,
                    log=lines.append)  # fmt: skip
    assert "format: 7scenes" in lines[0]
    frames = sorted(p.name for p in scene.glob("*.jpg"))
    assert frames == ["000000.jpg", "000001.jpg", "000002.jpg", "000003.jpg"]
    np.testing.assert_allclose(read_intrinsics(scene / "cam.txt"), K_FILE, atol=1e-6)
    poses = read_poses(scene / "poses.txt")
    for k, n in enumerate([8, 9, 10, 11]):
        np.testing.assert_allclose(poses[k], sevenscenes_pose(n), atol=1e-6)
    for k, n in enumerate([8, 9, 10, 11]):
        d = np.load(scene / "depth" / f"{k:06d}.npy")
        want = sevenscenes_depth_mm(n).astype(np.float32) / 1000
        want[0, 1] = 0  # 65535 is "no reading", like 0
        np.testing.assert_array_equal(d, want)


def test_published_calibration_scaled_to_the_output_size(tmp_path):
    """Without camera-intrinsics.txt the published 640x480 calibration applies, and only to
    640x480 frames: the fixture's 40x30 frames are refused with a pointer to --fx/--cam."""
    src = write_sevenscenes(tmp_path / "seq", numbers=range(3))
    with pytest.raises(DatasetError, match="640x480 images, these are 40x30"):
        prepare(src, tmp_path / "ds", "s", format="7scenes", progress=False, log=None)
    scene = prepare(src, tmp_path / "ds", "s", format="7scenes", fx=20.0, progress=False,
                    log=None, image_size=(15, 20))  # fmt: skip
    K = read_intrinsics(scene / "cam.txt")
    assert K[0, 0] == pytest.approx(10.0)  # half the width: half the focal length
    assert SEVENSCENES_K[0, 0] == 585.0


def test_intrinsics_in_the_scene_folder_apply_to_its_sequences(tmp_path):
    np.savetxt(tmp_path / "camera-intrinsics.txt", K_FILE)
    src = write_sevenscenes(tmp_path / "seq-02")
    scene = prepare(src, tmp_path / "ds", "s", progress=False, log=None)
    np.testing.assert_allclose(read_intrinsics(scene / "cam.txt"), K_FILE, atol=1e-6)


def test_lost_tracking_frames_are_left_out(tmp_path):
    inf_pose = "\n".join(["-inf -inf -inf -inf"] * 4) + "\n"
    src = write_sevenscenes(tmp_path / "seq", numbers=range(4), K=K_FILE,
                            pose_text={2: inf_pose})  # fmt: skip
    lines = []
    scene = prepare(src, tmp_path / "ds", "s", split="val", progress=False, log=lines.append)
    assert any("1 frames with a non-finite pose" in s for s in lines)
    assert sorted(p.stem for p in scene.glob("*.jpg")) == ["000000", "000001", "000002"]
    np.testing.assert_allclose(read_poses(scene / "poses.txt")[2], sevenscenes_pose(3), atol=1e-6)


@pytest.mark.parametrize(
    "pose_text, match",
    [
        ("1 0 0\n0 1 0\n0 0 1\n", "expected a 4x4 pose"),
        ("a b c d\n" * 4, "cannot parse"),
        ("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "not a rigid transform"),
    ],
)
def test_bad_pose_file_is_named(tmp_path, pose_text, match):
    src = write_sevenscenes(tmp_path / "seq", numbers=range(3), K=K_FILE,
                            pose_text={1: pose_text})  # fmt: skip
    with pytest.raises(DatasetError, match=match) as e:
        prepare(src, tmp_path / "ds", "s", format="7scenes", progress=False, log=None)
    assert "frame-000001.pose.txt" in str(e.value)
    assert not (tmp_path / "ds").exists()  # nothing half-written


def test_missing_depth_is_named_for_splits_that_write_it(tmp_path):
    src = write_sevenscenes(tmp_path / "seq", numbers=range(3), K=K_FILE)
    (src / "frame-000001.depth.png").unlink()
    with pytest.raises(DatasetError, match="frame-000001.depth.png: missing"):
        prepare(src, tmp_path / "ds", "s", split="test", progress=False, log=None)
    # training needs no GT depth: the frames are imported without it
    scene = prepare(src, tmp_path / "ds", "s", split="train", static_threshold=0,
                    progress=False, log=None)  # fmt: skip
    assert len(list(scene.glob("*.jpg"))) == 3 and not (scene / "depth").exists()


def test_folder_without_frames_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no frame-NNNNNN.color.png"):
        prepare(tmp_path / "empty", tmp_path / "ds", "s", format="7scenes", progress=False,
                log=None)  # fmt: skip
