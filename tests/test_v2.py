"""SC-DepthV2's rectification: the rotation-only warp, its direction on rendered views, the
rotation losses, the r3 supervision switch, the pose composition and the shaken camera path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import smooth_field

from scdepth import losses, rectify
from scdepth.data import scenes
from scdepth.data.poses import relative_pose
from scdepth.data.render import render, rotation
from scdepth.geometry import euler2mat, mat2euler
from scdepth.models import PoseNet, RectifyNet
from scdepth.ops import get_backend

BACKENDS = ("ext", "reference")


def homography_warp(img, R, K):
    """img sampled at H p, H = K R K^-1, written directly (no depth, no pose): [B, C, H, W]."""
    B, _, h, w = img.shape
    Hm = K @ R @ torch.linalg.inv(K)
    v, u = torch.meshgrid(
        torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij"
    )
    p = Hm @ torch.stack([u, v, torch.ones_like(u)]).view(1, 3, -1)
    uv = p[:, :2] / p[:, 2:]
    grid = torch.stack([2 * uv[:, 0] / (w - 1) - 1, 2 * uv[:, 1] / (h - 1) - 1], -1)
    warped = F.grid_sample(img, grid.view(B, h, w, 2), align_corners=True, padding_mode="zeros")
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    return warped, inside.view(B, 1, h, w).to(img.dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_warp_is_the_homography_K_R_K_inv(backend):
    g = torch.Generator().manual_seed(0)
    B, h, w = 3, 20, 28
    img = smooth_field(B, 3, h, w, generator=g)
    f = 0.9 * w
    K = torch.tensor([[f, 0, 13.2], [0, 1.1 * f, 9.7], [0, 0, 1]], dtype=torch.float64)
    K = K.expand(B, 3, 3).contiguous()
    angles = 0.08 * torch.randn(B, 3, generator=g, dtype=torch.float64)
    warped, valid = rectify.rotation_warp(get_backend(backend), img, angles, K)
    expected, inside = homography_warp(img, euler2mat(angles), K)
    assert 0.3 < inside.mean() < 1  # the rotations bring part of the view out of the image
    torch.testing.assert_close(valid, inside, rtol=0, atol=0)
    torch.testing.assert_close(warped, expected, rtol=1e-10, atol=1e-12)


def test_mat2euler_inverts_euler2mat():
    g = torch.Generator().manual_seed(1)
    angles = 0.5 * torch.randn(16, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mat2euler(euler2mat(angles)), angles, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def room():
    """A static rendered room (48 x 64) and a render function (R camera-to-world, centre)."""
    setup = scenes.indoor(np.random.default_rng(3), (48, 64), 1, 0.0)
    light = setup.light / np.linalg.norm(setup.light)

    def view(R, c):
        f = render(setup.prims(0), setup.K, (48, 64), R, c, light, setup.sky, ss=2)
        img = torch.from_numpy(f.rgb).permute(2, 0, 1)[None].double()
        return img, torch.from_numpy(f.depth)[None, None].double()

    return setup, view


def pose(R, c):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, c
    return T


def mean_error(a, b, mask):
    return ((a - b).abs().mean(1, keepdim=True) * mask).sum().item() / mask.sum().item()


def test_rectifying_a_pure_rotation_with_its_angles_gives_the_target(room):
    setup, view = room
    R_tgt, c = setup.poses[0]
    R_ref = R_tgt @ rotation(0.04, -0.03, 0.02)  # the hand turned, the camera stayed
    (tgt, _), (ref, _) = view(R_tgt, c), view(R_ref, c)
    T = relative_pose(pose(R_tgt, c), pose(R_ref, c))  # T_ref<-tgt: rotation only
    r1 = mat2euler(torch.from_numpy(T[None, :3, :3]))
    K = torch.from_numpy(setup.K)[None]
    ops = get_backend("ext")
    rectified, valid = rectify.rotation_warp(ops, ref, r1, K)
    wrong, _ = rectify.rotation_warp(ops, ref, -r1, K)
    assert valid.mean() > 0.8
    before = mean_error(ref, tgt, valid)
    after = mean_error(rectified, tgt, valid)  # bilinear interpolation of the textures only
    assert after < 0.5 * before
    assert mean_error(wrong, tgt, valid) > before  # the other direction doubles the rotation


def test_rectified_camera_keeps_only_the_translation_and_poses_compose(room):
    setup, view = room
    R_tgt, c_tgt = setup.poses[0]
    R_ref, c_ref = R_tgt @ rotation(-0.05, 0.02, 0.03), c_tgt + np.array([0.2, -0.05, 0.15])
    (tgt, tgt_depth), (ref, _) = view(R_tgt, c_tgt), view(R_ref, c_ref)
    T = torch.from_numpy(relative_pose(pose(R_tgt, c_tgt), pose(R_ref, c_ref))[:3])[None]
    r1 = mat2euler(T[:, :, :3])
    K = torch.from_numpy(setup.K)[None]
    ops = get_backend("ext")
    rectified, valid = rectify.rotation_warp(ops, ref, r1, K)
    # The rectified reference is the view from the reference's centre in the target's
    # orientation (camera-to-world R_ref R1 = R_tgt) ...
    virtual, _ = view(R_tgt, c_ref)
    assert mean_error(rectified, virtual, valid) < 0.5 * mean_error(ref, virtual, valid)
    # ... so the pose target -> rectified reference is [I | R^T t]: with the target's depth
    # it warps the rectified reference onto the target, as T warps the reference.
    t_rect = T[:, :, :3].transpose(1, 2) @ T[:, :, 3:]
    T_rect = torch.cat([torch.eye(3, dtype=torch.float64)[None], t_rect], 2)
    warped, _, in_view = ops.inverse_warp(torch.cat([rectified, valid], 1), tgt_depth, T_rect, K)
    mask = in_view * (warped[:, 3:] > 0.999)
    direct, _, _ = ops.inverse_warp(ref, tgt_depth, T, K)
    error = mean_error(warped[:, :3], tgt, mask)
    assert error < 0.5 * mean_error(rectified, tgt, mask)  # the parallax is explained
    assert error < 1.5 * mean_error(direct, tgt, mask)  # as well as by warping the reference
    # Composing the rectification with that pose gives back T_ref<-tgt.
    vec = torch.cat([t_rect[:, :, 0], torch.zeros(1, 3, dtype=torch.float64)], 1)
    torch.testing.assert_close(rectify.compose_pose(vec, r1), T, rtol=0, atol=1e-12)


def test_rotation_losses_against_hand_computed_values():
    r1 = torch.tensor([[0.1, -0.02, 0.0], [0.0, 0.03, -0.04]], requires_grad=True)
    r2 = torch.tensor([[0.03, 0.05, -0.01], [0.0, -0.01, 0.0]], requires_grad=True)
    # max(0, |r2| - |r1| + 0.05) per angle: 0, 0.08, 0.06 / 0.05, 0.03, 0.01
    triplet = losses.rotation_triplet_loss(r1, r2)
    assert triplet.item() == pytest.approx((0.08 + 0.06 + 0.05 + 0.03 + 0.01) / 6, abs=1e-7)
    triplet.backward()
    active = torch.tensor([[0, 1, 1], [1, 1, 1]], dtype=torch.float32)
    # d/dr2 = sign(r2) / 6 where active (|.| has gradient 0 at 0); d/dr1 = -sign(r1) / 6
    torch.testing.assert_close(r2.grad, active * torch.sign(r2.detach()) / 6)
    torch.testing.assert_close(r1.grad, -active * torch.sign(r1.detach()) / 6)
    r3 = torch.tensor([[0.01, 0.02, -0.03]])
    r3_gt = torch.tensor([[0.0, 0.05, 0.0]])
    assert losses.rotation_consistency_loss(r3, r3_gt).item() == pytest.approx(0.07 / 3)


def test_r3_supervision_switches_at_both_bounds():
    lo, hi = rectify.CONSISTENCY_RANGE
    eps = 1e-5
    m = torch.tensor([lo * (1 - eps), lo, lo * (1 + eps), hi * (1 - eps), hi, hi * (1 + eps)])
    signs = torch.tensor([1.0, -1.0, 1.0])
    r1 = m[:, None] * signs  # mean |angle| = m exactly
    assert torch.equal(r1.abs().mean(-1), m)
    gen = torch.Generator().manual_seed(5)
    target = rectify.consistency_target(r1.requires_grad_(), gen)
    assert not target.requires_grad  # r1 is detached
    inside = torch.tensor([False, False, True, True, False, False])
    torch.testing.assert_close(target[inside], r1.detach()[inside], rtol=0, atol=0)
    random = target[~inside]
    assert (random.abs() <= rectify.RANDOM_ROTATION).all()
    assert not torch.isin(random, r1.detach()).any()
    # drawn from the generator, the same for the same seed, for every pair
    again = rectify.consistency_target(r1, torch.Generator().manual_seed(5))
    torch.testing.assert_close(again, target, rtol=0, atol=0)
    other = rectify.consistency_target(r1, torch.Generator().manual_seed(6))
    assert not torch.equal(other[~inside], random)


def test_random_r3_targets_are_uniform_in_the_range():
    r1 = torch.zeros(20000, 3)
    target = rectify.consistency_target(r1, torch.Generator().manual_seed(0))
    a = rectify.RANDOM_ROTATION
    assert target.min() >= -a and target.max() <= a
    # uniform on [-a, a]: mean 0 (sd a / sqrt(3 n)), |x| averages a / 2
    assert abs(target.mean().item()) < 4 * a / (3 * 60000) ** 0.5
    assert target.abs().mean().item() == pytest.approx(a / 2, rel=0.02)


def test_rectify_net_is_a_small_rotation_regressor():
    net = RectifyNet(18)
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    angles = net(a, b)
    assert angles.shape == (2, 3) and angles.abs().max() < 0.5
    angles.sum().backward()
    assert net.decoder[-1].weight.grad.abs().sum() > 0
    assert set(net.state_dict()) == set(PoseNet(18).state_dict())  # the PoseNet's layers


class Fixed(torch.nn.Module):
    """A network that returns fixed outputs and records its inputs."""

    def __init__(self, out):
        super().__init__()
        self.out, self.inputs = out, None

    def forward(self, a, b):
        self.inputs = (a, b)
        return self.out.expand(a.shape[0], -1)


def test_predicted_pose_of_a_v2_model_composes_rectification_and_posenet():
    g = torch.Generator().manual_seed(2)
    tgt, ref = (smooth_field(2, 3, 32, 32, generator=g, dtype=torch.float32) for _ in "ab")
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]]).expand(2, 3, 3)
    angles = torch.tensor([[0.03, -0.02, 0.01]])
    vec = torch.tensor([[0.1, 0.0, -0.2, 0.01, 0.02, -0.01]])
    rectify_net, pose_net = Fixed(angles), Fixed(vec)
    T = rectify.predict_pose(pose_net, tgt, ref, K, rectify_net)
    torch.testing.assert_close(T, rectify.compose_pose(vec.expand(2, 6), angles.expand(2, 3)))
    assert rectify_net.inputs[0] is tgt and rectify_net.inputs[1] is ref
    expected, _ = rectify.rotation_warp(get_backend("ext"), ref, angles.expand(2, 3), K)
    torch.testing.assert_close(pose_net.inputs[1], expected)  # the PoseNet saw the rectified
    # R1 R' and R1 t', checked on the matrices
    R1, Rt = euler2mat(angles), rectify.pose_vec2mat(vec)
    torch.testing.assert_close(T[0], (R1 @ Rt)[0])
    # without a rectify_net (V1, V3): the PoseNet's pose on the pair as it is
    T1 = rectify.predict_pose(pose_net, tgt, ref, K)
    assert pose_net.inputs[1] is ref
    torch.testing.assert_close(T1, Rt.expand(2, 3, 4))


def test_rotation_shake_changes_only_the_camera_rotation():
    def setup(shake):
        return scenes.indoor(np.random.default_rng(7), (48, 64), 40, 0.25, shake)

    plain, shaken = setup(0.0), setup(0.06)
    steps = []
    for s in (plain, shaken):
        Rs = np.stack([R for R, _ in s.poses])
        rel = np.einsum("nji,njk->nik", Rs[1:], Rs[:-1])  # R_{i+1}^T R_i
        steps.append(mat2euler(torch.from_numpy(rel)).abs().mean().item())
    for a, b in zip(plain.poses, shaken.poses, strict=True):
        np.testing.assert_array_equal(a[1], b[1])  # the same centres: drawn before the shake
    for a, b in zip(plain.static, shaken.static, strict=True):
        np.testing.assert_array_equal(a.center, b.center)
    # consecutive frames differ by about 0.45 x 0.06 rad more per axis
    assert 0.015 < steps[1] - steps[0] < 0.04, steps


def test_synth_rejects_a_bad_rotation(tmp_path):
    from scdepth.data.synth import generate

    with pytest.raises(ValueError, match="rotation must be in"):
        generate(tmp_path / "x", rotation=-0.1, progress=False)
