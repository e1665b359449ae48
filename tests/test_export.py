"""scdepth-export: each format's file, loaded with its own runtime (torch.jit, torch.export,
ONNX Runtime on the CPU), gives the checkpoint's network's output within 1e-4 (relative to
the output's largest value) on random RGB inputs of two sizes and batch sizes; inputs and
outputs are named; refusals are clear."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from scdepth import checkpoint, config
from scdepth.cli import export as export_cli
from scdepth.data.transforms import MEAN, STD
from scdepth.models import DepthNet, PoseNet, RectifyNet

SIZES = [(1, 64, 64), (3, 96, 160)]  # (batch, H, W): neither is the training size's batch
TOLERANCE = 1e-4


def onnx_runtime():
    """onnxruntime, or a skip that says how to get it (the export extra)."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(
            module, reason=f"ONNX export needs {module}: pip install 'scdepth[export]'"
        )
    import onnxruntime

    return onnxruntime


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Random DepthNet and PoseNet, training size 64x96."""
    cfg = config.apply(config.Config(), {"image_size": [64, 96]}, "test").validate()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("export") / "best.pt"
    nets = {"depth_net": DepthNet(18).state_dict(), "pose_net": PoseNet(18).state_dict()}
    checkpoint.save({"config": config.to_dict(cfg), **nets}, path)
    return path


def eager(ckpt, net):
    """The checkpoint's network on RGB in [0, 1], normalised here as training does."""
    if net == "depth":
        model, _ = checkpoint.load_depth_model(ckpt)
        return lambda x: model((x - MEAN) / STD)
    model, _, _ = checkpoint.load_pose_model(ckpt)
    return lambda a, b: model((a - MEAN) / STD, (b - MEAN) / STD)


def inputs(net, batch, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 3, h, w, generator=g) for _ in range(1 if net == "depth" else 2)]


def load(path, fmt):
    """(run(*tensors) -> tensor, input names, output names, the stored description)."""
    if fmt == "onnx":
        ort = onnx_runtime()
        import onnx

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}

        def run(*xs):
            feeds = {n: x.numpy() for n, x in zip(names, xs, strict=True)}
            return torch.from_numpy(session.run(None, feeds)[0])

        outputs = [o.name for o in session.get_outputs()]
        return run, names, outputs, json.loads(meta["scdepth.json"])
    extra = {"scdepth.json": ""}
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), _extra_files=extra)
    else:
        module = torch.export.load(path, extra_files=extra).module()
    meta = json.loads(extra["scdepth.json"])
    return module, list(meta["inputs"]), list(meta["outputs"]), meta


SUFFIX = {"onnx": ".onnx", "torchscript": ".ts", "exported": ".pt2"}


@pytest.mark.parametrize("net", ["depth", "pose"])
@pytest.mark.parametrize("fmt", ["torchscript", "exported", "onnx"])
def test_exported_equals_eager_on_two_sizes(ckpt, tmp_path, fmt, net):
    if fmt == "onnx":
        onnx_runtime()
    out = tmp_path / f"{net}{SUFFIX[fmt]}"
    args = [str(ckpt), "--format", fmt, "--out", str(out), "--net", net, "--no-check"]
    assert export_cli.main(args) == 0
    run, names, outputs, meta = load(out, fmt)
    assert names == (["image"] if net == "depth" else ["image1", "image2"])
    assert outputs == (["depth"] if net == "depth" else ["pose"])
    assert meta["net"] == net and meta["training_size"] == [64, 96]
    reference = eager(ckpt, net)
    with torch.no_grad():
        for seed, (batch, h, w) in enumerate(SIZES):
            xs = inputs(net, batch, h, w, seed)
            want, got = reference(*xs), run(*xs)
            assert got.shape == want.shape == ((batch, 1, h, w) if net == "depth" else (batch, 6))
            err = float((got - want).abs().max() / want.abs().max())
            assert err <= TOLERANCE, f"{fmt} {net} at {batch}x{h}x{w}: relative error {err:.2e}"


def test_the_command_checks_its_export(ckpt, tmp_path, capsys):
    out = tmp_path / "depth.ts"
    assert export_cli.main([str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "image: float32 [B, 3, H, W] RGB in [0, 1]" in printed
    assert "checked against the checkpoint's network at 96x64 and 160x96" in printed
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file the user writes
    with pytest.raises(SystemExit):  # an existing file is kept
        export_cli.main([str(ckpt), "--format", "torchscript", "--out", str(out)])
    assert "exists" in capsys.readouterr().err


def test_refusals(ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_cli.main([str(ckpt), "--format", "exported", "--out", str(tmp_path / "d.pt")])
    assert "a torch.export program is a .pt2 file" in capsys.readouterr().err
    cfg = config.apply(config.Config(), {"method": "sc_depth_v2"}, "test").validate()
    v2 = tmp_path / "v2.pt"
    nets = {"depth_net": DepthNet(18), "pose_net": PoseNet(18), "rectify_net": RectifyNet(18)}
    checkpoint.save(
        {"config": config.to_dict(cfg), **{k: n.state_dict() for k, n in nets.items()}}, v2
    )
    with pytest.raises(SystemExit):
        export_cli.main(
            [str(v2), "--format", "torchscript", "--out", str(tmp_path / "p.ts"), "--net", "pose"]
        )
    assert "SC-DepthV2 pose" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.ts")) and not list(tmp_path.glob(".*"))
