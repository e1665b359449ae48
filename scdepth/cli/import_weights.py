"""scdepth-import-weights: the public SC-Depth (PyTorch Lightning .ckpt) and Monodepth2 (model
folder) weights as a scdepth checkpoint, for scdepth-eval, scdepth-infer, scdepth-export and
fine-tuning (init_from=CHECKPOINT); the work is scdepth/public_weights.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import checkpoint, public_weights
from .common import add_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="scdepth-import-weights",
        description=public_weights.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "source", help="an SC-Depth .ckpt, or a Monodepth2 model folder (or a file in it)"
    )
    ap.add_argument("--from", dest="layout", choices=public_weights.LAYOUTS, required=True)
    ap.add_argument("--out", required=True, help="the checkpoint to write (e.g. sc_v3_kitti.pt)")
    add_size(
        ap,
        "training size recorded in the checkpoint, multiples of 32 (default: the source's: "
        "Monodepth2's height/width, SC-Depth's dataset's)",
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="refuse unless every part maps exactly (no approximation, nothing left out)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        ap.error(f"--out {out} exists; choose another name or pass --overwrite")
    if not out.parent.is_dir():
        ap.error(f"--out {out}: folder {out.parent} does not exist")
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    try:
        done = public_weights.import_weights(
            a.source, a.layout, out, size=a.size, strict=a.strict, log=log
        )
    except (ValueError, checkpoint.CheckpointError) as e:  # ImportRefused is a ValueError
        ap.error(str(e))
    nets = ", ".join(done.nets)
    print(f"wrote {out}: {nets} (ResNet-{done.resnet_layers} DepthNet, method {done.method})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
