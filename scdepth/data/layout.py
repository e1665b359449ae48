"""Reading the SC-Depth folder layout, and checking all of it before training starts.

    ROOT/training/<scene>/*.jpg|*.png        frames, sorted by name
    ROOT/training/<scene>/cam.txt            3x3 intrinsics at the stored resolution
    ROOT/training/<scene>/frame_index.txt    optional: indices of the frames to use
    ROOT/training/<scene>/leres_depth/*.png  pseudo-depth, one per frame (uint16, relative);
                                             read only when the losses use it (SC-DepthV3)
    ROOT/training/<scene>/depth/*            optional GT depth, one per frame (by stem)
    ROOT/training/<scene>/poses.txt, times.txt  optional GT poses / timestamps (poses.py)
    ROOT/training/<scene>/seg_mask/*.png     optional dynamic masks (scdepth-synth writes them)
    ROOT/training/train.txt, val.txt         scene names
    ROOT/testing/color/*, depth/*, seg_mask/*

GT depth is in metres: float32 ``.npy`` (what scdepth-prepare and scdepth-synth write; 0 = no
reading) or ``.npz``; a 16-bit ``.png`` is divided by the dataset's ``depth_png_scale``
(scdepth/data/specs.py, the one place for those scales). GT may be stored at another size
than the frames (the evaluator resizes each prediction to its GT).

How cheap the check is: every file's first bytes are compared with its format's signature
(catches empty, truncated-to-nothing and mislabelled files) and the first frame and first
pseudo-depth of each scene are decoded in full. A file whose body is corrupt past its header
is found only when it is loaded: the loaders then raise ``UnreadableFrame``. Pass
``full_check=True`` to decode every file up front instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
DEPTH_EXTS = (".png", ".npy", ".npz")
_SIGNATURES = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".jpeg": b"\xff\xd8\xff",
    ".npy": b"\x93NUMPY",
    ".npz": b"PK",
}


class DatasetError(ValueError):
    """The data on disk is not in the SC-Depth layout; the message names the file."""


class UnreadableFrame(DatasetError):
    """A file could not be read while loading (e.g. deleted or corrupted after validation).

    Takes one string argument so that torch's DataLoader can re-raise it from a worker.
    """

    def __init__(self, path, reason: str = "cannot be read or decoded"):
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


@dataclass
class Scene:
    name: str
    path: Path
    frames: list[Path]
    K: np.ndarray  # [3, 3] float64 at the stored resolution
    size: tuple[int, int]  # stored (H, W), from the first frame
    pseudo: list[Path] | None = None  # aligned with frames
    depth: list[Path | None] = field(default_factory=list)  # aligned with frames
    masks: list[Path | None] = field(default_factory=list)  # aligned with frames


def natural_key(path: Path) -> tuple:
    """Sort key that reads digit runs as numbers (frame_2 before frame_10); re.split puts text
    at even and digits at odd positions, so keys always compare like with like."""
    parts = re.split(r"(\d+)", path.name)
    return [int(t) if k % 2 else t for k, t in enumerate(parts)], path.name


def list_files(folder: Path, exts=IMAGE_EXTS) -> list[Path]:
    """The files of `folder` with one of `exts`, in natural name order (frame_2 before
    frame_10): the order of the frames of every folder the project reads."""
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)
    return sorted(files, key=natural_key)


def check_signature(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise DatasetError(f"{path}: file is empty")
    sig = _SIGNATURES[path.suffix.lower()]
    if not head.startswith(sig):
        raise DatasetError(f"{path}: not a {path.suffix.lower()} file (wrong signature)")


def check_intrinsics(K, source) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise DatasetError(f"{source}: intrinsics must be 3x3, got {K.size} numbers")
    if not np.isfinite(K).all():
        raise DatasetError(f"{source}: intrinsics contain non-finite values")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DatasetError(f"{source}: fx and fy must be > 0, got {K[0, 0]}, {K[1, 1]}")
    if abs(np.linalg.det(K)) < 1e-12 or not np.allclose(K[2], [0, 0, 1]):
        raise DatasetError(f"{source}: intrinsics must be invertible with last row 0 0 1")
    return K


def read_intrinsics(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (every scene needs its 3x3 intrinsics)")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1).ravel()
    except ValueError as e:
        raise DatasetError(f"{path}: cannot parse intrinsics: {e}") from None
    if values.size != 9:
        raise DatasetError(f"{path}: intrinsics must be 3x3, got {values.size} numbers")
    return check_intrinsics(values.reshape(3, 3), path)


def _imread(path: Path, flags: int):
    if not path.is_file():  # say so rather than let OpenCV print a warning
        raise UnreadableFrame(path, "missing")
    return cv2.imread(str(path), flags)


def read_image(path: Path) -> np.ndarray:
    """uint8 RGB [H, W, 3]."""
    img = _imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UnreadableFrame(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_pseudo_depth(path: Path) -> np.ndarray:
    """Relative depth (larger = farther) as float32 [H, W] in (0, 1]: uint16 / 65535."""
    d = _imread(path, cv2.IMREAD_UNCHANGED)
    if d is None or d.ndim != 2:
        raise UnreadableFrame(path, "pseudo-depth must be a single-channel PNG")
    return d.astype(np.float32) / (65535.0 if d.dtype == np.uint16 else 255.0)


def read_depth(path: Path, png_scale: float) -> np.ndarray:
    """GT depth in metres, float32 [H, W]; 0 (or non-finite) marks pixels without GT."""
    try:
        if path.suffix.lower() == ".png":
            d = _imread(path, cv2.IMREAD_UNCHANGED)
            d = None if d is None else d.astype(np.float32) / png_scale
        elif path.suffix.lower() == ".npy":
            d = np.load(path)
        else:
            with np.load(path) as z:
                d = z["depth"] if "depth" in z.files else z[z.files[0]]
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise UnreadableFrame(path, f"cannot read depth: {e}") from None
    if d is None:
        raise UnreadableFrame(path)
    d = np.squeeze(np.asarray(d, dtype=np.float32))
    if d.ndim != 2:
        raise UnreadableFrame(path, f"depth must be [H, W], got shape {d.shape}")
    return d


def read_mask(path: Path) -> np.ndarray:
    m = _imread(path, cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise UnreadableFrame(path)
    return m > 0


def match_by_stem(frames: list[Path], folder: Path, exts) -> list[Path | None]:
    """Files of ``folder`` aligned with ``frames`` by file stem; None where none exists."""
    if not folder.is_dir():
        return [None] * len(frames)
    by_stem = {p.stem: p for p in list_files(folder, exts)}
    return [by_stem.get(f.stem) for f in frames]


def read_scene_list(training: Path, split: str) -> list[str]:
    path = training / f"{split}.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (lists the {split} scenes, one name a line)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path}: lists no scenes")
    for name in names:
        if not (training / name).is_dir():
            raise DatasetError(f"{path}: names scene {name!r}, but {training / name} is missing")
    return names


def _check_files(paths, full_check: bool, decode) -> None:
    for p in paths:
        check_signature(p)
    for p in paths if full_check else paths[:1]:
        try:
            decode(p)
        except UnreadableFrame as e:
            raise DatasetError(str(e)) from None


def load_scene(path: Path, *, use_pseudo_depth: bool, full_check: bool = False) -> Scene:
    frames = list_files(path)
    if not frames:
        raise DatasetError(f"{path}: empty scene (no {', '.join(IMAGE_EXTS)} frames)")
    K = read_intrinsics(path / "cam.txt")
    _check_files(frames, full_check, read_image)
    size = read_image(frames[0]).shape[:2]
    pseudo = None
    if use_pseudo_depth:
        pseudo_dir = path / "leres_depth"
        pseudo = list_files(pseudo_dir, (".png",)) if pseudo_dir.is_dir() else []
        if len(pseudo) != len(frames):
            root = path.parent.parent  # ROOT/training/<scene>
            raise DatasetError(
                f"{pseudo_dir}: {len(pseudo)} pseudo-depth PNGs for {len(frames)} frames; "
                "SC-DepthV3's mask_rank, normal_matching and normal_rank losses need one per "
                f"frame. Fill it with `scdepth-pseudo {root} --model MODEL.ts` (or --hub "
                "REPO:ENTRY), or train without them (method=sc_depth_v1, or no_drr=true "
                "no_lsr=true)"
            )
        _check_files(pseudo, full_check, read_pseudo_depth)
    index_file = path / "frame_index.txt"
    if index_file.is_file():
        try:
            index = [int(s) for s in index_file.read_text().split()]
        except ValueError:
            raise DatasetError(f"{index_file}: must hold integer frame indices") from None
        bad = [i for i in index if not 0 <= i < len(frames)]
        if bad:
            raise DatasetError(f"{index_file}: index {bad[0]} outside 0..{len(frames) - 1}")
        frames = [frames[i] for i in index]
        pseudo = None if pseudo is None else [pseudo[i] for i in index]
    depth = match_by_stem(frames, path / "depth", DEPTH_EXTS)
    masks = match_by_stem(frames, path / "seg_mask", IMAGE_EXTS)
    return Scene(path.name, path, frames, K, size, pseudo, depth, masks)


def validate_layout(
    root,
    split: str = "train",
    *,
    sequence_length: int | None = 3,
    skip_frames: int = 1,
    use_pseudo_depth: bool = True,
    require_gt: bool = False,
    full_check: bool = False,
) -> list[Scene]:
    """Check the scenes that ``ROOT/training/<split>.txt`` lists and return them.

    With ``sequence_length`` (odd, >= 3) every scene must hold at least
    ``(sequence_length - 1) * skip_frames + 1`` frames (None: no sequences, e.g. validation).
    With ``require_gt`` at least one frame must have GT depth. Raises DatasetError naming
    the file and what is wrong.
    """
    training = Path(root) / "training"
    if not training.is_dir():
        raise DatasetError(f"{training}: missing (expected the SC-Depth layout ROOT/training/)")
    if sequence_length is not None and (sequence_length < 3 or sequence_length % 2 == 0):
        raise ValueError(f"sequence_length must be odd and >= 3, got {sequence_length}")
    if skip_frames < 1:
        raise ValueError(f"skip_frames must be >= 1, got {skip_frames}")
    scenes = []
    for name in read_scene_list(training, split):
        scene = load_scene(
            training / name, use_pseudo_depth=use_pseudo_depth, full_check=full_check
        )
        need = 1 if sequence_length is None else (sequence_length - 1) * skip_frames + 1
        if len(scene.frames) < need:
            raise DatasetError(
                f"{scene.path}: {len(scene.frames)} frames, but sequence_length "
                f"{sequence_length} with skip_frames {skip_frames} needs {need}"
            )
        scenes.append(scene)
    if require_gt:
        gt = [d for s in scenes for d in s.depth if d is not None]
        if not gt:
            raise DatasetError(f"{training}/{split}.txt: no {split} frame has GT in depth/")
        _check_files(gt, full_check, lambda p: read_depth(p, 1.0))
    return scenes


@dataclass
class TestSample:
    name: str
    color: Path
    depth: Path
    mask: Path | None


def validate_testing(root, *, full_check: bool = False, unscored=None) -> list[TestSample]:
    """Check ``ROOT/testing`` (color/, depth/, optional seg_mask/: none or one per scored
    image) and pair files by stem. Images without GT depth (a scene imported from a source
    without GT, next to scenes with it) are left out, their paths appended to ``unscored``
    when it is a list; no image with GT at all is an error."""
    testing = Path(root) / "testing"
    color_dir = testing / "color"
    if not color_dir.is_dir():
        raise DatasetError(f"{color_dir}: missing (expected ROOT/testing/color/)")
    colors = list_files(color_dir)
    if not colors:
        raise DatasetError(f"{color_dir}: no {', '.join(IMAGE_EXTS)} images")
    depths = match_by_stem(colors, testing / "depth", DEPTH_EXTS)
    missing = [c for c, d in zip(colors, depths, strict=True) if d is None]
    if len(missing) == len(colors):
        raise DatasetError(
            f"{testing / 'depth'}: no GT depth for any test image (e.g. {missing[0].name}); "
            "scoring needs GT (scdepth-infer predicts without it)"
        )
    if unscored is not None:
        unscored.extend(missing)
    colors, depths = zip(*((c, d) for c, d in zip(colors, depths, strict=True) if d), strict=True)
    # seg_mask/ is optional (static scenes: KITTI, NYU, TUM fr1 have none; the evaluation
    # then reports all pixels only), but when it has masks it must have one for every image.
    masks = match_by_stem(colors, testing / "seg_mask", IMAGE_EXTS)
    unmasked = [c for c, m in zip(colors, masks, strict=True) if m is None]
    if unmasked and len(unmasked) < len(colors):
        raise DatasetError(f"{testing / 'seg_mask'}: no mask for {unmasked[0].name}")
    _check_files(colors, full_check, read_image)
    _check_files(depths, full_check, lambda p: read_depth(p, 1.0))
    _check_files([m for m in masks if m is not None], full_check, read_mask)
    return [TestSample(c.stem, c, d, m) for c, d, m in zip(colors, depths, masks, strict=True)]
