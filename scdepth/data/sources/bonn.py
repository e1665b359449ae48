"""Bonn RGB-D Dynamic: the TUM layout with its own camera and a marker's trajectory.

A sequence is recognised by its folder name (``rgbd_bonn_*``, as the dataset names them).
Its groundtruth.txt is the pose of the motion-capture marker on the sensor, in the motion
capture's (ROS) axes, not the colour camera's: the dataset publishes the fixed transforms
``T_ros`` and ``T_m``, and the camera-to-world pose is ``T_ros^-1 T_gt T_ros T_m``. The colour
camera's published calibration is built in (d0..d4 are OpenCV's k1 k2 p1 p2 k3, as on TUM's
page).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

BONN_SIZE = (480, 640)
BONN_CALIBRATION = (
    (542.822841, 542.576870, 315.593520, 237.756098),
    (0.039903, -0.099343, -0.000730, -0.000144, 0.0),
)
T_ROS = np.array([[-1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
T_M_PUBLISHED = np.array(
    [
        [1.0157, 0.1828, -0.2389, 0.0113],
        [0.0009, -0.8431, -0.6413, -0.0098],
        [-0.3009, 0.6147, -0.8085, 0.0111],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def nearest_rigid(T: np.ndarray) -> np.ndarray:
    """T [4, 4] with its 3x3 block replaced by the nearest rotation (SVD): the published T_m's
    block is a rotation times a uniform scale, and poses.txt must stay rigid."""
    U, _, Vt = np.linalg.svd(T[:3, :3])
    out = T.copy()
    out[:3, :3] = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    return out


T_M = nearest_rigid(T_M_PUBLISHED)


def is_bonn(source: Path) -> bool:
    return re.match(r"rgbd_bonn_", Path(source).resolve().name) is not None


def marker_to_camera(marker_to_world: np.ndarray) -> np.ndarray:
    """Marker poses [N, 4, 4] from groundtruth.txt -> camera-to-world poses [N, 4, 4]."""
    return np.linalg.inv(T_ROS) @ marker_to_world @ T_ROS @ T_M
