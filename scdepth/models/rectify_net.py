"""RectifyNet: the Auto-Rectify Network (ARN) of SC-DepthV2, rotation only."""

from .pose_net import PoseNet


class RectifyNet(PoseNet):
    """(img1, img2) [B, 3, H, W] each -> [B, 3] Euler angles (rx, ry, rz) in radians of the
    rotation R that maps points of img1's camera into img2's camera (R = euler2mat(angles),
    the rotation part of the pose PoseNet(img1, img2) would give). Warping img2 by R alone
    (scdepth.rectify.rotation_warp) removes the rotation between the two views.

    ResNet on the stacked pair, the PoseNet's decoder with 3 outputs, x rotation_scale (Bian et al.,
    "Auto-Rectify Network for Unsupervised Indoor Depth Estimation", TPAMI 2022)."""

    OUTPUTS = 3
