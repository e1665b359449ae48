from .depth_net import DepthNet
from .pose_net import PoseNet

__all__ = ["DepthNet", "PoseNet"]
