"""scdepth-synth: a synthetic video dataset with exact depth, poses and moving objects (the
default run's data); the work is scdepth/data/synth.py."""

from __future__ import annotations

import argparse

from ..data import synth
from .common import add_progress, add_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scdepth-synth", description=synth.__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(synth.PRESETS), default="indoor")
    ap.add_argument("--out", required=True, help="output dataset root")
    ap.add_argument("--seed", type=int, default=0)
    add_size(ap, "frame size (default: the preset's)")
    ap.add_argument("--scenes", type=int, default=4, help="training scenes")
    ap.add_argument(
        "--val-scenes",
        type=int,
        default=synth.VAL_SCENES,
        help="validation scenes (plus 1 test scene)",
    )
    ap.add_argument("--frames", type=int, default=50, help="frames per scene")
    ap.add_argument("--dynamic-fraction", type=float, default=None)
    ap.add_argument("--exposure-change", type=float, default=0.02)
    ap.add_argument(
        "--rotation",
        type=float,
        default=0.0,
        help="amplitude (rad) of an extra hand-held rotation shake, periods of 6-12 frames",
    )
    ap.add_argument(
        "--pseudo-error",
        type=float,
        default=synth.PSEUDO_ERROR,
        help="strength of the simulated pseudo-depth's errors (0: exact up to scale and shift; "
        f"default {synth.PSEUDO_ERROR:g}: like LeReS on NYUv2)",
    )
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_progress(ap)
    a = ap.parse_args(argv)
    try:
        out = synth.generate(
            a.out,
            preset=a.preset,
            seed=a.seed,
            image_size=a.size,
            num_scenes=a.scenes,
            val_scenes=a.val_scenes,
            frames_per_scene=a.frames,
            dynamic_fraction=a.dynamic_fraction,
            exposure_change=a.exposure_change,
            rotation=a.rotation,
            pseudo_error=a.pseudo_error,
            workers=a.workers,
            overwrite=a.overwrite,
            progress=not a.no_progress,
        )
    except (ValueError, FileExistsError) as e:
        ap.error(str(e))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
