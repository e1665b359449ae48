"""scdepth-pseudo: fill the scenes' leres_depth/ from a monocular depth model (SC-DepthV3's
pseudo-depth); the work is scdepth/data/pseudo.py."""

from __future__ import annotations

import argparse

from ..data import pseudo
from .common import add_device, add_progress, resolve_device


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scdepth-pseudo", description=pseudo.__doc__.split("\n\n")[0])
    ap.add_argument("root", help="dataset root (or one scene folder)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="TorchScript file")
    src.add_argument("--hub", help="torch.hub entry as repo:entry")
    ap.add_argument(
        "--output",
        choices=("depth", "disparity"),
        default="depth",
        help="what the model predicts (MiDaS/DPT: disparity)",
    )
    ap.add_argument("--input-size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    ap.add_argument("--batch-size", type=int, default=8)
    add_device(ap)
    ap.add_argument("--overwrite", action="store_true", help="replace existing leres_depth/")
    add_progress(ap)
    a = ap.parse_args(argv)
    if min(a.input_size) < 8 or a.batch_size < 1:
        ap.error("--input-size must be >= 8 and --batch-size >= 1")
    try:
        device = resolve_device(a.device)
        net = pseudo.load_model(a.model, a.hub, device)
        scenes = pseudo.fill_pseudo_depth(
            a.root,
            net,
            input_size=a.input_size,
            output=a.output,
            batch_size=a.batch_size,
            overwrite=a.overwrite,
            device=device,
            progress=not a.no_progress,
        )
    except (ValueError, FileExistsError, pseudo.PseudoDepthError) as e:
        ap.error(str(e))
    print(f"wrote leres_depth/ for {len(scenes)} scene(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
