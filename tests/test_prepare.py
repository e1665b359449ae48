"""scdepth-prepare on a short generated video (MJPG in .avi) and on an image folder."""

import cv2
import numpy as np
import pytest

from scdepth.data.dataset import TrainFolder
from scdepth.data.prepare import frame_difference, intrinsics_from_fov, main, prepare

SIZE = (48, 64)


def _frames():
    """12 frames of a texture sliding right, where frames 4-6 repeat frame 3 (camera still)."""
    tex = cv2.resize(
        np.random.default_rng(0).integers(0, 256, (12, 40, 3), np.uint8),
        (200, SIZE[0]),
        interpolation=cv2.INTER_CUBIC,
    )
    shifts = [0, 4, 8, 12, 12, 12, 12, 16, 20, 24, 28, 32]
    return [np.ascontiguousarray(tex[:, s : s + SIZE[1]]) for s in shifts]


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, SIZE[::-1])
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for f in _frames():
        writer.write(f)
    writer.release()
    return path


def test_frame_difference_has_no_uint8_wraparound():
    a, b = np.full((4, 4), 3, np.uint8), np.full((4, 4), 5, np.uint8)
    assert frame_difference(a, b) == 2.0  # in uint8, 3 - 5 = 254
    assert frame_difference(b, a) == 2.0


def test_video_to_scene(video, tmp_path):
    root = tmp_path / "ds"
    K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    scene = prepare(
        video, root, "clip", K=K, image_size=(24, 32), static_threshold=2.0, progress=False
    )
    kept = sorted(p.name for p in scene.glob("*.jpg"))
    assert kept == [f"{i:06d}.jpg" for i in (0, 1, 2, 3, 7, 8, 9, 10, 11)]  # 4-6 were still
    assert cv2.imread(str(scene / kept[0])).shape == (24, 32, 3)
    K2 = np.loadtxt(scene / "cam.txt")
    # half size: fx / 2, centre (c + 0.5) / 2 - 0.5 with pixel centres at integers
    np.testing.assert_allclose(K2, [[25, 0, 15.5], [0, 25, 11.5], [0, 0, 1]], atol=1e-5)
    assert (root / "training/train.txt").read_text() == "clip\n"
    ds = TrainFolder(root, image_size=(24, 32), use_pseudo_depth=False, augment=False)
    assert len(ds) == 9 - 2


def test_image_folder_and_cli(tmp_path, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    for i, f in enumerate(_frames()):
        cv2.imwrite(str(src / f"f{i:03d}.png"), f)
    root = tmp_path / "ds"
    assert (
        main(
            [
                str(src),
                "--root",
                str(root),
                "--scene",
                "a",
                "--fov",
                "90",
                "--ext",
                "png",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "9 frames" in capsys.readouterr().out
    np.testing.assert_allclose(
        np.loadtxt(root / "training/a/cam.txt"), intrinsics_from_fov(90, SIZE), atol=1e-5
    )
    assert intrinsics_from_fov(90, SIZE)[0, 0] == pytest.approx(32.0)
    main(
        [
            str(src),
            "--root",
            str(root),
            "--scene",
            "b",
            "--fx",
            "40",
            "--stride",
            "2",
            "--static-threshold",
            "0",
            "--no-progress",
        ]
    )
    K = np.loadtxt(root / "training/b/cam.txt")
    assert (K[0, 0], K[1, 1], K[0, 2], K[1, 2]) == pytest.approx((40, 40, 31.5, 23.5))
    assert len(list((root / "training/b").glob("*.jpg"))) == 6
    assert (root / "training/train.txt").read_text() == "a\nb\n"


def test_refusals(video, tmp_path, capsys):
    root = tmp_path / "ds"
    main([str(video), "--root", str(root), "--scene", "c", "--fov", "60", "--no-progress"])
    for argv, why in [
        ([str(video), "--root", str(root), "--scene", "c", "--fov", "60"], "not empty"),
        (
            [str(tmp_path / "none.mp4"), "--root", str(root), "--scene", "d", "--fov", "60"],
            "no such video",
        ),
        ([str(video), "--root", str(root), "--scene", "e", "--fov", "500"], "--fov"),
        ([str(video), "--root", str(root), "--scene", "f", "--fx", "-3"], "fx and fy"),
        ([str(video), "--root", str(root), "--scene", "g", "--cy", "3", "--fov", "60"], "--fx"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert why in capsys.readouterr().err
    assert (
        main(
            [
                str(video),
                "--root",
                str(root),
                "--scene",
                "c",
                "--fov",
                "60",
                "--overwrite",
                "--no-progress",
            ]
        )
        == 0
    )
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(Exception, match="cannot open it as a video"):
        prepare(tmp_path / "junk.avi", root, "h", fov=60, progress=False)
