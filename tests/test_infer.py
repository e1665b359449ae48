"""scdepth-infer: aspect-kept network input, depth at the source resolution, the side-by-side
video, and clear errors for bad input."""

import cv2
import numpy as np
import pytest
import torch

from scdepth import checkpoint, config, infer
from scdepth.cli import infer as infer_cli
from scdepth.data.transforms import MEAN, STD
from scdepth.models import DepthNet


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained checkpoint as the trainer writes it (training size 64x64)."""
    cfg = config.apply(config.Config(), {"image_size": [64, 64]}, "test").validate()
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.manual_seed(0)
    checkpoint.save({"config": config.to_dict(cfg), "depth_net": DepthNet(18).state_dict()}, path)
    return path


def write_video(path, n, size, fps=12.0):
    h, w = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(n):
        vw.write(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    vw.release()
    return path


def write_folder(folder, n, size):
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), rng.integers(0, 256, (*size, 3), np.uint8))
    return folder


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


def test_fit_keeps_aspect_and_pads():
    kitti = infer.Fit.of((376, 1241), (96, 320))
    assert kitti.inner == (96, 317) and kitti.pad == (0, 0, 1, 2)
    assert kitti.describe() == (
        "input 1241x376 -> network 320x96 (resized to 317x96, padded 3 columns); "
        "depth written at 1241x376 (sizes W x H)"
    )
    portrait = infer.Fit.of((640, 480), (96, 320))  # tall frame: columns padded
    assert portrait.inner == (96, 72) and sum(portrait.pad) == 320 - 72
    wide = infer.Fit.of((100, 1000), (64, 64))  # wider than the network: rows padded
    assert wide.inner == (6, 64) and wide.pad[:2] == (29, 29)
    exact = infer.Fit.of((192, 640), (96, 320))
    assert exact.inner == (96, 320) and exact.pad == (0, 0, 0, 0)
    assert "padded 0 rows" in exact.describe()


def test_depth_lines_up_with_the_frame(tmp_path, monkeypatch):
    """A stand-in model whose depth is the input's brightness: the written depth must be the
    source frame's brightness at the source resolution (padding cut, nothing shifted)."""
    h, w = 50, 130  # wider than the 64x64 network: resized to 25x64, 39 rows of padding
    yy, xx = np.mgrid[:h, :w]
    grey = (40 + 160 * (xx / w) * (yy > h // 2)).astype(np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.repeat(grey[..., None], 3, 2))

    def brightness(img):
        assert img.shape == (1, 3, 64, 64)
        return (img[:, :1] * STD + MEAN) * 255

    monkeypatch.setattr(checkpoint, "load_depth_model", lambda path, device: (brightness, (64, 64)))
    logs = []
    assert infer.run("x.pt", folder, tmp_path / "out", progress=False, log=logs.append) == 1
    depth = np.load(tmp_path / "out" / "a.npy")
    assert depth.shape == (h, w) and depth.dtype == np.float32
    err = np.abs(depth - grey)
    # away from the brightness edge the depth follows the frame closely (resampled twice)
    edge = np.abs(np.arange(h) - h // 2) < 4
    assert np.median(err) < 2 and np.percentile(err[~edge], 95) < 8
    assert logs == ["input 130x50 -> network 64x64 (resized to 64x25, padded 39 rows); "
                    "depth written at 130x50 (sizes W x H)"]  # fmt: skip


def test_video_in_depth_and_side_by_side_video_out(ckpt, tmp_path, capsys):
    src = write_video(tmp_path / "in.mp4", 5, (48, 80), fps=12.0)
    out, video = tmp_path / "depth", tmp_path / "sbs.mp4"
    args = [str(ckpt), str(src), "--out", str(out), "--video-out", str(video), "--no-progress"]
    assert infer_cli.main([*args, "--size", "64", "96"]) == 0
    err = capsys.readouterr().err
    assert "input 80x48 -> network 96x64 (resized to 96x58, padded 6 rows)" in err
    assert "video" in err and "12 fps" in err
    npys = sorted(out.glob("*.npy"))
    assert [p.stem for p in npys] == [f"{i:06d}" for i in range(5)]
    for p in npys:
        d = np.load(p)
        assert d.shape == (48, 80) and np.isfinite(d).all() and (d > 0).all()
        assert cv2.imread(str(p.with_suffix(".png"))).shape == (48, 80, 3)
    frames, fps = read_video(video)
    assert len(frames) == 5 and fps == pytest.approx(12.0)
    assert frames[0].shape == (48, 160, 3)  # frame | depth
    assert not list(tmp_path.glob(".*"))  # no temporaries left


def test_folder_to_video_at_odd_size(ckpt, tmp_path, capsys):
    """Odd sizes are made even for the codec; the default network input is the training
    size; a folder's video runs at 10 fps."""
    src = write_folder(tmp_path / "frames", 3, (45, 71))
    video = tmp_path / "sbs.mp4"
    assert infer_cli.main([str(ckpt), str(src), "--video-out", str(video), "--no-progress"]) == 0
    assert "network 64x64 (resized to 64x41, padded 23 rows)" in capsys.readouterr().err
    frames, fps = read_video(video)
    assert len(frames) == 3 and frames[0].shape == (44, 140, 3) and fps == pytest.approx(10.0)


def test_huge_frames_are_downscaled_in_the_video(tmp_path, monkeypatch):
    monkeypatch.setattr(infer, "MAX_VIDEO_WIDTH", 100)
    monkeypatch.setattr(
        checkpoint, "load_depth_model", lambda p, d: (lambda x: 1 + x[:, :1] ** 2, (32, 32))
    )
    src = write_folder(tmp_path / "frames", 2, (60, 100))
    logs = []
    video = tmp_path / "v.mp4"
    infer.run("x.pt", src, video_out=video, progress=False, log=logs.append)
    assert "video" in logs[-1] and "each half resized from 100x60" in logs[-1]
    frames, _ = read_video(video)
    assert len(frames) == 2 and frames[0].shape == (30, 100, 3)


def test_a_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def model(x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return torch.ones(1, 1, *x.shape[2:])

    monkeypatch.setattr(checkpoint, "load_depth_model", lambda p, d: (model, (32, 32)))
    src = write_folder(tmp_path / "frames", 4, (20, 30))
    with pytest.raises(RuntimeError, match="boom"):
        infer.run("x.pt", src, tmp_path / "out", video_out=tmp_path / "v.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def _error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        infer_cli.main([*argv, "--no-progress"])
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_input_gets_clear_errors(ckpt, tmp_path, capsys):
    frames = write_folder(tmp_path / "frames", 2, (32, 40))
    out = str(tmp_path / "out")
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"not a video" * 100)
    assert f"{garbage}: OpenCV cannot open it as a video" in _error(
        capsys, [str(ckpt), str(garbage), "--out", out]
    )
    (tmp_path / "empty").mkdir()
    assert f"{tmp_path / 'empty'}: no .jpg, .jpeg, .png, .bmp images" in _error(
        capsys, [str(ckpt), str(tmp_path / "empty"), "--out", out]
    )
    assert "no such video file or image folder" in _error(
        capsys, [str(ckpt), str(tmp_path / "nope"), "--out", out]
    )
    for size in (["50", "64"], ["0", "64"], ["-32", "64"]):
        assert "--size must be H W, positive multiples of 32" in _error(
            capsys, [str(ckpt), str(frames), "--out", out, "--size", *size]
        )
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"\x00" * 64)
    assert f"checkpoint {fake}" in _error(capsys, [str(fake), str(frames), "--out", out])
    assert "give --out" in _error(capsys, [str(ckpt), str(frames)])
    assert "must be an .mp4" in _error(
        capsys, [str(ckpt), str(frames), "--video-out", str(tmp_path / "v.avi")]
    )
    assert not (tmp_path / "out").exists()


def test_existing_outputs_are_kept_unless_overwrite(ckpt, tmp_path, capsys):
    frames = write_folder(tmp_path / "frames", 2, (32, 40))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "f00.npy").write_bytes(b"old")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"my video")
    assert "--out" in _error(capsys, [str(ckpt), str(frames), "--out", str(out)])
    assert "--video-out" in _error(capsys, [str(ckpt), str(frames), "--video-out", str(video)])
    assert (out / "f00.npy").read_bytes() == b"old" and video.read_bytes() == b"my video"
    argv = [str(ckpt), str(frames), "--out", str(out), "--video-out", str(video), "--overwrite"]
    assert infer_cli.main([*argv, "--no-progress"]) == 0
    assert np.load(out / "f00.npy").shape == (32, 40) and (out / "notes.txt").read_text() == "mine"
    assert len(read_video(video)[0]) == 2
