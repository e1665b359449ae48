"""scdepth-pseudo with a tiny TorchScript model built here, a local hub repo, and offline errors."""

import urllib.error
import warnings

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import make_layout

from scdepth.cli.pseudo import main
from scdepth.data import pseudo
from scdepth.data.folders import TrainFolder
from scdepth.data.pseudo import PseudoDepthError, load_model


class Brightness(torch.nn.Module):
    """'Depth' = mean normalised intensity + 3 at half the input size (so outputs get resized)."""

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2) + 3.0


@pytest.fixture
def root(tmp_path):
    root = make_layout(tmp_path / "ds", train=("s0", "s1"), val=(), n_frames=4, pseudo=False)
    ramp = np.tile(np.linspace(0, 255, 40), (32, 1)).astype(np.uint8)  # dark left, bright right
    for f in (root / "training").glob("*/*.png"):
        cv2.imwrite(str(f), np.repeat(ramp[..., None], 3, 2))
    return root


@pytest.fixture
def scripted(tmp_path):
    path = tmp_path / "net.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated in new torch, still widely used
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Brightness()).save(str(path))
    return path


def _pseudo(root, scene="s0", i=0):
    return cv2.imread(str(root / f"training/{scene}/leres_depth/{i:06d}.png"), cv2.IMREAD_UNCHANGED)


def cli_args(root, model):
    return [
        str(root),
        "--model",
        str(model),
        "--input-size",
        "16",
        "16",
        "--batch-size",
        "3",
        "--no-progress",
    ]


def test_fills_every_scene(root, scripted, capsys):
    assert main(cli_args(root, scripted)) == 0
    assert "2 scene(s)" in capsys.readouterr().out
    for scene in ("s0", "s1"):
        assert len(list((root / f"training/{scene}/leres_depth").glob("*.png"))) == 4
    d = _pseudo(root)
    assert d.dtype == np.uint16 and d.shape == (32, 40)
    assert d.max() == 65535 and d[:, -1].mean() > d[:, 0].mean()  # brighter = "farther"
    ds = TrainFolder(root, image_size=(16, 20))
    assert ds[0]["pseudo_depth"].shape == (1, 16, 20)


def test_disparity_is_inverted_and_existing_output_kept(root, scripted):
    main([str(root), "--model", str(scripted), "--no-progress"])
    before = _pseudo(root)
    with pytest.raises(SystemExit):
        main([str(root), "--model", str(scripted), "--output", "disparity", "--no-progress"])
    assert np.array_equal(_pseudo(root), before)  # refused, nothing overwritten
    main(
        [
            str(root),
            "--model",
            str(scripted),
            "--output",
            "disparity",
            "--overwrite",
            "--no-progress",
        ]
    )
    d = _pseudo(root)
    assert d[:, 0].mean() > d[:, -1].mean()  # large disparity (bright) = near


def test_exported_program(root, tmp_path):
    path = tmp_path / "net.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.export.export(
        Brightness(), (torch.zeros(2, 3, 16, 16),), dynamic_shapes={"x": {0: batch}}
    )
    torch.export.save(prog, str(path))
    main(cli_args(root, path))
    d = _pseudo(root, "s1", 3)
    assert d.shape == (32, 40) and d[:, -1].mean() > d[:, 0].mean()


def test_single_scene_folder(root, scripted):
    main([str(root / "training/s1"), "--model", str(scripted), "--no-progress"])
    assert (root / "training/s1/leres_depth/000003.png").is_file()
    assert not (root / "training/s0/leres_depth").exists()


def test_local_hub_repo(root, tmp_path):
    repo = tmp_path / "hubrepo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(
        "import torch\n\n"
        "class Net(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x.mean(1) + 3.0\n\n"
        "def tiny():\n"
        "    return Net()\n"
    )
    main([str(root), "--hub", f"{repo}:tiny", "--no-progress"])
    assert _pseudo(root).shape == (32, 40)
    with pytest.raises(PseudoDepthError, match="cannot load it from the local hub folder"):
        load_model(hub=f"{repo}:missing")


def test_offline_errors(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(pseudo.torch.hub, "load", offline)
    with pytest.raises(PseudoDepthError, match=r"needs network.*--model FILE"):
        load_model(hub="intel-isl/MiDaS:MiDaS_small")
    with pytest.raises(ValueError, match="repo:entry"):
        load_model(hub="MiDaS_small")
    bad = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, bad)
    with pytest.raises(PseudoDepthError, match="not a TorchScript file"):
        load_model(model=str(bad))
    with pytest.raises(PseudoDepthError, match="no such file"):
        load_model(model=str(tmp_path / "none.pt"))
    with pytest.raises(PseudoDepthError, match="no scenes"):
        pseudo.fill_pseudo_depth(tmp_path, torch.nn.Identity(), progress=False)


def test_bad_model_output_shape(root):
    with pytest.raises(PseudoDepthError, match=r"model output must be \[B, H, W\]"):
        pseudo.fill_pseudo_depth(root, torch.nn.Identity(), progress=False)  # returns [B, 3, H, W]
