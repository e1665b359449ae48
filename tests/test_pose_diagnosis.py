"""The pose diagnosis's parts: rotations and translations swapped between two predictions,
directions replaced, and the 7-Scenes section of RESULTS.md replaced beside the others."""

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from experiments import pose_diagnosis as pd  # noqa: E402
from experiments import real  # noqa: E402


def _steps(n, seed):
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        out[i, :3, :3] = cv2.Rodrigues(rng.normal(scale=0.05, size=3))[0]
        out[i, :3, 3] = rng.normal(size=3)
    return out


def test_parts_and_directions_are_swapped_as_named():
    a, b = _steps(5, 0), _steps(5, 1)
    mixed = pd.with_parts(a, b)
    np.testing.assert_array_equal(mixed[:, :3, :3], a[:, :3, :3])
    np.testing.assert_array_equal(mixed[:, :3, 3], b[:, :3, 3])
    d = pd.with_direction(a, b)
    length = np.linalg.norm(d[:, :3, 3], axis=1)
    np.testing.assert_allclose(length, np.linalg.norm(b[:, :3, 3], axis=1))
    np.testing.assert_allclose(pd.angle_deg(d[:, :3, 3], a[:, :3, 3]), 0, atol=1e-5)
    np.testing.assert_allclose(pd.angle_deg(np.eye(3), -np.eye(3)), 180)
    np.testing.assert_allclose(pd.angle_deg(np.eye(3), np.roll(np.eye(3), 1, 0)), 90)


def test_each_set_replaces_only_its_own_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    real.replace_section(md, "shared figures", "shared")
    real.replace_section(md, "7scenes figures", "7scenes")
    real.replace_section(md, "new 7scenes figures", "7scenes")
    text = md.read_text()
    assert "shared figures" in text and "new 7scenes figures" in text
    assert text.count("7scenes figures") == 1 and text.startswith("# Results")


def test_pose_oracle_finds_the_pose_that_made_the_target():
    """A target rendered from a source by a known pose and depth: the photometric pose oracle,
    started from no motion, ends near that pose (the loss's minimum is where it was made)."""
    import torch

    from experiments import pose_oracle
    from scdepth.geometry import pose_vec2mat
    from scdepth.ops import get_backend

    ops = get_backend("ext")
    H, W = 48, 64
    v, u = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    texture = [
        torch.sin(u / 3 + k) * torch.cos(v / 4 - k) + 0.3 * torch.sin((u + v) / 5 * k)
        for k in (1, 2, 3)
    ]
    ref = ((torch.stack(texture) + 2) / 4).unsqueeze(0)
    depth = (1.5 + 2.5 * v / H + 0.5 * torch.sin(u / 9)).view(1, 1, H, W)  # not a plane
    K = torch.tensor([[[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]]])
    truth = torch.tensor([[0.06, -0.02, 0.04, 0.01, -0.015, 0.005]])
    tgt, _, _ = ops.inverse_warp(ref, depth, pose_vec2mat(truth), K)
    found = pose_oracle.optimise(ops, tgt, ref, depth, K, torch.zeros_like(truth))
    assert (found[0, :3] - truth[0, :3]).norm() < 0.15 * truth[0, :3].norm()
    assert (found[0, 3:] - truth[0, 3:]).norm() < 0.15 * truth[0, 3:].norm()


def test_known_poses_are_given_in_the_posenet_order_and_mirrored_with_the_image():
    """batch_poses: T_ref<-tgt for each reference then each index, then their inverses (as
    step.predict asks the PoseNet); a flipped sample's pose is mirrored in x."""
    from types import SimpleNamespace

    from experiments import known_poses as kp
    from scdepth.geometry import pose_vec2mat

    gt = np.tile(np.eye(4), (6, 1, 1))
    gt[:, :3, 3] = np.arange(6)[:, None] * np.array([1.0, 2.0, 3.0])  # camera-to-world
    gt[3, :3, :3] = cv2.Rodrigues(np.array([0.0, 0.2, 0.0]))[0]
    flips = {0: False, 1: True}
    data = SimpleNamespace(
        shifts=[-1, 1],
        samples=[(0, 2), (0, 3)],
        _augmentation=lambda index: SimpleNamespace(flip=flips[index]),
    )
    vec = kp.batch_poses(data, [gt], [0, 1])
    T = pose_vec2mat(vec).double().numpy()
    expect = []
    for shift in (-1, 1):
        for index, i in ((0, 2), (1, 3)):
            rel = np.linalg.inv(gt[i + shift]) @ gt[i]
            if flips[index]:
                rel = kp.MIRROR @ rel @ kp.MIRROR
            expect.append(rel[:3])
    expect += [np.linalg.inv(np.vstack([e, [0, 0, 0, 1]]))[:3] for e in expect]
    np.testing.assert_allclose(T, np.stack(expect), atol=1e-6)
    # the flipped sample's step to its next frame (frame 3 -> 4) goes the other way in x
    np.testing.assert_allclose(T[3, 0, 3], -(np.linalg.inv(gt[4]) @ gt[3])[0, 3], atol=1e-6)


def test_pose_pairs_are_every_tgt_to_ref_then_every_ref_to_tgt():
    """step.pose_pairs, the order batch_poses' GT vectors follow: reference by reference,
    each the whole batch, first (tgt, ref) then (ref, tgt)."""
    import torch

    from scdepth.step import pose_pairs

    B, N = 3, 2
    tgt = torch.arange(B, dtype=torch.float32).view(B, 1, 1, 1).expand(B, 3, 2, 2)
    refs = 10 + torch.arange(B * N, dtype=torch.float32).view(B, N, 1, 1, 1).expand(B, N, 3, 2, 2)
    src, dst = pose_pairs(tgt, refs)
    pairs = [(int(s[0, 0, 0]), int(d[0, 0, 0])) for s, d in zip(src, dst, strict=True)]
    forward = [(b, 10 + b * N + k) for k in range(N) for b in range(B)]
    assert pairs == forward + [(r, t) for t, r in forward]


def test_supervised_pose_loss_weighs_translation_and_rotation_by_their_output_scales():
    """pose_alone's loss is 0 for the GT vectors and the squared raw-output error otherwise:
    a rotation off by one rotation-scale unit costs what a translation off by one
    translation-scale unit costs."""
    import torch

    from experiments.pose_alone import supervised_loss
    from scdepth.models.pose_net import POSE_SCALE

    class Fixed(torch.nn.Module):
        rotation_scale = 0.1

        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, src, dst):
            return self.out

    batch = {"tgt": torch.zeros(1, 3, 4, 4), "refs": torch.zeros(1, 2, 3, 4, 4)}
    target = torch.randn(4, 6) * 0.05
    assert supervised_loss(Fixed(target.clone()), batch, target).item() < 1e-6
    for column, unit in ((0, POSE_SCALE), (4, 0.1)):
        off = target.clone()
        off[:, column] += unit
        loss = supervised_loss(Fixed(off), batch, target).item()
        assert abs(loss - 1 / 6) < 2e-2, (column, loss)


def test_the_diagnosis_leaves_the_posenet_as_it_was_and_scores_it_as_pose_eval_does(tmp_path):
    """The batch-statistics pass must not move the evaluated net's BatchNorm running
    statistics: every scene's "posenet" figure is the net's own, as pose_eval scores it."""
    import torch

    from scdepth import pose_eval
    from scdepth.models import PoseNet

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = []
    for k in range(3):
        frames = []
        for i in range(6):
            path = tmp_path / f"scene{k}_{i}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) // (k + 1))
            frames.append(path)
        gt = np.tile(np.eye(4), (6, 1, 1))
        gt[:, :3, 3] = np.arange(6)[:, None] * rng.normal(size=3) * 0.1
        scenes.append(pose_eval.PoseScene(f"scene{k}", frames, gt, np.arange(6.0), "frame"))
    net = PoseNet(18).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = pd.diagnose_net(net, (64, 64), scenes)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert not net.training
    method = {"posenet": lambda s: pose_eval.predict_relative(net, s.frames, (64, 64))}
    scored = pose_eval.evaluate_poses(tmp_path, "tum", method, scenes=scenes)
    expect = scored["methods"]["posenet"]["overall"]["ate_snippet"]
    assert result["snippet_ate"]["posenet"] == expect
