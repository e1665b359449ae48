"""Pose evaluation: chaining PoseNet outputs, baselines, outputs, CLI and bad input."""

import json

import numpy as np
import pytest
import torch
from helpers import read_tum

from scdepth import checkpoint, config, pose_eval
from scdepth import trajectory as tj
from scdepth.cli.eval import main
from scdepth.data.layout import DatasetError, read_image
from scdepth.data.poses import read_poses, relative_pose
from scdepth.data.synth import generate
from scdepth.data.transforms import resize_image
from scdepth.geometry import euler2mat
from scdepth.models import PoseNet

SIZE = (24, 32)


def one_scene_each(root, frames):
    """1 training scene and 1 val scene of `frames` frames, with poses.txt."""
    kw = dict(image_size=SIZE, num_scenes=1, val_scenes=1, workers=1, progress=False)
    return generate(root, frames_per_scene=frames, **kw)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return one_scene_each(tmp_path_factory.mktemp("pose") / "indoor", 8)


def mat2vec(T):
    """[R | t] -> [tx, ty, tz, rx, ry, rz] with R = Rx Ry Rz (inverse of pose_vec2mat):
    R[0, 2] = sin ry, R[1, 2] = -sin rx cos ry, R[2, 2] = cos rx cos ry, R[0, 1] and R[0, 0]
    likewise for rz."""
    R = T[:3, :3]
    rx, ry, rz = np.arctan2(-R[1, 2], R[2, 2]), np.arcsin(R[0, 2]), np.arctan2(-R[0, 1], R[0, 0])
    return [*T[:3, 3], rx, ry, rz]


class GTPoseNet:
    """Stands in for the PoseNet: pose_net(tgt, ref) returns the GT T_ref<-tgt (the trainer's
    meaning of the output), finding each image among the scene's frames."""

    def __init__(self, scene):
        self.imgs = [resize_image(read_image(f), SIZE) for f in scene.frames]
        self.gt = scene.gt

    def index(self, img):
        return next(i for i, x in enumerate(self.imgs) if torch.equal(x, img))

    def __call__(self, tgt, ref):
        T = [
            relative_pose(self.gt[self.index(a)], self.gt[self.index(b)])
            for a, b in zip(tgt, ref, strict=True)
        ]
        return torch.tensor([mat2vec(t) for t in T], dtype=torch.float32)


def test_mat2vec_inverts_euler2mat():
    vec = torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.float64)
    R = euler2mat(vec)[0].numpy()
    T = np.eye(4)
    T[:3, :3] = R
    np.testing.assert_allclose(mat2vec(T)[3:], vec[0].numpy(), atol=1e-12)


def test_chaining_gt_relative_poses_recovers_the_trajectory(synth):
    """The network replaced by GT relative poses: pose_net(frame t+1, frame t) chained gives
    the GT trajectory (ATE ~ 0), which checks input order, direction and chaining."""
    scenes = pose_eval.pose_scenes(synth, "all")
    assert [s.name for s in scenes] == ["scene_00", "val_00"]
    for s in scenes:
        rel = pose_eval.predict_relative(GTPoseNet(s), s.frames, SIZE, batch_size=3)
        assert rel.shape == (7, 4, 4)
        chained = tj.chain(rel, s.gt[0])
        np.testing.assert_allclose(chained, s.gt, atol=1e-5)
    fake = {s.name: GTPoseNet(s) for s in scenes}
    r = pose_eval.evaluate_poses(
        synth,
        "synthetic",
        {"gt": lambda s: pose_eval.predict_relative(fake[s.name], s.frames, SIZE)},
        split="all",
    )
    m = r["methods"]["gt"]["overall"]
    assert m["ate"] < 1e-5 and m["ate_snippet"] < 1e-5 and m["rpe_consecutive_t_m"] < 1e-5
    assert m["rpe_consecutive_r_deg"] < 1e-4
    # 8 frames at 10 fps span 0.7 s: no pair is TUM's 1 s apart
    assert m["rpe_t_m"] is None and m["rpe_pairs"] == 0 and r["rpe_delta"] == "1 s"
    assert m["snippets"] == 2 * 4 and m["frames"] == 16

    # the opposite input order (or a missing inverse) is far off
    def swapped(s):
        return pose_eval.predict_relative(lambda a, b: fake[s.name](b, a), s.frames, SIZE)

    wrong = {"swapped": swapped}
    off = pose_eval.evaluate_poses(synth, "synthetic", wrong, split="all")
    assert off["methods"]["swapped"]["overall"]["ate_snippet"] > 100 * m["ate_snippet"] + 1e-4


def test_baselines():
    """zero: no motion; constant-velocity: the mean GT step, exact for a GT that moves by
    one constant step."""
    step = np.eye(4)
    step[:3, :3] = euler2mat(torch.tensor([[0.01, 0.05, -0.02]], dtype=torch.float64))[0].numpy()
    step[:3, 3] = [0.1, 0.0, 0.9]
    gt = tj.chain(np.tile(step, (9, 1, 1)))
    cv = pose_eval.baseline_relative(gt, "constant-velocity")
    np.testing.assert_allclose(cv, np.tile(step, (9, 1, 1)), atol=1e-12)
    zero = tj.chain(pose_eval.baseline_relative(gt, "zero"))
    assert np.allclose(zero, np.eye(4))
    c = gt[:, :3, 3]
    err, _ = tj.ate(gt, zero)
    assert err == pytest.approx(np.sqrt(np.mean(np.sum((c - c.mean(0)) ** 2, 1))))
    with pytest.raises(ValueError, match="baseline must be"):
        pose_eval.baseline_relative(gt, "oracle")


def test_a_diverged_network_is_reported_with_the_frames(synth):
    def nan_after_three(s):
        rel = pose_eval.baseline_relative(s.gt, "zero")
        rel[3, 0, 3] = np.nan
        return rel

    with pytest.raises(ValueError, match="non-finite pose between frames 000003.png and 000004"):
        pose_eval.evaluate_poses(synth, "synthetic", {"net": nan_after_three})


def test_cli_writes_trajectories_plots_and_json(synth, tmp_path, capsys):
    out = tmp_path / "poses"
    argv = ["--pose", "--baseline", "all", "--data-root", str(synth), "--dataset", "synthetic"]
    assert main([*argv, "--out", str(out), "--json", str(tmp_path / "m.json")]) == 0
    text = capsys.readouterr().out
    assert "snip_ate" in text and "constant-velocity" in text and "overall" in text
    assert "rpe_t[m]" in text  # the indoor preset is hand-held: per-frame RPE
    saved = json.loads((out / "pose_metrics.json").read_text())
    assert saved == json.loads((tmp_path / "m.json").read_text())
    assert saved["motion"] == "handheld" and list(saved["methods"]) == ["zero", "constant-velocity"]
    row = saved["methods"]["zero"]["scenes"]["val_00"]
    assert row["frames"] == 8 and row["snippets"] == 4 and row["ate_scale"] == 0
    gt = read_poses(out / "val_00/gt.kitti.txt", 8)
    np.testing.assert_array_equal(gt, read_poses(synth / "training/val_00/poses.txt"))
    times, cv = read_tum(out / "val_00/constant-velocity.tum.txt")
    np.testing.assert_allclose(times, np.arange(8) / 10)
    np.testing.assert_allclose(
        cv, read_poses(out / "val_00/constant-velocity.kitti.txt"), atol=1e-12
    )
    # the written prediction is the aligned one: its ATE against the GT needs no alignment
    err = np.sqrt(np.mean(np.sum((cv[:, :3, 3] - gt[:, :3, 3]) ** 2, 1)))
    assert err == pytest.approx(saved["methods"]["constant-velocity"]["scenes"]["val_00"]["ate"])
    assert (out / "val_00/trajectory.png").stat().st_size > 1000
    assert "| constant-velocity | overall |" in (out / "pose_table.md").read_text()
    # an existing --out is never overwritten without --overwrite
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(out), "--baseline", "zero"])
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--overwrite", "--scene", "scene_00"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "pose_metrics.json",
        "pose_table.md",
        "scene_00",
    ]
    assert not list(tmp_path.glob(".poses*"))  # no temporaries left


def test_driving_uses_kitti_rpe_with_the_short_lengths(synth, capsys):
    argv = ["--pose", "--baseline", "zero", "--data-root", str(synth), "--dataset", "synthetic"]
    assert main([*argv, "--motion", "driving"]) == 0
    text = capsys.readouterr().out
    assert "rpe_t%" in text and "no segment of 10 m or more" in text  # a 1 m hand-held path


def test_checkpoint_posenet_runs_and_one_without_posenet_is_refused(synth, tmp_path, capsys):
    cfg = config.to_dict(config.Config(image_size=[32, 32]))
    net = PoseNet(18)
    path = tmp_path / "ck.pt"
    checkpoint.save({"config": cfg, "pose_net": net.state_dict(), "depth_net": {}}, path)
    argv = ["--pose", "--data-root", str(synth), "--dataset", "synthetic", "--no-progress"]
    assert main([*argv, "--checkpoint", str(path), "--baseline", "zero"]) == 0
    assert "posenet" in capsys.readouterr().out
    checkpoint.save({"config": cfg, "depth_net": {}}, path)
    with pytest.raises(SystemExit):
        main([*argv, "--checkpoint", str(path)])
    assert f"checkpoint {path} holds no PoseNet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(argv)  # neither a checkpoint nor a baseline
    assert "give --checkpoint, --baseline" in capsys.readouterr().err


def test_bad_scenes_name_the_file_or_scene(tmp_path):
    root = one_scene_each(tmp_path / "d", 4)
    with pytest.raises(DatasetError, match="scene val_00 .*4 frames; the 5-frame snippet ATE"):
        pose_eval.pose_scenes(root, "val")
    with pytest.raises(DatasetError, match="no such scene"):
        pose_eval.pose_scenes(root, scene="nope")
    poses = root / "training/val_00/poses.txt"
    poses.write_text("\n".join(poses.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(DatasetError, match=r"val_00/poses.txt: 3 poses for 4 frames"):
        pose_eval.pose_scenes(root, "val")
    poses.unlink()
    with pytest.raises(DatasetError, match="val.txt: no scene has a poses.txt"):
        pose_eval.pose_scenes(root, "val")
    with pytest.raises(DatasetError, match="val_00/poses.txt: missing"):
        pose_eval.pose_scenes(root, scene="val_00")
    assert pose_eval.val_pose_scenes(root) == []  # training just goes without pose metrics


def test_frame_index_selects_the_matching_poses(synth, tmp_path):
    import shutil

    root = tmp_path / "sel"
    shutil.copytree(synth, root)
    (root / "training/val_00/frame_index.txt").write_text("0 2 3 5 6 7\n")
    s = pose_eval.load_pose_scene(root / "training/val_00")
    gt = read_poses(root / "training/val_00/poses.txt")
    np.testing.assert_array_equal(s.gt, gt[[0, 2, 3, 5, 6, 7]])
    assert [f.stem for f in s.frames] == [
        "000000",
        "000002",
        "000003",
        "000005",
        "000006",
        "000007",
    ]
    np.testing.assert_allclose(s.times, np.array([0, 2, 3, 5, 6, 7]) / 10)


def test_all_takes_the_scene_lists_there_are(synth, tmp_path):
    """A root with val.txt only (e.g. an imported test recording): split all = its scenes."""
    import shutil

    root = tmp_path / "valonly"
    shutil.copytree(synth, root)
    (root / "training/train.txt").unlink()
    assert [s.name for s in pose_eval.pose_scenes(root, "all")] == ["val_00"]
    (root / "training/val.txt").unlink()
    with pytest.raises(DatasetError, match="train.txt: missing"):
        pose_eval.pose_scenes(root, "all")
