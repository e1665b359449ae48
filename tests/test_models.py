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


@pytest.mark.parametrize("net_type", ["PoseNet", "RectifyNet"])
def test_an_untrained_pose_net_tells_the_order_of_its_images(net_type):
    # copies of one kernel on both images would see only their mean: the same output for
    # (a, b) and (b, a), so the direction of the motion could not be learnt
    import scdepth.models as models

    torch.manual_seed(0)
    net = getattr(models, net_type)(18).eval()
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        forward, backward = net(a, b), net(b, a)
    assert (forward - backward).abs().max() > 0.01 * forward.abs().max()


def test_pose_net_scales_rotation_and_translation_apart():
    """The raw output's translation is scaled by POSE_SCALE and its rotation by
    rotation_scale; a RectifyNet (rotation only) by rotation_scale alone."""
    from scdepth.models import RectifyNet
    from scdepth.models.pose_net import POSE_SCALE

    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    nets = {}
    for scale in (0.01, 0.3):
        torch.manual_seed(1)
        nets[scale] = PoseNet(18, rotation_scale=scale).eval()
    with torch.no_grad():
        small, large = nets[0.01](a, b), nets[0.3](a, b)
        raw = nets[0.01].decoder(nets[0.01].encoder(torch.cat([a, b], 1))[-1]).mean((2, 3))
    torch.testing.assert_close(small[:, :3], POSE_SCALE * raw[:, :3])
    torch.testing.assert_close(large[:, :3], small[:, :3])
    torch.testing.assert_close(large[:, 3:], 30 * small[:, 3:])
    torch.manual_seed(1)
    rect = RectifyNet(18, rotation_scale=0.3).eval()
    with torch.no_grad():
        raw = rect.decoder(rect.encoder(torch.cat([a, b], 1))[-1]).mean((2, 3))
        torch.testing.assert_close(rect(a, b), 0.3 * raw)


def test_rotation_scale_is_the_public_one_by_default_and_checked():
    from scdepth import config
    from scdepth.models.pose_net import POSE_SCALE

    assert config.load().pose_rotation_scale == POSE_SCALE == PoseNet(18).rotation_scale
    with pytest.raises(ValueError, match="pose_rotation_scale must be > 0"):
        config.load(overrides=["pose_rotation_scale=0"])


def test_resnet50_encoder_channels():
    net = DepthNet(50)
    assert net.encoder.channels == [64, 256, 512, 1024, 2048]


def test_bad_layers():
    with pytest.raises(ValueError, match="18 or 50"):
        DepthNet(34)
