"""Depth metrics against hand-computed values; crops, caps, the dynamic/static split; the CLI."""

import json
import math

import numpy as np
import pytest
import torch
from data_fixtures import make_testing

from scdepth import evaluate
from scdepth.cli.eval import main
from scdepth.data.folders import TestFolder
from scdepth.data.specs import get_spec
from scdepth.evaluate import (
    compute_depth_metrics,
    evaluate_folder,
    evaluate_image,
    evaluate_model,
    spread,
    valid_mask,
)


def test_metrics_by_hand():
    # gt (1, 2), pred (2, 2): one pixel off by a factor 2, one exact
    m = compute_depth_metrics(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    assert m["abs_rel"] == pytest.approx(0.5)  # (1/1 + 0) / 2
    assert m["sq_rel"] == pytest.approx(0.5)  # (1^2/1 + 0) / 2
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    assert m["rmse_log"] == pytest.approx(math.log(2) / math.sqrt(2))
    assert m["log10"] == pytest.approx(math.log10(2) / 2)
    assert (m["a1"], m["a2"], m["a3"]) == (0.5, 0.5, 0.5)  # 2 > 1.25^3 = 1.953
    # gt (1, 4), pred (2, 2); the mask drops a third, wildly wrong pixel
    m = compute_depth_metrics(
        np.array([1.0, 4.0, 9.0]), np.array([2.0, 2.0, 0.1]), np.array([True, True, False])
    )
    assert m["abs_rel"] == pytest.approx(0.75)  # (1/1 + 2/4) / 2
    assert m["sq_rel"] == pytest.approx(1.0)  # (1/1 + 4/4) / 2
    assert m["rmse"] == pytest.approx(math.sqrt(2.5))
    assert m["rmse_log"] == pytest.approx(math.log(2))
    assert m["a1"] == 0 and m["a3"] == 0
    # delta just inside 1.25: gt 1, pred 1.2
    m = compute_depth_metrics(np.array([1.0]), np.array([1.2]))
    assert (m["a1"], m["a2"], m["a3"]) == (1.0, 1.0, 1.0)
    assert math.isnan(m["spread"])  # flat GT: no contrast to compare with


def test_spread_is_the_log_contrast_ratio():
    gt = np.array([1.0, 4.0, 2.0])
    assert compute_depth_metrics(gt, gt**2)["spread"] == pytest.approx(2.0)
    assert compute_depth_metrics(gt, 3 * gt**0.5)["spread"] == pytest.approx(0.5)
    assert compute_depth_metrics(gt, np.full(3, 2.0))["spread"] == 0.0


def test_median_scaling_and_clamp():
    spec = get_spec("bonn")  # range (1e-3, 10)
    gt = np.full((2, 3), 5.0)
    r = evaluate_image(gt, 3 * gt, spec)["all"]
    assert r["abs_rel"] == pytest.approx(0) and r["a1"] == 1
    pred = np.array([[1.0, 1, 1], [1, 1, 8]])  # scaled by 5: the 40 is clamped to 10
    r = evaluate_image(gt, pred, spec)["all"]
    assert r["abs_rel"] == pytest.approx((10 - 5) / 5 / 6)
    unscaled = evaluate_image(gt, np.full((2, 3), 2.5), spec, median_scaling=False)["all"]
    assert unscaled["abs_rel"] == pytest.approx(0.5)


def test_gt_outside_range_is_ignored():
    spec = get_spec("tum")  # max 10 m, no crop
    gt = np.array([[2.0, 2.0, 50.0, 0.0]])
    r = evaluate_image(gt, np.array([[1.0, 1.0, 99.0, 7.0]]), spec)["all"]
    assert r["abs_rel"] == pytest.approx(0)


def test_dynamic_static_split():
    """One scale per image from all valid pixels: static pixels come out exact, dynamic ones
    (predicted twice as far) have abs_rel 1."""
    gt = np.full((4, 4), 2.0)
    seg = np.zeros((4, 4), bool)
    seg[0] = True
    pred = np.where(seg, 2.0, 1.0)
    r = evaluate_image(gt, pred, get_spec("tum"), seg)
    assert r["static"]["abs_rel"] == pytest.approx(0)
    assert r["dynamic"]["abs_rel"] == pytest.approx(1.0)
    assert r["all"]["abs_rel"] == pytest.approx(4 / 16)
    none = evaluate_image(gt, pred, get_spec("tum"), np.zeros((4, 4), bool))
    assert none["dynamic"] is None and none["static"]["abs_rel"] == pytest.approx(0.25)


def test_crops():
    nyu = valid_mask(np.full((480, 640), 5.0), get_spec("nyu"))
    ys, xs = np.nonzero(nyu)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (45, 471, 41, 601)
    kitti = get_spec("kitti")
    gt = np.full((375, 1242), 20.0)
    inside = valid_mask(gt, kitti)
    assert inside.sum() < 0.6 * gt.size and not inside[:150].any()
    pred = np.where(inside, 20.0, 1e4)  # garbage outside the Garg crop does not count
    assert evaluate_image(gt, pred, kitti)["all"]["abs_rel"] == pytest.approx(0)


def test_prediction_is_resized_to_gt():
    gt = np.tile(np.linspace(1, 3, 8), (6, 1))
    small = gt[::2, ::2] * 0 + 2.0  # constant: resizing keeps it constant
    full = evaluate_image(gt, np.full_like(gt, 2.0), get_spec("tum"))["all"]
    assert evaluate_image(gt, small, get_spec("tum"))["all"] == full
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_image(gt, np.full_like(gt, np.nan), get_spec("tum"))


@pytest.fixture
def testset(tmp_path):
    root = make_testing(tmp_path / "ds", n=3)
    preds = tmp_path / "pred"
    preds.mkdir()
    for i in range(3):
        gt = np.load(root / f"testing/depth/img{i}.npy")
        pred = 0.5 * gt
        pred[:, :10] *= 1.5  # the dynamic quarter (seg_mask) is 1.5x too far
        np.save(preds / f"img{i}.npy", pred[None, None, ::2, ::2])  # [1, 1, h, w], half size
    return root, preds


def test_evaluate_folder(testset):
    root, preds = testset
    r = evaluate_folder(preds, root, "synthetic", progress=False)
    assert set(r) == {"all", "dynamic", "static"}
    assert r["all"]["count"] == r["dynamic"]["count"] == 3
    assert r["dynamic"]["abs_rel"] > r["static"]["abs_rel"] + 0.2
    (preds / "img1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"img1\.npy: missing prediction"):
        evaluate_folder(preds, root, "synthetic", progress=False)


def test_cli_pred_dir(testset, tmp_path, capsys):
    root, preds = testset
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "--pred-dir",
                str(preds),
                "--data-root",
                str(root),
                "--dataset",
                "synthetic",
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "abs_rel" in table and "dynamic" in table and "static" in table
    saved = json.loads(out.read_text())
    assert saved["regions"]["all"]["count"] == 3 and saved["dataset"] == "synthetic"
    with pytest.raises(SystemExit):
        main(
            [
                "--pred-dir",
                str(tmp_path / "nope"),
                "--data-root",
                str(root),
                "--dataset",
                "synthetic",
            ]
        )


def test_cli_checkpoint_uses_load_depth_model(testset, tmp_path, monkeypatch, capsys):
    root, _ = testset
    seen = []

    def load_depth_model(path, device):
        assert path == "ckpt.pt" and device == "cpu"

        def model(img):
            seen.append(img.shape)
            return torch.ones(img.shape[0], 1, *img.shape[2:])

        return model, (16, 20)

    monkeypatch.setattr(evaluate, "load_depth_model", load_depth_model)
    assert (
        main(
            [
                "--checkpoint",
                "ckpt.pt",
                "--device",
                "cpu",
                "--data-root",
                str(root),
                "--dataset",
                "synthetic",
                "--no-progress",
                "--json",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    assert seen == [torch.Size([1, 3, 16, 20])] * 3
    r = json.loads((tmp_path / "c.json").read_text())["regions"]
    assert r["all"]["count"] == 3 and r["all"]["abs_rel"] > 0.1  # a flat guess is poor


def test_images_without_gt_are_left_out_and_counted(testset, capsys):
    """A test scene imported from a source without GT (a video) next to scenes with GT."""
    root, preds = testset
    (root / "testing/depth/img1.npy").unlink()
    (root / "testing/seg_mask/img1.png").unlink()
    (preds / "img1.npy").unlink()  # nothing asks for it
    r = evaluate_folder(preds, root, "synthetic", progress=False)
    assert r["all"]["count"] == r["dynamic"]["count"] == 2
    assert "1 test images have no GT depth and are not scored (e.g." in capsys.readouterr().err


def test_split_without_seg_mask_scores_all_pixels_only(tmp_path, capsys):
    """Static scenes (KITTI, NYU, TUM fr1) come without testing/seg_mask: the "all" row only."""
    root = make_testing(tmp_path / "ds", n=2, masks=False)
    preds = tmp_path / "pred"
    preds.mkdir()
    for i in range(2):
        gt = np.load(root / f"testing/depth/img{i}.npy")
        np.save(preds / f"img{i}.npy", np.where(np.arange(40) < 10, 3.0, 1.0) * gt)
    r = evaluate_folder(preds, root, "synthetic", progress=False)
    assert set(r) == {"all"} and r["all"]["count"] == 2 and r["all"]["abs_rel"] > 0.1
    argv = ["--pred-dir", str(preds), "--data-root", str(root), "--dataset", "synthetic"]
    assert main([*argv, "--no-progress", "--json", str(tmp_path / "r.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["all", "(no"]
    assert "dynamic" not in lines[2] and len(lines) == 4
    assert set(json.loads((tmp_path / "r.json").read_text())["regions"]) == {"all"}


def test_spread_picks_evenly_from_the_start():
    assert spread(10, 3) == [0, 3, 6]
    assert spread(3, 5) == [0, 1, 2] and spread(0, 4) == []


def test_max_images_are_spread_over_the_split(tmp_path):
    """Validation scores max_images frames from all val scenes, not the first scene's."""
    root = make_testing(tmp_path / "ds", n=4)
    size = np.load(root / "testing/depth/img0.npy").shape
    seen = []

    def model(img):
        seen.append(img)
        return torch.ones(1, 1, *img.shape[-2:])

    r = evaluate_model(model, root, "synthetic", image_size=size, progress=False, max_images=2)
    assert r["all"]["count"] == 2
    folder = TestFolder(root, image_size=size)
    for img, i in zip(seen, [0, 2], strict=True):
        torch.testing.assert_close(img, folder[i]["img"][None])
