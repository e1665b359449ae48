"""Pseudo-depth (scdepth-pseudo): fill ``leres_depth/`` of every scene from a monocular depth
model.

The model is a TorchScript file (``--model net.pt``; or a ``torch.export`` program saved as
``.pt2`` with a dynamic batch dimension) or a torch.hub entry
(``--hub intel-isl/MiDaS:MiDaS_small``, or ``--hub /path/to/repo:entry`` for a local hub
repository). It receives ImageNet-normalised RGB batches [B, 3, H, W] at ``input_size`` and
returns [B, H, W] or [B, 1, H, W]. Its output is turned into relative depth where larger
means farther, as the ranking labels of SC-DepthV3 read it: with ``--output disparity``
(MiDaS, DPT predict affine-invariant inverse depth) the disparity is normalised to [0.01, 1]
per image and inverted; this keeps the order of pixels, not metric ratios. Each map is
resized back to its frame and saved as uint16 PNG scaled to the image's maximum (LeReS style).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .layout import IMAGE_EXTS, list_files

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PseudoDepthError(RuntimeError):
    """The model could not be loaded or run, or the root has no scenes."""


def load_model(model: str | None = None, hub: str | None = None, device: str = "cpu"):
    """A callable module from a TorchScript file or a ``repo:entry`` torch.hub reference."""
    if (model is None) == (hub is None):
        raise ValueError("give exactly one of --model (TorchScript file) or --hub (repo:entry)")
    if model is not None:
        if not Path(model).is_file():
            raise PseudoDepthError(f"--model {model}: no such file")
        try:
            if Path(model).suffix == ".pt2":  # torch.export.save (export with a dynamic batch)
                return torch.export.load(model).module().to(device)
            with warnings.catch_warnings():  # TorchScript is deprecated, still the common format
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(model, map_location=device).eval()
        except Exception as e:  # torch raises several types for a file it cannot read
            raise PseudoDepthError(
                f"--model {model}: not a TorchScript file (or .pt2 exported program) "
                f"({type(e).__name__}: {e}); save the network with torch.jit.script / "
                "torch.jit.trace, or torch.export.save as .pt2"
            ) from None
    repo, sep, entry = hub.rpartition(":")
    if not sep or not repo or not entry:
        raise ValueError(f"--hub must be repo:entry like intel-isl/MiDaS:MiDaS_small, not {hub!r}")
    local = Path(repo).is_dir()
    try:
        if local:
            net = torch.hub.load(repo, entry, source="local")
        else:
            net = torch.hub.load(repo, entry, trust_repo=True)
    except Exception as e:
        where = "the local hub folder" if local else "torch.hub (needs network on first use)"
        raise PseudoDepthError(
            f"--hub {hub}: cannot load it from {where} ({type(e).__name__}: {e}). Without network, "
            "load it once on a machine with network (torch.hub caches code and weights in "
            f"{torch.hub.get_dir()}), or export it with torch.jit.trace and pass --model FILE"
        ) from None
    return net.to(device).eval()


def to_relative_depth(pred: np.ndarray, output: str) -> np.ndarray:
    """Model output -> positive relative depth, larger = farther."""
    pred = pred.astype(np.float64)
    lo, hi = float(pred.min()), float(pred.max())
    span = max(hi - lo, 1e-12)
    if output == "disparity":
        return 1.0 / np.clip((pred - lo) / span, 0.01, 1.0)
    if output != "depth":
        raise ValueError(f"--output must be depth or disparity, got {output!r}")
    return pred - lo + 0.01 * span if lo <= 0 else pred


def to_uint16(depth: np.ndarray) -> np.ndarray:
    return np.clip(np.round(depth / depth.max() * 65535), 1, 65535).astype(np.uint16)


def find_scenes(root: Path) -> list[Path]:
    """Scene folders under root/training (or root itself when it holds frames)."""
    if not root.is_dir():
        raise PseudoDepthError(f"{root}: no such folder")
    if list_files(root, IMAGE_EXTS):
        return [root]
    training = root / "training"
    scenes = []
    if training.is_dir():
        scenes = sorted(d for d in training.iterdir() if d.is_dir() and list_files(d))
    if not scenes:
        raise PseudoDepthError(f"{root}: no scenes (expected ROOT/training/<scene>/*.jpg|png)")
    return scenes


@torch.no_grad()
def _predict(net, images, input_size, output, device):
    x = torch.from_numpy(
        np.stack(
            [
                cv2.resize(im, (input_size[1], input_size[0]), interpolation=cv2.INTER_AREA)
                for im in images
            ]
        )
    )
    x = x.permute(0, 3, 1, 2).float().div(255).to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    y = net((x - mean) / std)
    if isinstance(y, (list, tuple)):
        y = y[0]
    if y.dim() == 3:
        y = y[:, None]
    if y.dim() != 4 or y.shape[:2] != (len(images), 1):
        raise PseudoDepthError(f"model output must be [B, H, W] or [B, 1, H, W], got {[*y.shape]}")
    out = []
    for im, yi in zip(images, y, strict=True):
        yi = (
            F.interpolate(
                yi[None].float(), size=im.shape[:2], mode="bilinear", align_corners=False
            )[0, 0]
            .cpu()
            .numpy()
        )
        if not np.isfinite(yi).all():
            raise PseudoDepthError("model output contains non-finite values")
        out.append(to_uint16(to_relative_depth(yi, output)))
    return out


def fill_pseudo_depth(
    root,
    net,
    *,
    input_size=(256, 320),
    output: str = "depth",
    batch_size: int = 8,
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Write ``leres_depth/<frame stem>.png`` for every frame of every scene of ``root``."""
    if output not in ("depth", "disparity"):
        raise ValueError(f"--output must be depth or disparity, got {output!r}")
    scenes = find_scenes(Path(root))
    taken = [
        s / "leres_depth"
        for s in scenes
        if (s / "leres_depth").is_dir() and any((s / "leres_depth").iterdir())
    ]
    if taken and not overwrite:
        raise FileExistsError(f"{taken[0]}: already holds pseudo-depth; pass --overwrite")
    frames = {s: list_files(s) for s in scenes}
    bar = tqdm(
        total=sum(map(len, frames.values())),
        desc="pseudo-depth",
        unit="frame",
        disable=not progress,
    )
    with bar:
        for scene, files in frames.items():
            out = scene / "leres_depth"
            if out.exists():
                shutil.rmtree(out)
            out.mkdir()
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                images = []
                for f in chunk:
                    img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                    if img is None:
                        raise PseudoDepthError(f"{f}: cannot be read as an image")
                    images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
                for f, d in zip(
                    chunk, _predict(net, images, input_size, output, device), strict=True
                ):
                    cv2.imwrite(str(out / f"{f.stem}.png"), d)
                bar.update(len(chunk))
    return scenes
