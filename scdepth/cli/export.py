"""scdepth-export: a checkpoint's DepthNet (or PoseNet) as ONNX, TorchScript or a
torch.export program, checked against the checkpoint's network; the work is
scdepth/export.py."""

from __future__ import annotations

import argparse
import sys

from .. import checkpoint, export
from .common import checkpoint_refusal

CHECK_TOLERANCE = 1e-4  # relative; the export tests hold the formats to it


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="scdepth-export",
        description=export.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("checkpoint", help="a checkpoint of scdepth-train or scdepth-import-weights")
    ap.add_argument("--format", choices=export.FORMATS, required=True)
    ap.add_argument("--out", required=True, help="file to write (e.g. depth.onnx, depth.pt2)")
    ap.add_argument("--net", choices=export.NETS, default="depth", help="default: depth")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ap.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the exported file against the checkpoint's network",
    )
    a = ap.parse_args(argv)
    try:
        meta = export.export(a.checkpoint, a.format, a.out, net=a.net, overwrite=a.overwrite)
    except (ValueError, checkpoint.CheckpointError, export.ExportError) as e:
        ap.error(checkpoint_refusal(e, a.checkpoint))
    print(f"wrote {a.out}: {a.net} net as {a.format}")
    for name, what in {**meta["inputs"], **meta["outputs"]}.items():
        print(f"  {name}: {what}")
    if not a.no_check:
        return _check(a, tuple(meta["training_size"]))
    return 0


def _check(a, size) -> int:
    sizes = [size, (size[0] + 32, size[1] + 64)]
    try:
        worst = export.check(a.checkpoint, a.out, a.format, a.net, sizes)
    except export.ExportError as e:
        print(f"not checked: {e}", file=sys.stderr)
        return 0
    shown = " and ".join(f"{w}x{h}" for h, w in sizes)
    print(f"checked against the checkpoint's network at {shown}: max relative error {worst:.1e}")
    if worst > CHECK_TOLERANCE:
        print(f"error: above {CHECK_TOLERANCE:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
