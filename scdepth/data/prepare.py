"""scdepth-prepare: a video file or an image folder -> one scene of the SC-Depth layout.

Frames are resized to the chosen size (cam.txt scaled to match) and near-static frames are
dropped: a frame is kept when the mean absolute grey-level difference to the last kept
frame reaches ``static_threshold``. The difference is taken in float32; the public code took
it in uint8, where 3 - 5 wraps around to 254 and a still camera looks like it moved. Kept
frames are named by their index in the source, so the order and the origin stay visible.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .layout import IMAGE_EXTS, DatasetError, check_intrinsics, list_files, read_intrinsics
from .transforms import Augmentation, adjust_intrinsics


def intrinsics_from_fov(fov_deg: float, size) -> np.ndarray:
    """Pinhole K with square pixels and the principal point at the centre; fov across W."""
    if not 1.0 < fov_deg < 179.0:
        raise ValueError(
            f"--fov must be a horizontal field of view in degrees in (1, 179), got {fov_deg}"
        )
    h, w = size
    f = (w / 2) / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in a wide dtype (no wrap-around)."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def read_source(source: Path):
    """(number of frames or None, iterator of (index, BGR uint8 frame))."""
    if source.is_dir():
        files = list_files(source, IMAGE_EXTS)
        if not files:
            raise DatasetError(f"{source}: no .jpg or .png images")

        def images():
            for i, f in enumerate(files):
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise DatasetError(f"{f}: cannot be read as an image")
                yield i, img

        return len(files), images()
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such video file or image folder")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise DatasetError(f"{source}: OpenCV cannot open it as a video")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames():
        i = 0
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    return
                yield i, img
                i += 1
        finally:
            cap.release()

    return count, frames()


def prepare(
    source,
    root,
    scene: str,
    *,
    K=None,
    fov: float | None = None,
    image_size=None,
    static_threshold: float = 1.0,
    stride: int = 1,
    ext: str = "jpg",
    split: str = "train",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``root/training/<scene>/`` (frames, cam.txt) and add the scene to <split>.txt.

    K: 3x3 intrinsics at the source resolution; or ``fov`` (degrees across the width).
    image_size: output (H, W), default the source size. Returns the scene folder.
    """
    if (K is None) == (fov is None):
        raise ValueError("give the intrinsics either as K (cam.txt / fx fy cx cy) or as fov")
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if static_threshold < 0:
        raise ValueError(f"--static-threshold must be >= 0, got {static_threshold}")
    if ext not in ("jpg", "png"):
        raise ValueError(f"--ext must be jpg or png, got {ext!r}")
    if not scene or "/" in scene or scene.startswith("."):
        raise ValueError(f"--scene must be a plain folder name, got {scene!r}")
    out = Path(root) / "training" / scene
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: not empty; pass --overwrite to replace this scene")
        shutil.rmtree(out)
    count, frames = read_source(Path(source))
    out.mkdir(parents=True, exist_ok=True)
    kept, last, src_size = 0, None, None
    for i, img in tqdm(
        frames, total=count, desc=f"prepare {scene}", unit="frame", disable=not progress
    ):
        if i % stride:
            continue
        if src_size is None:
            src_size = img.shape[:2]
            size = tuple(image_size) if image_size else src_size
            K_src = intrinsics_from_fov(fov, src_size) if fov is not None else K
            K_src = check_intrinsics(K_src, "--cam/--fx/--fy/--cx/--cy")
        elif img.shape[:2] != src_size:
            raise DatasetError(f"{source}: frame {i} is {img.shape[:2]}, frame 0 {src_size}")
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if last is not None and frame_difference(grey, last) < static_threshold:
            continue
        last = grey
        cv2.imwrite(str(out / f"{i:06d}.{ext}"), img)
        kept += 1
    if kept == 0:
        shutil.rmtree(out)
        raise DatasetError(f"{source}: no frames could be read")
    np.savetxt(
        out / "cam.txt", adjust_intrinsics(K_src, src_size, size, Augmentation()), fmt="%.6f"
    )
    listing = Path(root) / "training" / f"{split}.txt"
    names = listing.read_text().split() if listing.is_file() else []
    if scene not in names:
        listing.write_text("".join(f"{n}\n" for n in [*names, scene]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scdepth-prepare", description=__doc__.split("\n")[0])
    ap.add_argument("source", help="video file (anything OpenCV reads) or folder of images")
    ap.add_argument("--root", required=True, help="dataset root; writes ROOT/training/SCENE")
    ap.add_argument("--scene", required=True, help="scene folder name")
    cam = ap.add_mutually_exclusive_group(required=True)
    cam.add_argument("--cam", help="cam.txt with the 3x3 intrinsics at the source resolution")
    cam.add_argument("--fx", type=float, help="focal length in pixels (source resolution)")
    cam.add_argument("--fov", type=float, help="horizontal field of view in degrees")
    ap.add_argument("--fy", type=float, help="default: fx")
    ap.add_argument("--cx", type=float, help="default: the image centre")
    ap.add_argument("--cy", type=float, help="default: the image centre")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="output size")
    ap.add_argument(
        "--static-threshold",
        type=float,
        default=1.0,
        help="drop frames whose mean |grey difference| to the last kept is below",
    )
    ap.add_argument("--stride", type=int, default=1, help="use every N-th source frame")
    ap.add_argument("--ext", choices=("jpg", "png"), default="jpg")
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.fx is None and any(v is not None for v in (a.fy, a.cx, a.cy)):
        ap.error("--fy/--cx/--cy need --fx")
    try:
        K = read_intrinsics(Path(a.cam)) if a.cam else None
        if a.fx is not None:
            K = _k_from_values(a.source, a.fx, a.fy, a.cx, a.cy)
        out = prepare(
            a.source,
            a.root,
            a.scene,
            K=K,
            fov=a.fov,
            image_size=a.size,
            static_threshold=a.static_threshold,
            stride=a.stride,
            ext=a.ext,
            split=a.split,
            overwrite=a.overwrite,
            progress=not a.no_progress,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        ap.error(str(e))
    print(f"wrote {out} ({len(list_files(out))} frames)")
    return 0


def _k_from_values(source, fx, fy, cx, cy) -> np.ndarray:
    """K from --fx/--fy/--cx/--cy; a missing centre is taken from the first source frame."""
    if cx is None or cy is None:
        _, frames = read_source(Path(source))
        first = next(iter(frames), None)
        if first is None:
            raise DatasetError(f"{source}: no frames could be read")
        h, w = first[1].shape[:2]
        cx = (w - 1) / 2 if cx is None else cx
        cy = (h - 1) / 2 if cy is None else cy
    return np.array([[fx, 0, cx], [0, fx if fy is None else fy, cy], [0, 0, 1]])


if __name__ == "__main__":
    raise SystemExit(main())
