from .depth_net import DepthNet
from .pose_net import PoseNet
from .rectify_net import RectifyNet

__all__ = ["DepthNet", "PoseNet", "RectifyNet"]
