"""Per-dataset facts: how ground truth is stored, the evaluation range and crop, default sizes.

The numbers follow the public SC-Depth data and evaluation code (SC_Depth_pl,
``compute_metrics``); ``configs/*.yaml`` are written from this table.

GT depth unit of the layout: **metres**. ``scdepth-prepare`` (and ``scdepth-synth``) write GT
as float32 ``.npy`` in metres, 0 = no reading; ``.npy``/``.npz`` are never scaled. Only 16-bit
PNG GT is scaled, and its scales live here, in one place: ``DatasetSpec.depth_png_scale`` for
PNGs inside a layout (SC-Depth's prepared test sets), ``RAW_DEPTH_PNG_SCALES`` for the raw
recordings the importers read (their ``--depth-scale`` default).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    """What the loader and the evaluator need to know about one dataset.

    depth_png_scale: a uint16 PNG depth value divided by this is metres (``.npy``/``.npz``
        files hold metres already and are never scaled).
    depth_ext: the extension its ground truth usually has (any of .png/.npy/.npz is read).
    min_depth, max_depth: evaluation range in metres; GT outside it is ignored and the
        median-scaled prediction is clamped to it.
    eval_crop: "garg" (KITTI), "eigen_nyu" (NYU), or None.
    image_size: (H, W) the SC-Depth configs train at.
    skip_frames: frame distance between target and references: SC_Depth_pl's default 1,
        and 10 in its configs for the 30 fps hand-held TUM and Bonn sequences
        (``configs/v1|v2|v3/{tum,bonn}.txt``: ``skip_frames = 10``).
    """

    name: str
    depth_png_scale: float
    depth_ext: str
    min_depth: float
    max_depth: float
    eval_crop: str | None
    image_size: tuple[int, int]
    skip_frames: int = 1


# min_depth 1e-3 m is the public evaluation code's for every dataset.
DATASETS: dict[str, DatasetSpec] = {
    "kitti": DatasetSpec("kitti", 256.0, ".npy", 1e-3, 80.0, "garg", (256, 832)),
    "ddad": DatasetSpec("ddad", 256.0, ".npz", 1e-3, 200.0, None, (384, 640)),
    "nyu": DatasetSpec("nyu", 5000.0, ".png", 1e-3, 10.0, "eigen_nyu", (256, 320)),
    "bonn": DatasetSpec("bonn", 1000.0, ".png", 1e-3, 10.0, None, (256, 320), 10),
    "tum": DatasetSpec("tum", 1000.0, ".png", 1e-3, 10.0, None, (256, 320), 10),
    # Microsoft 7-Scenes (scdepth-prepare --format 7scenes): Kinect at 30 fps walking slowly
    # (about 7 mm a frame), so references 10 frames apart as for TUM; 640x480 at half size.
    "7scenes": DatasetSpec("7scenes", 1000.0, ".npy", 1e-3, 10.0, None, (192, 256), 10),
    # scdepth-synth writes float32 metres in .npy (exact; 0 = no surface, e.g. sky).
    # 100 m covers both presets (indoor rooms stay under 10 m, the outdoor street under 100 m).
    "synthetic": DatasetSpec("synthetic", 1000.0, ".npy", 1e-3, 100.0, None, (128, 160)),
}

# Raw recordings: a 16-bit depth PNG value / scale = metres. TUM RGB-D and Bonn RGB-D
# Dynamic (same layout) store 1/5000 m; RealSense and Azure Kinect SDKs and 7-Scenes save
# millimetres.
RAW_DEPTH_PNG_SCALES: dict[str, float] = {
    "tum": 5000.0,
    "bonn": 5000.0,
    "realsense": 1000.0,
    "7scenes": 1000.0,
}

# Crop boxes as fractions of the GT size: (y1, y2, x1, x2).
EVAL_CROPS: dict[str, tuple[float, float, float, float]] = {
    # Garg et al. 2016, as in every KITTI Eigen-split evaluation.
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    # Eigen et al. 2014 NYUv2 crop [45:471, 41:601] of 480x640.
    "eigen_nyu": (0.09375, 0.98125, 0.0640625, 0.9390625),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of ``name``; a clear error lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}") from None
