"""Training augmentation of SC-Depth (flip, scale-and-crop, resize) with intrinsics kept exact.

Pixel centres are at integer coordinates (project convention), so a horizontal flip maps
u -> W - 1 - u, hence cx' = W - 1 - cx (the public code's W - cx is half a pixel off in this
convention), and a resize by s maps u -> (u + 0.5) s - 0.5, which is also OpenCV's mapping.
Zoom and crop are folded into one resize: the frame is resized straight to the zoomed output
size and then cropped, so each frame is interpolated once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

MEAN, STD = 0.45, 0.225  # SC-Depth's image normalisation
MAX_ZOOM = 1.15  # RandomScaleCrop of the public code: zoom in [1, 1.15], per axis


@dataclass(frozen=True)
class Augmentation:
    flip: bool = False
    zoom: tuple[float, float] = (1.0, 1.0)  # (y, x)
    crop: tuple[float, float] = (0.0, 0.0)  # (y, x) crop offset as a fraction of the margin

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Augmentation:
        return cls(
            flip=bool(rng.random() < 0.5),
            zoom=tuple(rng.uniform(1.0, MAX_ZOOM, 2)),
            crop=tuple(rng.random(2)),
        )


def _geometry(in_size, out_size, aug: Augmentation):
    """Zoomed size and integer crop offset (y0, x0)."""
    zh = max(out_size[0], round(out_size[0] * aug.zoom[0]))
    zw = max(out_size[1], round(out_size[1] * aug.zoom[1]))
    y0 = int(aug.crop[0] * (zh - out_size[0]) + 0.5)
    x0 = int(aug.crop[1] * (zw - out_size[1]) + 0.5)
    return (zh, zw), (y0, x0)


def scale_intrinsics(K: np.ndarray, in_size, out_size, crop=None) -> np.ndarray:
    """K of an image of in_size (H, W) -> K after cutting out ``crop`` and resizing it to
    out_size (H, W); the one place for this math (importers and augmentation use it).

    crop: (y0, x0, h, w) in input pixels, default the whole image. With pixel centres at
    integers a crop maps u -> u - x0 and a resize by s maps u -> (u + 0.5) s - 0.5.
    """
    K = np.array(K, dtype=np.float64)
    y0, x0, h, w = (0, 0, *in_size) if crop is None else crop
    sy, sx = out_size[0] / h, out_size[1] / w
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 1] *= sx
    K[0, 2] = (K[0, 2] - x0 + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] - y0 + 0.5) * sy - 0.5
    return K


def adjust_intrinsics(K: np.ndarray, in_size, out_size, aug: Augmentation) -> np.ndarray:
    """K of the stored frame of size in_size (H, W) -> K of the augmented output."""
    K = np.array(K, dtype=np.float64)
    (zh, zw), (y0, x0) = _geometry(in_size, out_size, aug)
    if aug.flip:
        K[0, 2] = in_size[1] - 1 - K[0, 2]
    K = scale_intrinsics(K, in_size, (zh, zw))  # the zoom is a resize ...
    return scale_intrinsics(K, (zh, zw), out_size, (y0, x0, *out_size))  # ... then a crop


def apply(img: np.ndarray, out_size, aug: Augmentation, nearest: bool = False) -> np.ndarray:
    """Flip, resize to the zoomed size and crop one [H, W(, C)] array."""
    (zh, zw), (y0, x0) = _geometry(img.shape[:2], out_size, aug)
    if aug.flip:
        img = img[:, ::-1]
    if nearest:
        interp = cv2.INTER_NEAREST
    elif zh < img.shape[0] or zw < img.shape[1]:
        interp = cv2.INTER_AREA  # shrinking: average, do not alias
    else:
        interp = cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(img), (zw, zh), interpolation=interp)
    return img[y0 : y0 + out_size[0], x0 : x0 + out_size[1]]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> normalised float32 [3, H, W]: (x / 255 - 0.45) / 0.225."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    return (x / 255.0 - MEAN) / STD


def resize_image(img: np.ndarray, out_size) -> torch.Tensor:
    """Evaluation input: resize (no augmentation) and normalise."""
    return to_tensor(apply(img, out_size, Augmentation()))
