"""Up-front layout checks: every malformed case raises DatasetError naming the file."""

import numpy as np
import pytest
from data_fixtures import make_layout, make_testing, write_scene

from scdepth.data.folders import TestFolder, TrainFolder, ValFolder
from scdepth.data.layout import (
    DatasetError,
    UnreadableFrame,
    list_files,
    validate_layout,
    validate_testing,
)


@pytest.fixture
def root(tmp_path):
    return make_layout(tmp_path / "ds")


def test_valid_layout_lists_scenes(root):
    scenes = validate_layout(root, "train")
    assert [s.name for s in scenes] == ["s0", "s1"]
    assert len(scenes[0].frames) == len(scenes[0].pseudo) == 7
    assert scenes[0].size == (32, 40)
    val = validate_layout(root, "val", sequence_length=None, require_gt=True)
    assert all(d is not None for d in val[0].depth)
    item = TrainFolder(root, split="val", image_size=(16, 24))[0]  # val scenes as sequences
    assert item["pseudo_depth"].shape == (1, 16, 24)


def _raises(root, match, **kw):
    with pytest.raises(DatasetError, match=match):
        TrainFolder(root, image_size=(16, 24), **kw)


def test_missing_cam(root):
    (root / "training/s1/cam.txt").unlink()
    _raises(root, r"s1/cam\.txt: missing")


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 0 0\n0 1 0\n", "must be 3x3, got 6"),
        ("nan 0 1\n0 1 1\n0 0 1\n", "non-finite"),
        ("-5 0 1\n0 5 1\n0 0 1\n", "fx and fy must be > 0"),
        ("5 0 1\n0 5 1\n0 0 0\n", "invertible"),
        ("five 0 1\n0 5 1\n0 0 1\n", "cannot parse"),
    ],
)
def test_bad_intrinsics(root, text, match):
    (root / "training/s0/cam.txt").write_text(text)
    _raises(root, r"s0/cam\.txt: .*" + match)


def test_corrupt_image_signature(root):
    (root / "training/s1/000003.png").write_bytes(b"this is not a png")
    _raises(root, r"s1/000003\.png: not a \.png file")


def test_empty_image_file(root):
    (root / "training/s0/000002.png").write_bytes(b"")
    _raises(root, r"s0/000002\.png: file is empty")


def test_corrupt_first_frame_body_is_decoded(root):
    path = root / "training/s0/000000.png"
    path.write_bytes(path.read_bytes()[:40])  # valid signature, truncated body
    _raises(root, r"s0/000000\.png")


def test_pseudo_depth_count(root):
    (root / "training/s0/leres_depth/000004.png").unlink()
    _raises(root, r"s0/leres_depth: 6 pseudo-depth PNGs for 7 frames")
    TrainFolder(root, image_size=(16, 24), use_pseudo_depth=False)  # fine without it


def test_missing_pseudo_depth_says_how_to_fill_it(tmp_path):
    root = make_layout(tmp_path / "ds", pseudo=False)
    with pytest.raises(DatasetError) as e:
        TrainFolder(root, image_size=(16, 24), use_pseudo_depth=True)
    msg = str(e.value)
    assert msg.startswith(f"{root}/training/s0/leres_depth: 0 pseudo-depth PNGs for 7 frames")
    assert f"`scdepth-pseudo {root} --model MODEL.ts`" in msg and "method=sc_depth_v1" in msg
    assert not (root / "training/s0/leres_depth").exists()  # the check creates nothing
    scenes = validate_layout(root, "train", use_pseudo_depth=False)
    assert [s.pseudo for s in scenes] == [None, None]


def test_empty_scene(root):
    write_scene(root / "training/s2", n_frames=0)
    (root / "training/train.txt").write_text("s0\ns2\n")
    _raises(root, r"s2: empty scene")


def test_scene_list_names_missing_scene(root):
    (root / "training/train.txt").write_text("s0\nnope\n")
    _raises(root, r"train\.txt: names scene 'nope'")


def test_missing_training_and_lists(tmp_path, root):
    _raises(tmp_path / "nothing", r"training: missing")
    (root / "training/train.txt").unlink()
    _raises(root, r"train\.txt: missing")
    (root / "training/train.txt").write_text("\n")
    _raises(root, r"train\.txt: lists no scenes")


def test_too_few_frames(root):
    _raises(
        root,
        r"s0: 7 frames, but sequence_length 5 with skip_frames 2 needs 9",
        sequence_length=5,
        skip_frames=2,
    )
    with pytest.raises(ValueError, match="sequence_length must be odd"):
        TrainFolder(root, image_size=(32, 32), sequence_length=4)


def test_frame_index(root):
    (root / "training/s0/frame_index.txt").write_text("0 2 4 6\n")
    ds = TrainFolder(root, image_size=(16, 24), augment=False)
    assert len(ds.scenes[0].frames) == 4
    (root / "training/s0/frame_index.txt").write_text("0 9\n")
    _raises(root, r"frame_index\.txt: index 9 outside 0\.\.6")


def test_val_needs_gt(root):
    import shutil

    shutil.rmtree(root / "training/v0/depth")
    with pytest.raises(DatasetError, match=r"val\.txt: no val frame has GT"):
        ValFolder(root)


def test_testing_scores_the_images_with_gt_depth(tmp_path):
    root = make_testing(tmp_path / "t", n=3, masks=False)
    (root / "testing/depth/img2.npy").unlink()  # e.g. a scene imported from a video
    folder = TestFolder(root)
    assert [r[0] for r in folder.records] == ["img0", "img1"]
    assert [p.name for p in folder.unscored] == ["img2.png"]
    for p in (root / "testing/depth").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=r"testing/depth: no GT depth for any test image"):
        TestFolder(root)
    with pytest.raises(DatasetError, match=r"testing/color: missing"):
        TestFolder(tmp_path)


def test_testing_seg_mask_is_all_or_nothing(tmp_path):
    """No seg_mask/ (static scenes) is fine; a seg_mask/ missing some masks is an error."""
    bare = make_testing(tmp_path / "bare", n=3, masks=False)
    assert [s.mask for s in validate_testing(bare)] == [None] * 3
    root = make_testing(tmp_path / "t", n=3)
    (root / "testing/seg_mask/img1.png").unlink()
    with pytest.raises(DatasetError, match=r"testing/seg_mask: no mask for img1\.png"):
        TestFolder(root)


def test_corruption_after_the_check(root):
    """A body corrupted past the header passes the cheap check, fails full_check, and
    surfaces at load time as UnreadableFrame naming the file."""
    path = root / "training/s1/000005.png"
    path.write_bytes(path.read_bytes()[:60])
    ds = TrainFolder(root, image_size=(16, 24))
    _raises(root, r"s1/000005\.png", full_check=True)
    idx = next(i for i, (si, t) in enumerate(ds.samples) if si == 1 and t == 5)
    with pytest.raises(UnreadableFrame, match=r"s1/000005\.png") as e:
        ds[idx]
    assert e.value.path.endswith("000005.png")
    assert np.isfinite(ds[0]["tgt"].numpy()).all()  # other samples still load


def test_frames_of_a_folder_are_listed_in_natural_order(tmp_path):
    """Every folder of frames (scenes, imports, inference) is read frame_2 before frame_10."""
    for name in ("frame_10.png", "frame_2.png", "frame_1.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_files(tmp_path)] == ["frame_1.png", "frame_2.png", "frame_10.png"]
