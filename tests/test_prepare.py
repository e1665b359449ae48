"""scdepth-prepare on a short generated video (MJPG in .avi) and on an image folder."""

import cv2
import numpy as np
import pytest

from scdepth.cli.prepare import main
from scdepth.data.folders import TrainFolder
from scdepth.data.prepare import frame_difference, intrinsics_from_fov, prepare

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


def test_image_folder_in_natural_order(tmp_path):
    """frame_2 comes before frame_10 (a string sort puts frame_10 first)."""
    src = tmp_path / "imgs"
    src.mkdir()
    frames = _frames()
    for n in (10, 2, 1, 9):  # written out of order; frame_n holds frames[n]
        cv2.imwrite(str(src / f"frame_{n}.png"), frames[n])
    scene = prepare(src, tmp_path / "ds", "n", fov=60, ext="png", static_threshold=0,
                    progress=False, log=None)  # fmt: skip
    for i, n in enumerate((1, 2, 9, 10)):
        np.testing.assert_array_equal(cv2.imread(str(scene / f"{i:06d}.png")), frames[n])


def test_help_names_the_gt_conventions(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--kitti-gt {eigen,nearest}" in text and "Eigen-split" in text
    assert "--undistort-depth" in text and "not undistorted, as TUM advises" in text


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


# --- formats, slices, intrinsics, atomic writes ------------------------------------------


def test_auto_detection(tmp_path, video):
    from source_fixtures import write_kitti_odometry, write_kitti_raw, write_tum

    from scdepth.data.sources import detect

    tum = write_tum(tmp_path / "tum", [1.0, 1.1], [1.0, 1.1])
    odo = write_kitti_odometry(tmp_path / "odo")
    raw = write_kitti_raw(tmp_path / "2011_09_26")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "a.png"), _frames()[0])
    assert detect(tum)[0] == "tum"
    assert detect(tmp_path / "odo")[0] == detect(odo)[0] == "kitti-odometry"
    assert detect(raw)[0] == detect(raw.parent)[0] == "kitti-raw"
    assert detect(imgs) == ("folder", "1 images")
    assert detect(video)[0] == "video"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"empty: matches no format.*--format"):
        detect(tmp_path / "empty")
    with pytest.raises(ValueError, match="a single image"):
        detect(imgs / "a.png")


def test_frames_slice_and_stride(tmp_path):
    from scdepth.data.prepare import parse_frames

    assert parse_frames("2:10:3") == slice(2, 10, 3)
    assert parse_frames(":5") == slice(None, 5)
    for bad in ("5", "a:b", "1:5:0"):
        with pytest.raises(ValueError, match="--frames"):
            parse_frames(bad)
    src = tmp_path / "imgs"
    src.mkdir()
    for i, f in enumerate(_frames()):
        cv2.imwrite(str(src / f"f{i:03d}.png"), f)
    scene = prepare(src, tmp_path / "ds", "s", fov=60, frames="1:11:2", stride=2,
                    static_threshold=0, progress=False, log=None)  # fmt: skip
    assert sorted(p.stem for p in scene.glob("*.jpg")) == ["000001", "000005", "000009"]
    with pytest.raises(ValueError, match="no frame selected"):
        prepare(src, tmp_path / "ds", "t", fov=60, frames="20:", progress=False, log=None)
    assert not (tmp_path / "ds/training/t").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"x\.png: cannot be read"):
        prepare(bad, tmp_path / "new_root", "t", fov=60, progress=False, log=None)
    assert not (tmp_path / "new_root").exists()  # nothing left behind, not even ROOT


@pytest.mark.parametrize(
    "crop, out_size, interp",
    [
        ((10, 20, 40, 60), (20, 30), cv2.INTER_AREA),  # crop, then half size
        ((10, 20, 40, 60), (60, 90), cv2.INTER_LINEAR),  # crop, then 1.5x
        (None, (56, 70), cv2.INTER_AREA),  # 0.7x
        (None, (24, 30), cv2.INTER_AREA),  # 0.3x
        (None, (120, 150), cv2.INTER_LINEAR),  # 1.5x
    ],
)
def test_scale_intrinsics_matches_an_actual_resize(crop, out_size, interp):
    """A dot drawn where K projects a 3D point, cut out and resized by cv2.resize, lands where
    the scaled K projects the same point (c * s, ignoring where pixel centres are, would be
    |s - 1| / 2 = 0.15 to 0.35 px off at these scales)."""
    from scdepth.data.transforms import scale_intrinsics

    K = np.array([[100.0, 0, 49.5], [0, 90, 39.5], [0, 0, 1]])
    X = np.array([0.2345, -0.1567, 2.0])
    u, v = (K @ X)[:2] / X[2]
    y, x = np.mgrid[0:80, 0:100]
    img = np.exp(-((x - u) ** 2 + (y - v) ** 2) / (2 * 2.5**2)).astype(np.float32)
    if crop is not None:
        y0, x0, h, w = crop
        img = img[y0 : y0 + h, x0 : x0 + w]
    out = cv2.resize(img, out_size[::-1], interpolation=interp)
    yy, xx = np.mgrid[0 : out_size[0], 0 : out_size[1]]
    landed = ((out * xx).sum() / out.sum(), (out * yy).sum() / out.sum())
    K2 = scale_intrinsics(K, (80, 100), out_size, crop)
    assert landed == pytest.approx((K2 @ X)[:2] / X[2], abs=0.01)


def test_folder_intrinsics_file_and_test_split_without_gt(tmp_path):
    src = tmp_path / "clip"
    src.mkdir()
    for i, f in enumerate(_frames()[:4]):
        cv2.imwrite(str(src / f"{i:03d}.png"), f)
    (src / "intrinsics.txt").write_text("50\n51\n31.5\n23.5\n")
    lines = []
    scene = prepare(src, tmp_path / "ds", "c", image_size=(24, 32), progress=False,
                    log=lines.append)  # fmt: skip
    assert any(s.startswith("intrinsics: intrinsics.txt") for s in lines)
    np.testing.assert_allclose(
        np.loadtxt(scene / "cam.txt"), [[25, 0, 15.5], [0, 25.5, 11.5], [0, 0, 1]], atol=1e-6
    )
    (src / "intrinsics.txt").write_text("50 51 31.5\n")
    with pytest.raises(ValueError, match=r"intrinsics\.txt: expected 4 numbers"):
        prepare(src, tmp_path / "ds", "d", progress=False, log=None)
    (src / "intrinsics.txt").unlink()
    out = prepare(src, tmp_path / "ds", "c", split="test", fx=40, progress=False, log=None)
    assert len(list((out / "color").iterdir())) == 4 and not (out / "depth").exists()


def test_failed_overwrite_keeps_the_old_scene(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i, f in enumerate(_frames()):
        cv2.imwrite(str(src / f"f{i:03d}.png"), f)
    root = tmp_path / "ds"
    prepare(src, root, "a", fov=60, progress=False, log=None)
    prepare(src, root, "b", fov=60, split="val", progress=False, log=None)
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    (src / "f007.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"f007\.png: cannot be read as an image"):
        prepare(src, root, "a", fov=60, overwrite=True, progress=False, log=None)
    after = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert after == before  # old scene, lists, no staging folder left
    assert sorted(p.name for p in (root / "training").iterdir()) == [
        "a",
        "b",
        "train.txt",
        "val.txt",
    ]
    (src / "f007.png").unlink()
    prepare(src, root, "b", fov=60, overwrite=True, progress=False, log=None)  # val -> train
    assert (root / "training/train.txt").read_text() == "a\nb\n"
    assert (root / "training/val.txt").read_text() == ""
