"""torch Datasets over the SC-Depth layout: training sequences, validation and test frames.

Frames that become unreadable after the up-front check (deleted or corrupted mid-run) raise
``UnreadableFrame`` from ``__getitem__``; with ``DataLoader`` workers it is re-raised in the
main process and the iterator stays usable, so the trainer catches it around ``next(it)``,
counts the batch as skipped and goes on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from . import transforms as T
from .layout import (
    UnreadableFrame,
    read_depth,
    read_image,
    read_mask,
    read_pseudo_depth,
    validate_layout,
    validate_testing,
)
from .specs import get_spec


def _check_size(image_size) -> tuple[int, int]:
    h, w = (int(v) for v in image_size)
    if h < 8 or w < 8:
        raise ValueError(f"image_size must be (H, W) with both >= 8, got {tuple(image_size)}")
    return h, w


class TrainFolder(Dataset):
    """Samples (target, references) of ``sequence_length`` frames ``skip_frames`` apart.

    Item: "tgt" [3, H, W] and "refs" [N, 3, H, W] normalised float32 (N = sequence_length - 1,
    references ordered -m*k, ..., -k, k, ..., m*k), "K" [3, 3] float32 for the output,
    "pseudo_depth" [1, H, W] float32 relative depth (when use_pseudo_depth: pass
    ``cfg.uses_pseudo_depth()``, so that scenes without leres_depth/ serve the methods that
    do not read it).
    Augmentation is drawn per item from (seed, epoch, index) when ``seed`` is given (call
    ``set_epoch``), else from fresh entropy; all frames of a sample share it.
    """

    def __init__(
        self,
        root,
        *,
        image_size,
        sequence_length: int = 3,
        skip_frames: int = 1,
        augment: bool = True,
        split: str = "train",
        use_pseudo_depth: bool = True,
        seed: int | None = None,
        full_check: bool = False,
    ):
        self.image_size = _check_size(image_size)
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.use_pseudo_depth = use_pseudo_depth
        self.scenes = validate_layout(
            root,
            split,
            sequence_length=sequence_length,
            skip_frames=skip_frames,
            use_pseudo_depth=use_pseudo_depth,
            full_check=full_check,
        )
        m = (sequence_length - 1) // 2
        self.shifts = [s * skip_frames for s in range(-m, m + 1) if s != 0]
        reach = m * skip_frames
        self.samples = [
            (si, i)
            for si, scene in enumerate(self.scenes)
            for i in range(reach, len(scene.frames) - reach)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _augmentation(self, index: int) -> T.Augmentation:
        if not self.augment:
            return T.Augmentation()
        key = None if self.seed is None else [self.seed, self.epoch, index]
        return T.Augmentation.sample(np.random.default_rng(key))

    def _load_image(self, path, size):
        img = read_image(path)
        if img.shape[:2] != size:
            raise UnreadableFrame(path, f"size {img.shape[:2]} differs from the scene's {size}")
        return img

    def __getitem__(self, index: int) -> dict:
        si, i = self.samples[index]
        scene = self.scenes[si]
        aug = self._augmentation(index)
        out = self.image_size
        frames = [self._load_image(scene.frames[i + s], scene.size) for s in [0, *self.shifts]]
        imgs = [T.to_tensor(T.apply(f, out, aug)) for f in frames]
        K = T.adjust_intrinsics(scene.K, scene.size, out, aug)
        item = {
            "tgt": imgs[0],
            "refs": torch.stack(imgs[1:]),
            "K": torch.from_numpy(K.astype(np.float32)),
        }
        if self.use_pseudo_depth:
            pd = read_pseudo_depth(scene.pseudo[i])
            if pd.shape != scene.size:  # a model may have written it at another size
                pd = T.apply(pd, scene.size, T.Augmentation(), nearest=True)
            item["pseudo_depth"] = torch.from_numpy(T.apply(pd, out, aug, nearest=True).copy())[
                None
            ]
        return item


class _EvalFolder(Dataset):
    """Items: "img" [3, H, W] normalised at image_size, "depth" [1, h, w] GT metres at the
    stored size, "mask" [1, h, w] bool dynamic pixels (only when every frame has one), "name"."""

    def __init__(self, image_size, dataset: str, records):
        self.spec = get_spec(dataset)  # image_size None: the dataset's own (specs.py)
        self.image_size = _check_size(self.spec.image_size if image_size is None else image_size)
        self.records = records  # (name, image path, depth path, mask path or None)
        self.has_mask = all(r[3] is not None for r in records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        name, img_path, depth_path, mask_path = self.records[index]
        depth = read_depth(depth_path, self.spec.depth_png_scale)
        item = {
            "img": T.resize_image(read_image(img_path), self.image_size),
            "depth": torch.from_numpy(depth)[None],
            "name": name,
        }
        if self.has_mask:
            mask = read_mask(mask_path)
            if mask.shape != depth.shape:
                raise UnreadableFrame(mask_path, f"mask {mask.shape} != depth {depth.shape}")
            item["mask"] = torch.from_numpy(mask)[None]
        return item


class ValFolder(_EvalFolder):
    """Frames of ``ROOT/training/<val.txt scenes>`` that have GT depth; name "<scene>/<stem>"."""

    def __init__(
        self, root, *, image_size=None, dataset: str = "synthetic", full_check: bool = False
    ):
        scenes = validate_layout(
            root,
            "val",
            sequence_length=None,
            use_pseudo_depth=False,
            require_gt=True,
            full_check=full_check,
        )
        records = [
            (f"{s.name}/{f.stem}", f, d, m)
            for s in scenes
            for f, d, m in zip(s.frames, s.depth, s.masks, strict=True)
            if d is not None
        ]
        super().__init__(image_size, dataset, records)


class TestFolder(_EvalFolder):
    """``ROOT/testing``: color/, depth/ and optional seg_mask/ paired by stem; name = stem."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, root, *, image_size=None, dataset: str = "synthetic", full_check: bool = False
    ):
        self.unscored = []  # images without GT depth, left out
        samples = validate_testing(root, full_check=full_check, unscored=self.unscored)
        super().__init__(image_size, dataset, [(s.name, s.color, s.depth, s.mask) for s in samples])
