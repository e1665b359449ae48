"""ResNet encoder (torchvision's definitions) taking one or several stacked RGB images."""

import torch
import torch.nn as nn
import torchvision.models as tvm

_RESNETS = {18: (tvm.resnet18, tvm.ResNet18_Weights), 50: (tvm.resnet50, tvm.ResNet50_Weights)}


class PretrainedUnavailable(RuntimeError):
    pass


def load_imagenet(layers):
    """torchvision's ImageNet weights of ResNet-`layers`, with a clear error when offline."""
    weights = _RESNETS[layers][1].IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False)
    except Exception as e:  # URLError, socket errors, HTTP errors: all mean "not reachable"
        raise PretrainedUnavailable(
            f"could not load torchvision's ImageNet weights for ResNet-{layers} ({e}). "
            "They are downloaded once into TORCH_HOME; without network access set "
            "`pretrained: none` in the config (or copy the file into "
            f"{torch.hub.get_dir()}/checkpoints)."
        ) from e


class ResnetEncoder(nn.Module):
    """Features at strides 2, 4, 8, 16 and 32 of a ResNet-18/50 whose first convolution takes
    `num_images` stacked RGB images (ImageNet weights are repeated and divided, as in
    Monodepth2, when more than one image is stacked; random weights are drawn for every
    input channel)."""

    def __init__(self, layers=18, pretrained=False, num_images=1):
        super().__init__()
        if layers not in _RESNETS:
            raise ValueError(f"resnet_layers must be 18 or 50, got {layers}")
        net = _RESNETS[layers][0]()
        if pretrained:
            net.load_state_dict(load_imagenet(layers))
        if num_images > 1:
            w = net.conv1.weight.data
            net.conv1 = nn.Conv2d(3 * num_images, 64, 7, stride=2, padding=3, bias=False)
            if pretrained:
                net.conv1.weight.data = torch.cat([w] * num_images, 1) / num_images
            else:
                # Each image its own weights: copies of one random kernel would make the
                # network see only the images' mean, the same for (a, b) and (b, a), so a
                # PoseNet could not tell which way the camera moved (and barely learns to).
                nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        del net.fc
        self.net = net
        expansion = 1 if layers == 18 else 4
        self.channels = [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]

    def forward(self, x):
        n = self.net
        f0 = n.relu(n.bn1(n.conv1(x)))
        f1 = n.layer1(n.maxpool(f0))
        f2 = n.layer2(f1)
        f3 = n.layer3(f2)
        f4 = n.layer4(f3)
        return [f0, f1, f2, f3, f4]
