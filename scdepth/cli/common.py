"""Options every command spells the same way, and what they resolve to."""

from __future__ import annotations

import argparse

import torch

DEVICES = ("auto", "cpu", "cuda")


def add_device(ap: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """--device; scdepth-train passes default=None so that a config file's device holds."""
    ap.add_argument(
        "--device",
        choices=DEVICES,
        default=default,
        help="where the networks run (auto: the GPU when there is one; default "
        f"{default or 'the config key device, auto'})",
    )


def add_size(ap: argparse.ArgumentParser, help: str) -> None:
    """--size H W: an image size in pixels, height first."""
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help=help)


def add_progress(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_device(name: str) -> str:
    """auto -> cuda when a CUDA device is there, else cpu; cuda without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def add_intrinsics(ap, resolution: str) -> None:
    """--cam | --fx | --fov, and --fy --cx --cy: the intrinsics of images at `resolution`
    (e.g. "source resolution"), read by data.prepare.intrinsics_from_options."""
    cam = ap.add_mutually_exclusive_group()
    cam.add_argument("--cam", help=f"cam.txt with the 3x3 intrinsics at the {resolution}")
    cam.add_argument("--fx", type=float, help=f"focal length in pixels ({resolution})")
    cam.add_argument("--fov", type=float, help="horizontal field of view in degrees")
    ap.add_argument("--fy", type=float, help="default: fx")
    ap.add_argument("--cx", type=float, help="default: the image centre")
    ap.add_argument("--cy", type=float, help="default: the image centre")


def checkpoint_refusal(error: Exception, path) -> str:
    """What a command says when it cannot read the checkpoint `path`: for a public SC-Depth or
    Monodepth2 file, the scdepth-import-weights command that converts it; else the error."""
    from ..checkpoint import CheckpointError
    from ..public_weights import import_hint

    hint = import_hint(path) if isinstance(error, CheckpointError) and path else None
    return hint or str(error)
