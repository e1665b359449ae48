import math

import pytest
import torch

from scdepth.geometry import euler2mat, pose_vec2mat, sobel


def axis_rotation(axis, a):
    """Rotation by angle a about a coordinate axis, built independently (Rodrigues)."""
    k = torch.zeros(3, dtype=torch.float64)
    k[axis] = 1.0
    Kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(a) * Kx + (1 - math.cos(a)) * Kx @ Kx


def test_euler2mat_is_rx_ry_rz():
    angles = torch.tensor([[0.3, -0.7, 1.1]], dtype=torch.float64)
    expected = axis_rotation(0, 0.3) @ axis_rotation(1, -0.7) @ axis_rotation(2, 1.1)
    torch.testing.assert_close(euler2mat(angles)[0], expected)


def test_pose_vec2mat_layout_and_orthonormality():
    vec = torch.tensor([[1.0, 2.0, 3.0, 0.1, 0.2, 0.3], [0, 0, 0, 0, 0, 0]], dtype=torch.float64)
    T = pose_vec2mat(vec)
    assert T.shape == (2, 3, 4)
    torch.testing.assert_close(T[:, :, 3], vec[:, :3])
    R = T[:, :, :3]
    torch.testing.assert_close(
        R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    )
    torch.testing.assert_close(T[1], torch.eye(3, 4, dtype=torch.float64))


def test_pose_vec2mat_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"vec must be \[B, 6\]"):
        pose_vec2mat(torch.zeros(2, 7))


def test_sobel_is_the_normalised_3x3_filter_with_replicate_padding():
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype) / 8
    k = torch.stack([kx, kx.T]).unsqueeze(1).repeat(3, 1, 1, 1)  # per channel: d/du, d/dv
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    want = torch.nn.functional.conv2d(xp, k, groups=3).view(2, 3, 2, 7, 9)
    gu, gv = sobel(x)
    torch.testing.assert_close(gu, want[:, :, 0])
    torch.testing.assert_close(gv, want[:, :, 1])
    torch.autograd.gradcheck(lambda t: sobel(t), (x[:1, :1, :4, :5].detach().requires_grad_(),))
