import math

import pytest
import torch

from scdepth.geometry import euler2mat, pose_vec2mat


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
