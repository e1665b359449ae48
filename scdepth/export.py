"""Export (scdepth-export): a checkpoint's DepthNet or PoseNet as ONNX, TorchScript or a
torch.export program, for use outside this package (C++, ONNX Runtime, mobile, browsers).

Every exported graph takes RGB in [0, 1] and normalises it itself ((x - 0.45) / 0.225, the
training normalisation), so a caller only divides 8-bit pixels by 255:

- depth: input ``image`` float32 [B, 3, H, W] -> output ``depth`` float32 [B, 1, H, W], in
  the network's unit (right up to one unknown scale, as scdepth-infer writes it).
- pose: inputs ``image1``, ``image2`` float32 [B, 3, H, W] -> output ``pose`` float32
  [B, 6] = (tx, ty, tz, rx, ry, rz): the transform mapping points of image1's camera into
  image2's camera, translation in the depth's unit, rotation as Euler angles in radians
  (R = Rx Ry Rz).

B, H and W are dynamic in all three formats; H and W must be multiples of 32 (the encoder's
stride; ONNX and torch.export state it in the input's shape, 32*h x 32*w). Each file also
carries a JSON description (``scdepth.json``: in ONNX's metadata_props, in the TorchScript
and torch.export archives as an extra file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from . import checkpoint
from .data.transforms import MEAN, STD

FORMATS = ("onnx", "torchscript", "exported")
NETS = ("depth", "pose")
META_NAME = "scdepth.json"
MAX_SIDE_32 = 256  # H and W up to 8192 pixels: the bound torch.export's dynamic dims need
INSTALL_HINT = "pip install 'scdepth[export]' (onnx, onnxscript, onnxruntime)"


class ExportError(RuntimeError):
    pass


class DepthGraph(nn.Module):
    """image [B, 3, H, W] RGB in [0, 1] -> depth [B, 1, H, W]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net((image - MEAN) / STD)


class PoseGraph(nn.Module):
    """image1, image2 [B, 3, H, W] RGB in [0, 1] -> pose [B, 6]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image1, image2):
        return self.net((image1 - MEAN) / STD, (image2 - MEAN) / STD)


def graph_of(checkpoint_path, net: str = "depth") -> tuple[nn.Module, tuple[int, int], dict]:
    """(the wrapped network in eval mode on the CPU, training size, description)."""
    if net == "depth":
        model, size = checkpoint.load_depth_model(checkpoint_path, "cpu")
        graph = DepthGraph(model)
        io = {
            "inputs": {"image": "float32 [B, 3, H, W] RGB in [0, 1], H and W multiples of 32"},
            "outputs": {"depth": "float32 [B, 1, H, W], the network's unit (up to scale)"},
        }
    elif net == "pose":
        model, size, rectify_net = checkpoint.load_pose_model(checkpoint_path, "cpu")
        if rectify_net is not None:
            raise ExportError(
                "an SC-DepthV2 pose is the RectifyNet's rotation composed with the PoseNet's "
                "pose on the rectified pair (a warp by the scdepth kernels), which these "
                "formats cannot hold; export --net depth"
            )
        graph = PoseGraph(model)
        rgb = "float32 [B, 3, H, W] RGB in [0, 1], H and W multiples of 32"
        io = {
            "inputs": {"image1": rgb, "image2": rgb},
            "outputs": {
                "pose": "float32 [B, 6] tx ty tz rx ry rz: image1's camera -> image2's, "
                "rotation Euler angles in radians, R = Rx Ry Rz"
            },
        }
    else:
        raise ValueError(f"--net must be one of {', '.join(NETS)}, got {net!r}")
    meta = {
        "net": net,
        **io,
        "normalisation": f"inside the graph: (x - {MEAN}) / {STD}",
        "training_size": list(size),
        "checkpoint": str(checkpoint_path),
    }
    return graph.eval(), tuple(size), meta


def example_inputs(net: str, size, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    n = 1 if net == "depth" else 2
    return tuple(torch.rand(batch, 3, *size, generator=g) for _ in range(n))


def input_names(net: str) -> list[str]:
    return ["image"] if net == "depth" else ["image1", "image2"]


def dynamic_shapes(net: str) -> dict:
    """Batch, and height and width as multiples of 32, dynamic (one Dim each, shared by the
    pose's two images)."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    h, w = Dim("h", min=1, max=MAX_SIDE_32), Dim("w", min=1, max=MAX_SIDE_32)
    return {name: {0: batch, 2: 32 * h, 3: 32 * w} for name in input_names(net)}


def _atomic(out: Path, write) -> None:
    """write(tmp) into a temporary file beside `out`, renamed over it when done."""
    # the temporary keeps the suffix: torch.export's archive writer expects .pt2
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".part{out.suffix}")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp's file is private (0600); the exported model is for others to load
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _onnx(graph, args, net, meta, out):
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise ExportError(f"ONNX export needs onnx and onnxscript: {INSTALL_HINT}") from None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # the exporter prints its progress; the pose's two images share their dims, which
        # it reports as names "not used"
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
        program = torch.onnx.export(
            graph,
            args,
            input_names=input_names(net),
            output_names=list(meta["outputs"]),
            dynamic_shapes=dynamic_shapes(net),
            dynamo=True,
            verbose=False,
        )
    program.model.metadata_props[META_NAME] = json.dumps(meta)
    _atomic(out, lambda tmp: program.save(tmp, external_data=False))


def _torchscript(graph, args, net, meta, out):
    with warnings.catch_warnings():
        # the shape check of DepthNet.forward is fixed at trace time (TracerWarning) and
        # torch marks tracing as deprecated (FutureWarning): neither changes the graph
        warnings.simplefilter("ignore", (torch.jit.TracerWarning, FutureWarning))
        traced = torch.jit.trace(graph, args)
    extra = {META_NAME: json.dumps(meta)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _atomic(out, lambda tmp: torch.jit.save(traced, tmp, _extra_files=extra))


def _exported(graph, args, net, meta, out):
    program = torch.export.export(graph, args, dynamic_shapes=dynamic_shapes(net))
    extra = {META_NAME: json.dumps(meta)}
    _atomic(out, lambda tmp: torch.export.save(program, tmp, extra_files=extra))


WRITERS = {"onnx": _onnx, "torchscript": _torchscript, "exported": _exported}


@torch.no_grad()
def export(checkpoint_path, fmt: str, out, *, net: str = "depth", overwrite=False) -> dict:
    """Writes the checkpoint's `net` (depth | pose) in `fmt` to `out` (atomically); returns
    the description stored with it."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; choose another name or pass --overwrite")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    if fmt == "exported" and out.suffix != ".pt2":
        raise ValueError(f"--out {out}: a torch.export program is a .pt2 file")
    graph, size, meta = graph_of(checkpoint_path, net)
    meta["format"] = fmt
    WRITERS[fmt](graph, example_inputs(net, size), net, meta, out)
    return meta


# --- running an exported file (the check after export, and tests) ----------------------------


def load_runner(path, fmt: str):
    """A function of numpy inputs -> numpy output for the exported file `path`."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError(f"running ONNX needs onnxruntime: {INSTALL_HINT}") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *xs: session.run(None, dict(zip(names, xs, strict=True)))[0]
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated upstream, still works
            module = torch.jit.load(str(path))
    else:
        module = torch.export.load(path).module()
    return lambda *xs: module(*(torch.from_numpy(x) for x in xs)).numpy()


@torch.no_grad()
def check(checkpoint_path, path, fmt: str, net: str, sizes) -> float:
    """The largest |exported - eager| / max |eager| over random inputs of each (H, W) of
    `sizes` (batch 1 and 3, so that the batch is dynamic too)."""
    graph, _, _ = graph_of(checkpoint_path, net)
    run = load_runner(path, fmt)
    worst = 0.0
    for i, size in enumerate(sizes):
        xs = example_inputs(net, size, batch=1 + 2 * (i % 2), seed=i + 1)
        want = graph(*xs).numpy()
        got = run(*(x.numpy() for x in xs))
        if got.shape != want.shape:
            raise ExportError(f"{path}: output {list(got.shape)}, eager {list(want.shape)}")
        worst = max(worst, float(abs(got - want).max() / max(abs(want).max(), 1e-12)))
    return worst
