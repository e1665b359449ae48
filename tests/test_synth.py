"""scdepth-synth: layout, determinism, exact depth, simulated pseudo-depth, refusal to overwrite."""

import json

import cv2
import numpy as np
import pytest

from scdepth.cli.synth import main
from scdepth.data.folders import TestFolder, TrainFolder, ValFolder
from scdepth.data.render import Prim, render
from scdepth.data.synth import generate, pseudo_depth_quality, simulate_pseudo_depth

TINY = dict(
    image_size=(24, 32), num_scenes=2, val_scenes=2, frames_per_scene=5, progress=False, workers=1
)


@pytest.fixture(scope="module")
def indoor(tmp_path_factory):
    return generate(
        tmp_path_factory.mktemp("syn") / "indoor",
        preset="indoor",
        seed=0,
        dynamic_fraction=0.3,
        **TINY,
    )


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_loadable(indoor):
    ds = TrainFolder(indoor, image_size=(24, 32), augment=False)
    assert len(ds) == 2 * 3
    item = ds[0]
    assert item["tgt"].shape == (3, 24, 32) and item["pseudo_depth"].shape == (1, 24, 32)
    val, test = ValFolder(indoor, image_size=(24, 32)), TestFolder(indoor, image_size=(24, 32))
    assert len(val) == 2 * 5 and len(test) == 5
    assert (indoor / "training/val.txt").read_text() == "val_00\nval_01\n"
    depth = test[0]["depth"]
    assert (depth > 0.1).all() and (depth < 15).all()  # a closed room: GT everywhere
    masks = np.stack([test[i]["mask"].numpy() for i in range(5)])
    assert 0.02 < masks.mean() < 0.9  # walking people cover part of the view
    meta = json.loads((indoor / "synth.json").read_text())
    assert meta["measured_dynamic_fraction"] == pytest.approx(masks.mean(), abs=0.3)
    sheet = cv2.imread(str(indoor / "contact_sheet.png"))
    assert sheet.shape[1] == 4 * 32 and sheet.shape[0] % 24 == 0
    for d in (indoor / "training/scene_00", indoor / "training/val_01"):
        assert sorted(p.stem for p in d.glob("*.png")) == [f"{i:06d}" for i in range(5)]


def test_frames_are_textured_not_flat(indoor):
    img = cv2.imread(str(indoor / "training/scene_00/000002.png"), cv2.IMREAD_GRAYSCALE)
    grad = np.abs(np.diff(img.astype(np.float32), axis=1))
    assert img.std() > 10 and np.mean(grad > 2) > 0.3


def test_deterministic_for_a_seed(tmp_path, indoor):
    """Same seed: identical bytes, also when the scenes render in 2 worker processes."""
    again = generate(
        tmp_path / "again", preset="indoor", seed=0, dynamic_fraction=0.3, **{**TINY, "workers": 2}
    )
    other = generate(tmp_path / "other", preset="indoor", seed=1, dynamic_fraction=0.3, **TINY)
    a, b, c = _files(indoor), _files(again), _files(other)
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if k.suffix == ".png" and a[k] != c[k]]
    assert len(differing) > 0.9 * sum(k.suffix == ".png" for k in a)


def test_more_scenes_leave_the_others_as_they_were(tmp_path, indoor):
    more = generate(
        tmp_path / "more",
        preset="indoor",
        seed=0,
        dynamic_fraction=0.3,
        **{**TINY, "num_scenes": 3, "val_scenes": 3},
    )
    a, b = _files(indoor), _files(more)
    scenes = {("training", s) for s in ("val_00", "val_01", "scene_01")}
    kept = [k for k in a if k.parts[0] == "testing" or k.parts[:2] in scenes]
    assert kept and all(a[k] == b[k] for k in kept)
    for new in ("scene_02", "val_02"):
        assert any(k.parts[:2] == ("training", new) for k in b)
    assert (more / "training/val.txt").read_text() == "val_00\nval_01\nval_02\n"


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(out, **TINY)
    generate(out, overwrite=True, **TINY)
    assert (out / "notes.txt").read_text() == "mine"  # only its own outputs are replaced
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--size", "24", "32", "--no-progress"])
    with pytest.raises(ValueError, match="dynamic_fraction"):
        generate(tmp_path / "x", dynamic_fraction=1.5, **TINY)
    with pytest.raises(ValueError, match="val_scenes"):
        generate(tmp_path / "x", **{**TINY, "val_scenes": 0})


def test_outdoor_cli(tmp_path, capsys):
    out = tmp_path / "street"
    assert (
        main(
            [
                "--preset",
                "outdoor",
                "--out",
                str(out),
                "--size",
                "24",
                "64",
                "--scenes",
                "1",
                "--frames",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    depth = np.load(out / "testing/depth/test_00_000000.npy")
    assert depth.shape == (24, 64) and (depth == 0).any()  # sky has no depth
    road = depth[-1]  # bottom row sees the road, 1.65 m below the camera
    assert ((road > 1.5) & (road < 30)).mean() > 0.5
    TrainFolder(out, image_size=(24, 64))


def test_depth_is_exact_z_depth():
    """A room seen from inside: the far wall at z = 5 has depth 5 at every pixel it covers,
    including off-centre ones (z-depth, not ray length); a sphere's nearest point is d - r."""
    K = np.array([[20.0, 0, 15.5], [0, 20.0, 11.5], [0, 0, 1]])
    room = Prim("box", np.zeros(3, np.float32), np.array([40, 40, 5], np.float32), inside=True)
    ball = Prim(
        "ellipsoid", np.array([0, 0, 3], np.float32), np.full(3, 0.5, np.float32), dynamic=True
    )
    sky = lambda d: np.zeros((len(d), 3), np.float32)  # noqa: E731
    f = render([room, ball], K, (24, 32), np.eye(3), np.zeros(3), np.array([0, -1, 0]), sky)
    np.testing.assert_allclose(f.depth[0], 5.0, rtol=1e-5)
    np.testing.assert_allclose(f.depth[:, 0], 5.0, rtol=1e-5)
    v, u = 11.5, 15.5  # the sphere centre projects between the 4 middle pixels
    ray = np.array([(16 - u) / 20, (12 - v) / 20, 1.0])
    t = (3 * ray[2] - np.sqrt((3 * ray[2]) ** 2 - ray @ ray * (9 - 0.25))) / (ray @ ray)
    assert f.depth[12, 16] == pytest.approx(t, rel=1e-5)
    assert f.dynamic[12, 16] and not f.dynamic[0, 0]


def _labels(x, y, tau=0.15):
    r = x / y
    return np.where(r > 1 + tau, 1, np.where(r < 1 / (1 + tau), -1, 0))


def test_pseudo_depth_ordinal_labels_mostly_right():
    """Ranking labels (tau = 0.15, SC-DepthV3) from the pseudo-depth agree with those from the
    GT for most but not all pixel pairs; clearly ordered pairs keep their order far more often."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :80]
    depth = (1.0 + 0.1 * yy + 3.0 * (np.abs(xx - 40) < 10)).astype(np.float32)
    raw = simulate_pseudo_depth(depth, rng)
    assert raw.dtype == np.uint16 and raw.min() >= 1
    pseudo = raw.astype(np.float64).ravel()
    a, b = rng.integers(0, depth.size, (2, 20000))
    ga, gb = depth.ravel()[a], depth.ravel()[b]
    same = _labels(ga, gb) == _labels(pseudo[a], pseudo[b])
    assert 0.75 < same.mean() < 0.99
    clear = _labels(ga, gb) != 0
    order = np.sign(ga - gb)[clear] == np.sign(pseudo[a] - pseudo[b])[clear]
    assert 0.95 < order.mean() < 1.0


def test_pseudo_error_knob_sets_the_quality():
    yy, xx = np.mgrid[:64, :80]
    depth = (1.0 + 0.1 * yy + 3.0 * (np.abs(xx - 40) < 10)).astype(np.float32)

    def quality(error):
        rng = np.random.default_rng(0)
        pairs = [(depth, simulate_pseudo_depth(depth, rng, error)) for _ in range(4)]
        return pseudo_depth_quality(pairs, np.random.default_rng(1))

    exact, default, poor = quality(0), quality(1.35), quality(4)
    assert exact["ordinal_agreement"] == 1 and exact["aligned_abs_rel"] < 1e-3  # uint16 rounding
    assert 1 > default["ordinal_agreement"] > poor["ordinal_agreement"] > 0.6
    assert 1e-3 < default["aligned_abs_rel"] < poor["aligned_abs_rel"]


def test_pseudo_depth_quality_by_hand():
    gt = np.array([[1.0, 2.0, 4.0, 0.0]])  # 0: no GT, ignored
    flipped = np.array([[4.0, 2.0, 1.0, 9.0]])
    q = pseudo_depth_quality([(gt, flipped)], np.random.default_rng(0))
    assert q["ordinal_agreement"] == 0  # every labelled pair is in the wrong order
    q = pseudo_depth_quality([(gt, 3 * gt + 1)], np.random.default_rng(0))
    assert q == {"ordinal_agreement": 1.0, "aligned_abs_rel": pytest.approx(0, abs=1e-12)}


def test_generate_records_the_pseudo_depth_and_refuses_a_bad_error(tmp_path, indoor):
    meta = json.loads((indoor / "synth.json").read_text())
    assert meta["pseudo_error"] == 1.35
    assert 0.5 < meta["pseudo_depth_quality"]["ordinal_agreement"] <= 1
    with pytest.raises(ValueError, match="pseudo_error"):
        generate(tmp_path / "x", pseudo_error=-1, **TINY)


@pytest.mark.parametrize("preset, size", [("indoor", (96, 128)), ("outdoor", (48, 128))])
def test_poses_txt_matches_the_rendered_camera(tmp_path, preset, size):
    """poses.txt is camera-to-world: frame 3 warped into frame 0 with frame 0's GT depth and
    the relative pose T_3<-0 = inv(G_3) G_0 (poses.relative_pose) matches frame 0 on the
    static pixels; the inverse pose or no motion do not. Proves direction and convention."""
    import torch

    from scdepth.data.poses import read_poses, read_times, relative_pose
    from scdepth.ops import inverse_warp

    root = generate(
        tmp_path / preset,
        preset=preset,
        image_size=size,
        num_scenes=1,
        frames_per_scene=4,
        exposure_change=0,
        workers=1,
        progress=False,
    )
    scene = root / "training/val_00"
    G = read_poses(scene / "poses.txt", 4)
    np.testing.assert_allclose(read_times(scene / "times.txt", 4), [0, 0.1, 0.2, 0.3])
    assert (root / "training/scene_00/poses.txt").is_file()
    K = torch.tensor(np.loadtxt(scene / "cam.txt"), dtype=torch.float32)[None]

    def image(i):  # lightly blurred: the error then measures misregistration, not aliasing
        img = cv2.GaussianBlur(cv2.imread(str(scene / f"{i:06d}.png")), (0, 0), 1.0)
        return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]

    depth = torch.from_numpy(np.load(scene / "depth/000000.npy"))[None, None]
    static = torch.from_numpy(cv2.imread(str(scene / "seg_mask/000000.png"), 0) == 0)
    T = relative_pose(G[0], G[3])  # target 0, source 3
    errors = {}
    for name, P in (("right", T), ("inverse", np.linalg.inv(T)), ("identity", np.eye(4))):
        pose = torch.tensor(P[:3], dtype=torch.float32)[None]
        warped, _, valid = inverse_warp(image(3), depth, pose, K)
        keep = (valid[0, 0] > 0) & static & (depth[0, 0] > 0)
        assert keep.float().mean() > 0.3
        errors[name] = float((warped - image(0)).abs().mean(1)[0][keep].median())
    assert errors["right"] < 0.015, errors
    assert errors["right"] < 0.5 * min(errors["inverse"], errors["identity"]), errors
