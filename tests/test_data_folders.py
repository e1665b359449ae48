"""TrainFolder / ValFolder / TestFolder on tiny generated data."""

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import make_layout, make_testing, write_scene
from torch.utils.data import DataLoader

from scdepth.data import transforms as T
from scdepth.data.folders import TestFolder, TrainFolder, ValFolder
from scdepth.data.layout import UnreadableFrame


def _norm(v):
    return (v / 255.0 - 0.45) / 0.225


def test_item_shapes_frames_and_normalisation(tmp_path):
    values = [10 * i for i in range(9)]
    make_layout(tmp_path, train=("s0",), val=(), n_frames=9, values=values)
    (tmp_path / "training/val.txt").write_text("s0\n")
    ds = TrainFolder(tmp_path, image_size=(16, 24), skip_frames=2, augment=False)
    assert len(ds) == 9 - 4
    item = ds[1]  # target frame 3, references 1 and 5
    assert set(item) == {"tgt", "refs", "K", "pseudo_depth"}
    assert item["tgt"].shape == (3, 16, 24) and item["tgt"].dtype == torch.float32
    assert item["refs"].shape == (2, 3, 16, 24)
    assert item["K"].shape == (3, 3) and item["K"].dtype == torch.float32
    assert item["pseudo_depth"].shape == (1, 16, 24)
    assert torch.allclose(item["tgt"], torch.full_like(item["tgt"], _norm(30)), atol=1e-6)
    assert torch.allclose(item["refs"][0], torch.full((3, 16, 24), _norm(10)), atol=1e-6)
    assert torch.allclose(item["refs"][1], torch.full((3, 16, 24), _norm(50)), atol=1e-6)
    assert torch.allclose(item["pseudo_depth"], torch.full((1, 16, 24), 4000 / 65535))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["refs"].shape == (2, 2, 3, 16, 24)


def _blob(size, u, v, sigma=2.5):
    yy, xx = np.mgrid[: size[0], : size[1]].astype(np.float32)
    return np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma**2)).astype(np.float32)


def _centroid(img):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return (img * xx).sum() / img.sum(), (img * yy).sum() / img.sum()


@pytest.mark.parametrize(
    "aug, out_size",
    [
        (T.Augmentation(), (48, 64)),
        (T.Augmentation(flip=True), (48, 64)),
        (T.Augmentation(flip=False, zoom=(1.1, 1.13), crop=(0.3, 0.8)), (48, 64)),
        (T.Augmentation(flip=True, zoom=(1.15, 1.05), crop=(1.0, 0.0)), (48, 64)),
        (T.Augmentation(flip=True, zoom=(1.12, 1.12), crop=(0.5, 0.5)), (90, 120)),  # enlarge
    ],
)
def test_intrinsics_follow_augmentation(aug, out_size):
    """Project a known 3-D point into the stored frame, augment the picture, and find it where
    the adjusted K projects it (the flipped picture shows the mirrored world, x -> -x)."""
    in_size = (60, 80)
    K = np.array([[50.0, 0, 41.3], [0, 55.0, 28.7], [0, 0, 1]])
    P = np.array([0.12, -0.05, 1.0])
    u, v, _ = K @ P / P[2]
    out = T.apply(_blob(in_size, u, v), out_size, aug)
    K2 = T.adjust_intrinsics(K, in_size, out_size, aug)
    P2 = P * np.array([-1 if aug.flip else 1, 1, 1])
    u2, v2, _ = K2 @ P2 / P2[2]
    cu, cv = _centroid(out)
    assert out.shape == out_size
    assert abs(cu - u2) < 0.1 and abs(cv - v2) < 0.1, (cu, cv, u2, v2)
    assert K2[0, 0] > 0 and K2[1, 1] > 0


def test_augmentation_is_shared_and_pseudo_depth_follows(tmp_path):
    """Identical frames stay identical under augmentation; a left-to-right ramp in image and
    pseudo-depth keeps the same direction in both after flips."""
    scene = write_scene(tmp_path / "training/s0", n_frames=3, size=(30, 40), values=[0] * 3)
    ramp = np.tile(np.linspace(10, 250, 40), (30, 1))
    for i in range(3):
        cv2.imwrite(str(scene / f"{i:06d}.png"), np.repeat(ramp[..., None], 3, 2).astype(np.uint8))
        cv2.imwrite(str(scene / "leres_depth" / f"{i:06d}.png"), (ramp * 200).astype(np.uint16))
    (tmp_path / "training/train.txt").write_text("s0\n")
    flips = set()
    for epoch in range(8):
        ds = TrainFolder(tmp_path, image_size=(16, 24), seed=3)
        ds.set_epoch(epoch)
        item = ds[0]
        assert all(torch.equal(ref, item["tgt"]) for ref in item["refs"])
        img_dir = float(torch.sign(item["tgt"][0, 8, -1] - item["tgt"][0, 8, 0]))
        pd_dir = float(torch.sign(item["pseudo_depth"][0, 8, -1] - item["pseudo_depth"][0, 8, 0]))
        assert img_dir == pd_dir != 0
        flips.add(img_dir)
    assert flips == {-1.0, 1.0}  # both orientations were drawn


def test_seeded_augmentation_is_reproducible(tmp_path):
    make_layout(tmp_path, train=("s0",), val=())
    a = TrainFolder(tmp_path, image_size=(16, 24), seed=7)[2]
    b = TrainFolder(tmp_path, image_size=(16, 24), seed=7)[2]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds = TrainFolder(tmp_path, image_size=(16, 24), seed=7)
    Ks = set()
    for e in range(4):
        ds.set_epoch(e)
        Ks.add(tuple(ds[2]["K"].flatten().tolist()))
    assert len(Ks) > 1


def test_unreadable_frame_mid_run_is_raised_and_the_loader_goes_on(tmp_path):
    make_layout(tmp_path, train=("s0",), val=(), n_frames=6)
    ds = TrainFolder(tmp_path, image_size=(16, 24), augment=False)
    (tmp_path / "training/s0/000003.png").unlink()  # deleted after validation
    for workers in (0, 2):
        seen, failed = 0, 0
        it = iter(DataLoader(ds, batch_size=1, num_workers=workers))
        while True:  # what a trainer does: catch, count, go on
            try:
                next(it)
                seen += 1
            except StopIteration:
                break
            except UnreadableFrame as e:
                assert "000003.png: missing" in str(e)
                failed += 1
        # frame 3 is a target once and a reference twice
        assert (seen, failed) == (1, 3)


@pytest.mark.parametrize(
    "dataset, kind", [("nyu", "png5000"), ("bonn", "png1000"), ("kitti", "npy"), ("ddad", "npz")]
)
def test_val_folder_reads_gt_in_metres(tmp_path, dataset, kind):
    make_layout(tmp_path, train=("s0",), val=("v0",), depth=kind)
    ds = ValFolder(tmp_path, image_size=(16, 24), dataset=dataset)
    assert len(ds) == 7
    item = ds[3]
    assert item["img"].shape == (3, 16, 24)
    assert item["depth"].shape == (1, 32, 40) and item["depth"].dtype == torch.float32
    assert torch.allclose(item["depth"], torch.full((1, 32, 40), 4.0), atol=1e-3)
    assert item["mask"].dtype == torch.bool and item["mask"][0, :16].all()
    assert not item["mask"][0, 16:].any()
    assert item["name"] == "v0/000003"


def test_scenes_without_pseudo_depth_or_seg_mask(tmp_path):
    """Methods without pseudo-depth read scenes that have no leres_depth/; a test split
    without seg_mask/ gives items without "mask"."""
    make_layout(tmp_path, train=("s0",), val=(), pseudo=False)
    item = TrainFolder(tmp_path, image_size=(16, 24), use_pseudo_depth=False)[0]
    assert set(item) == {"tgt", "refs", "K"}
    make_testing(tmp_path, n=2, masks=False)
    ds = TestFolder(tmp_path, image_size=(16, 24))
    assert not ds.has_mask and set(ds[0]) == {"img", "depth", "name"}


def test_test_folder(tmp_path):
    make_testing(tmp_path, n=3)
    ds = TestFolder(tmp_path, image_size=(16, 24), dataset="synthetic")
    item = ds[1]
    assert item["name"] == "img1"
    assert item["img"].shape == (3, 16, 24) and item["depth"].shape == (1, 32, 40)
    assert item["mask"].shape == (1, 32, 40) and item["mask"][0, :, :10].all()
    assert (item["depth"].min().item(), item["depth"].max().item()) == pytest.approx((1.0, 4.0))
