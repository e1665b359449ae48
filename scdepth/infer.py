"""scdepth-infer: depth maps for a folder of images or a video file, from a checkpoint."""

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint
from .config import from_dict
from .models import DepthNet
from .viz import MEAN, STD, depth_to_bgr

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def load_depth_model(path, device="cpu"):
    """(model, image_size) from a training checkpoint: model(img) takes a normalised
    [B, 3, H, W] batch at image_size (H, W) and returns depth [B, 1, H, W]."""
    state = checkpoint.load(path)
    cfg = from_dict(state["config"])
    net = DepthNet(cfg.resnet_layers, pretrained=False)
    net.load_state_dict(state["depth_net"])
    return net.to(device).eval(), tuple(cfg.image_size)


def frames(source):
    """(name, RGB uint8 image) of every image in a folder (sorted) or frame of a video."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise ValueError(f"{source} holds no images ({', '.join(sorted(IMAGE_EXTS))})")
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{p} is not a readable image")
            yield p.stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
    if not source.is_file():
        raise ValueError(f"{source} is neither an image folder nor a video file")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise ValueError(f"{source} could not be opened as a video")
    i = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield f"{i:06d}", cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise ValueError(f"{source} has no readable frames")


def to_input(rgb, image_size):
    H, W = image_size
    x = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return torch.from_numpy((x - MEAN) / STD).permute(2, 0, 1)


def count(source):
    source = Path(source)
    if source.is_dir():
        return sum(p.suffix.lower() in IMAGE_EXTS for p in source.iterdir())
    cap = cv2.VideoCapture(str(source))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return n or None


@torch.no_grad()
def run(checkpoint_path, source, out_dir, device="cpu", progress=True):
    model, image_size = load_depth_model(checkpoint_path, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, rgb in tqdm(
        frames(source),
        total=count(source),
        desc="scdepth-infer",
        unit="frame",
        disable=not progress,
    ):
        depth = model(to_input(rgb, image_size)[None].to(device))[0, 0].float().cpu().numpy()
        np.save(out / f"{name}.npy", depth)
        cv2.imwrite(str(out / f"{name}.png"), depth_to_bgr(depth))
        n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scdepth-infer", description=__doc__)
    ap.add_argument("checkpoint", help="a checkpoint written by scdepth-train (best.pt, last.pt)")
    ap.add_argument("source", help="a folder of images or a video file")
    ap.add_argument("--out", required=True, help="folder for <name>.npy depth and <name>.png")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        n = run(a.checkpoint, a.source, a.out, a.device, progress=not a.no_progress)
    except (ValueError, checkpoint.CheckpointError) as e:
        ap.error(str(e))
    print(f"wrote {n} depth maps to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
