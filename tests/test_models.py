import pytest
import torch

from scdepth.models import DepthNet, PoseNet
from scdepth.models.depth_net import ALPHA, BETA


def test_depth_net_output_shape_and_range():
    net = DepthNet(18).eval()
    with torch.no_grad():
        d = net(torch.randn(2, 3, 64, 96))
    assert d.shape == (2, 1, 64, 96)
    assert (d >= 1 / (ALPHA + BETA)).all() and (d <= 1 / BETA).all()


def test_depth_net_rejects_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        DepthNet(18)(torch.randn(1, 3, 60, 96))


def test_pose_net_is_small_at_start_and_differentiable():
    net = PoseNet(18)
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    vec = net(a, b)
    assert vec.shape == (2, 6)
    assert vec.abs().max() < 0.5  # x 0.01: initial poses are small
    vec.sum().backward()
    assert net.encoder.net.conv1.weight.grad.abs().sum() > 0
    assert net.encoder.net.conv1.weight.shape[1] == 6


def test_resnet50_encoder_channels():
    net = DepthNet(50)
    assert net.encoder.channels == [64, 256, 512, 1024, 2048]


def test_bad_layers():
    with pytest.raises(ValueError, match="18 or 50"):
        DepthNet(34)
