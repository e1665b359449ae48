"""scdepth-train: trains SC-Depth V1 / V2 / SC-DepthV3 from video on the fused ops.

    scdepth-train [--config FILE] [--out DIR] [--resume] [--device cpu|cuda]
                  [--backend ext|reference] [--epochs N] [--epoch-size N] [key=value ...]

With no arguments: SC-DepthV3 on the synthetic indoor dataset (generated on first use), on
the GPU when there is one; at the end the test split is evaluated and the table printed.
Under torchrun it trains with DistributedDataParallel (see docs/cluster.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .. import checkpoint, config
from ..models.encoder import PretrainedUnavailable
from ..train import (
    TrainingError,
    TrainingStopped,
    loader_worker_died,
    train,
    worker_death_message,
)
from .common import add_device, add_progress


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scdepth-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", help="YAML file of config keys (see configs/)")
    ap.add_argument("--out", default="runs/default", help="output folder (default runs/default)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/last.pt (starts fresh when there is none)",
    )
    add_device(ap, default=None)
    ap.add_argument("--backend", choices=("ext", "reference"))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--epoch-size", type=int)
    add_progress(ap)
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="any config key")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    overrides = list(a.overrides)
    for key, value in (
        ("device", a.device),
        ("backend", a.backend),
        ("epochs", a.epochs),
        ("epoch_size", a.epoch_size),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        cfg = config.load(a.config, overrides)
        explicit = config.keys_set(a.config, overrides)
        train(cfg, a.out, resume=a.resume, progress=not a.no_progress, explicit=explicit)
    except TrainingStopped as e:
        print(f"scdepth-train: {e}", file=sys.stderr)
        return 128 + signal.SIGTERM  # as a process ended by the signal reports it
    except (ValueError, TrainingError, checkpoint.CheckpointError, PretrainedUnavailable) as e:
        print(f"scdepth-train: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a loader worker's death reported once more, late
        if not loader_worker_died(e):
            raise
        message = worker_death_message(e, Path(a.out) / "last.pt")
        print(f"scdepth-train: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
