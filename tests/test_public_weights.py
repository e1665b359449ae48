"""scdepth-import-weights: small fake checkpoints in each public layout (names and shapes as
SC-Depth's PyTorch Lightning code and Monodepth2 write them, built here from torchvision's
ResNet and the decoders' channel counts) must land every tensor where it belongs, give the
same output as networks whose weights were copied by hand, refuse what does not fit by name
and shape, and give checkpoints that scdepth-eval, scdepth-infer and init_from take."""

from __future__ import annotations

import argparse
import hashlib
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm
from conftest import tiny_config

from scdepth import checkpoint, public_weights, train
from scdepth.cli import eval as eval_cli
from scdepth.cli import export as export_cli
from scdepth.cli import import_weights as import_cli
from scdepth.cli import infer as infer_cli
from scdepth.models import DepthNet, PoseNet

ENC = {18: [64, 64, 128, 256, 512], 50: [64, 256, 512, 1024, 2048]}
DEC = [16, 32, 64, 128, 256]


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen) * 0.05


def resnet_state(layers, gen, images=1) -> dict:
    """torchvision's ResNet state dict (fc included, as both public encoders keep it) with
    random values; `images` stacked RGB images on conv1 as the pose encoders take."""
    net = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50}[layers]()
    if images > 1:
        net.conv1 = nn.Conv2d(3 * images, 64, 7, 2, 3, bias=False)
    out = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            out[k] = v
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=gen) + 0.5
        else:
            out[k] = rand(gen, *v.shape)
    return out


def upconv_shapes(enc):
    """(weight shape of upconv_0, of upconv_1) for the decoder's five steps, in order."""
    out = []
    for i in range(4, -1, -1):
        cin0 = enc[-1] if i == 4 else DEC[i + 1]
        cin1 = DEC[i] + (enc[i - 1] if i > 0 else 0)
        out.append(((DEC[i], cin0, 3, 3), (DEC[i], cin1, 3, 3)))
    return out


def conv(sd, key, shape, gen):
    sd[f"{key}.weight"], sd[f"{key}.bias"] = rand(gen, *shape), rand(gen, shape[0])


def pose_decoder(sd, prefix, names, outputs, gen):
    conv(sd, f"{prefix}{names[0]}", (256, 512, 1, 1), gen)
    conv(sd, f"{prefix}{names[1]}", (256, 256, 3, 3), gen)
    conv(sd, f"{prefix}{names[2]}", (256, 256, 3, 3), gen)
    conv(sd, f"{prefix}{names[3]}", (outputs, 256, 1, 1), gen)


def sc_depth_state(layers=18, seed=0, rectify=False, encoder_layers=None) -> OrderedDict:
    gen = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for k, v in resnet_state(encoder_layers or layers, gen).items():
        sd[f"depth_net.encoder.encoder.{k}"] = v
    for j, (s0, s1) in enumerate(upconv_shapes(ENC[layers])):
        conv(sd, f"depth_net.decoder.upconvs0.{j}.conv.conv", s0, gen)
        conv(sd, f"depth_net.decoder.upconvs1.{j}.conv.conv", s1, gen)
    for s in range(4):
        conv(sd, f"depth_net.decoder.dispconvs.{s}.conv", (1, DEC[s], 3, 3), gen)
    nets = [("pose_net", 6)] + ([("rectify_net", 3)] if rectify else [])
    for net, outputs in nets:
        for k, v in resnet_state(18, gen, images=2).items():
            sd[f"{net}.encoder.encoder.{k}"] = v
        names = ["conv_squeeze", "convs_pose.0", "convs_pose.1", "convs_pose.2"]
        pose_decoder(sd, f"{net}.decoder.", names, outputs, gen)
    return sd


class LightningLike(dict):
    """Stands for Lightning's AttributeDict: a dict subclass the file names."""


def lightning_ckpt(path, state, version="v3", dataset="kitti"):
    hparams = argparse.Namespace(
        model_version=version, dataset_name=dataset, resnet_layers=18, lr=1e-4, exp_name="x"
    )
    torch.save(
        {
            "epoch": 3,
            "global_step": 4000,
            "pytorch-lightning_version": "1.9.5",
            "state_dict": state,
            "hyper_parameters": {"hparams": hparams},
            "callbacks": LightningLike(best_model_score=torch.tensor(0.1)),
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
        },
        path,
    )
    return path


def monodepth2_folder(folder, layers=18, pose_layers=18, seed=0, frames=2):
    """encoder.pth, depth.pth, pose_encoder.pth, pose.pth as Monodepth2's save_model writes
    them (torch's pre-1.6 file format, as the published 2019 files)."""
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    enc = {f"encoder.{k}": v for k, v in resnet_state(layers, gen).items()}
    enc.update(height=192, width=640, use_stereo=False)
    dec, n = OrderedDict(), 0
    for s0, s1 in upconv_shapes(ENC[layers]):  # convs[("upconv", i, 0)], then (i, 1)
        conv(dec, f"decoder.{n}.conv.conv", s0, gen)
        conv(dec, f"decoder.{n + 1}.conv.conv", s1, gen)
        n += 2
    for s in range(4):  # convs[("dispconv", s)]
        conv(dec, f"decoder.{10 + s}.conv", (1, DEC[s], 3, 3), gen)
    pose_enc = {f"encoder.{k}": v for k, v in resnet_state(pose_layers, gen, images=2).items()}
    pose = OrderedDict()
    pose_decoder(pose, "net.", ["0", "1", "2", "3"], 6 * frames, gen)
    if pose_layers == 50:
        pose["net.0.weight"] = rand(gen, 256, 2048, 1, 1)
    for name, sd in (("encoder", enc), ("depth", dec), ("pose_encoder", pose_enc), ("pose", pose)):
        torch.save(sd, folder / f"{name}.pth", _use_new_zipfile_serialization=False)
    return folder


# --- networks with the weights copied by hand -------------------------------------------------


@torch.no_grad()
def hand_depth_net(layers, enc_sd, dec_weight):
    """DepthNet with the encoder's torchvision modules loaded and each decoder convolution
    copied from dec_weight(kind, j) -> (weight, bias) (kind: up0, up1, disp)."""
    net = DepthNet(layers).eval()
    net.encoder.net.load_state_dict({k: v for k, v in enc_sd.items() if not k.startswith("fc.")})
    for j in range(5):
        for kind in ("up0", "up1"):
            block = getattr(net.decoder, kind)[j][1]
            block.weight.copy_(dec_weight(kind, j)[0])
            block.bias.copy_(dec_weight(kind, j)[1])
    net.decoder.disp[1].weight.copy_(dec_weight("disp", 0)[0])
    net.decoder.disp[1].bias.copy_(dec_weight("disp", 0)[1])
    return net


@torch.no_grad()
def hand_pose_net(enc_sd, convs):
    """PoseNet with its decoder's four convolutions copied from `convs` [(weight, bias)]."""
    net = PoseNet(18).eval()
    net.encoder.net.load_state_dict({k: v for k, v in enc_sd.items() if not k.startswith("fc.")})
    for layer, (w, b) in zip((0, 2, 4, 6), convs, strict=True):
        net.decoder[layer].weight.copy_(w)
        net.decoder[layer].bias.copy_(b)
    return net


def strip(sd, prefix):
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def same_output(a, b, *inputs):
    with torch.no_grad():
        torch.testing.assert_close(a(*inputs), b(*inputs), rtol=0, atol=0)


def loaded(path, key, net):
    return checkpoint.load_weights(net, checkpoint.load(path), key, path).eval()


# --- SC-Depth --------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [18, 50])
def test_sc_depth_lands_every_tensor_and_matches_hand_copied_nets(tmp_path, layers):
    state = sc_depth_state(layers)
    src = lightning_ckpt(tmp_path / "v3.ckpt", state)
    out = tmp_path / "ours.pt"
    assert import_cli.main([str(src), "--from", "sc_depth_pl", "--out", str(out)]) == 0
    saved = checkpoint.load(out)
    d = "depth_net.decoder."

    def dec(kind, j):
        name = {"up0": f"upconvs0.{j}.conv.conv", "up1": f"upconvs1.{j}.conv.conv"}.get(
            kind, "dispconvs.0.conv"
        )
        return state[f"{d}{name}.weight"], state[f"{d}{name}.bias"]

    hand = hand_depth_net(layers, strip(state, "depth_net.encoder.encoder."), dec)
    x = torch.randn(2, 3, 64, 96)
    for key, value in hand.state_dict().items():
        assert torch.equal(saved["depth_net"][key], value), key
    same_output(loaded(out, "depth_net", DepthNet(layers)), hand, x)

    p = "pose_net.decoder."
    convs = [
        (state[f"{p}{n}.weight"], state[f"{p}{n}.bias"])
        for n in ("conv_squeeze", "convs_pose.0", "convs_pose.1", "convs_pose.2")
    ]
    hand_pose = hand_pose_net(strip(state, "pose_net.encoder.encoder."), convs)
    same_output(loaded(out, "pose_net", PoseNet(18)), hand_pose, x, x.flip(0))

    cfg, src_info = saved["config"], saved["source"]
    assert cfg["resnet_layers"] == layers and cfg["method"] == "sc_depth_v3"
    assert cfg["image_size"] == [256, 832] and cfg["dataset"] == "kitti"  # KITTI's size
    assert src_info["layout"] == "sc_depth_pl"
    assert src_info["files"] == {str(src): hashlib.sha256(src.read_bytes()).hexdigest()}
    assert src_info["options"]["dataset_name"] == "kitti"
    unused = {line.split()[0] for line in src_info["unused"]}
    expect = {k for k in state if ".fc." in k or any(f"dispconvs.{s}." in k for s in (1, 2, 3))}
    assert unused == expect  # every other tensor is in our networks (checked above)
    assert src_info["approximations"] == [public_weights.UPSAMPLING]


def test_reading_a_lightning_file_runs_none_of_its_code(tmp_path):
    """Classes the file names (argparse.Namespace, a dict subclass) become inert
    stand-ins; a callable it names is never called."""
    called = []

    class Trap:
        def __reduce__(self):
            return (called.append, ("ran",))

    path = tmp_path / "trap.ckpt"
    torch.save(
        {"state_dict": sc_depth_state(), "trap": Trap(), "ns": argparse.Namespace(a=1)}, path
    )
    out = public_weights.read_foreign(path)
    assert called == []
    assert isinstance(out["trap"], public_weights.Opaque)
    assert public_weights.plain(out["ns"]) == {"a": 1}


def test_v2_rectify_net_is_refused_and_strict_refuses_approximations(tmp_path, capsys):
    src = lightning_ckpt(tmp_path / "v2.ckpt", sc_depth_state(rectify=True), "v2", "nyu")
    out = tmp_path / "v2.pt"
    assert import_cli.main([str(src), "--from", "sc_depth_pl", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not imported: rectify_net.*" in err and "[3, 256, 1, 1]" in err
    assert "approximation: depth decoder" in err
    saved = checkpoint.load(out)
    assert "rectify_net" not in saved and saved["config"]["method"] == "sc_depth_v1"
    assert saved["config"]["image_size"] == [256, 320]  # NYU's training size
    with pytest.raises(SystemExit):
        import_cli.main(
            [str(src), "--from", "sc_depth_pl", "--out", str(tmp_path / "s.pt"), "--strict"]
        )
    assert "--strict: not an exact import" in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda sd: sd.__setitem__(
                "depth_net.decoder.upconvs1.2.conv.conv.weight", torch.zeros(64, 60, 3, 3)
            ),
            "depth_net.decoder.upconvs1.2.conv.conv.weight [64, 60, 3, 3] where our "
            "decoder.up1.2.1.weight is [64, 128, 3, 3]",
        ),
        (
            lambda sd: sd.__setitem__("depth_net.decoder.extra.weight", torch.zeros(3)),
            "depth_net.decoder.extra.weight [3] has no place",
        ),
        (
            lambda sd: sd.pop("depth_net.decoder.dispconvs.0.conv.bias"),
            "nothing for our decoder.disp.1.bias [1]",
        ),
    ],
    ids=["shape", "unknown key", "missing"],
)
def test_depth_that_does_not_fit_is_refused_by_name_and_shape(tmp_path, capsys, change, message):
    state = sc_depth_state()
    change(state)
    src = lightning_ckpt(tmp_path / "bad.ckpt", state)
    with pytest.raises(SystemExit):
        import_cli.main([str(src), "--from", "sc_depth_pl", "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err
    assert "depth_net (DepthNet, ResNet-18) does not fit" in err and message in err
    assert not (tmp_path / "o.pt").exists()


def test_resnet34_encoder_is_refused(tmp_path):
    """ResNet-34 has BasicBlocks like ResNet-18 but more of them: the extra blocks are named."""
    src = lightning_ckpt(tmp_path / "r34.ckpt", sc_depth_state(encoder_layers=34))
    with pytest.raises(public_weights.ImportRefused, match=r"layer1\.2\.conv1\.weight .*no place"):
        public_weights.import_weights(src, "sc_depth_pl", tmp_path / "o.pt", log=print)


def test_not_a_checkpoint_and_not_lightning_are_refused(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(public_weights.ImportRefused, match="not a readable PyTorch checkpoint"):
        public_weights.read_public(junk, "sc_depth_pl")
    plain = tmp_path / "plain.ckpt"
    torch.save({"model": {"w": torch.zeros(1)}}, plain)
    with pytest.raises(public_weights.ImportRefused, match="no state_dict with depth_net"):
        public_weights.read_public(plain, "sc_depth_pl")


# --- Monodepth2 ------------------------------------------------------------------------------


def md2_tensors(folder, name):
    return torch.load(folder / f"{name}.pth", weights_only=True)


@pytest.mark.parametrize("layers", [18, 50])
def test_monodepth2_lands_every_tensor_and_matches_hand_copied_nets(tmp_path, layers):
    folder = monodepth2_folder(tmp_path / "mono_640x192", layers=layers, pose_layers=layers)
    out = tmp_path / "md2.pt"
    assert (
        import_cli.main([str(folder / "depth.pth"), "--from", "monodepth2", "--out", str(out)]) == 0
    )
    saved = checkpoint.load(out)
    enc, dec = md2_tensors(folder, "encoder"), md2_tensors(folder, "depth")

    def dec_weight(kind, j):
        n = {"up0": 2 * j, "up1": 2 * j + 1}.get(kind)
        name = f"decoder.{n}.conv.conv" if n is not None else "decoder.10.conv"
        return dec[f"{name}.weight"], dec[f"{name}.bias"]

    hand = hand_depth_net(layers, strip(enc, "encoder."), dec_weight)
    for key, value in hand.state_dict().items():
        assert torch.equal(saved["depth_net"][key], value), key
    x = torch.randn(2, 3, 64, 96)
    same_output(loaded(out, "depth_net", DepthNet(layers)), hand, x)
    assert saved["config"]["image_size"] == [192, 640] and saved["config"]["method"] == "monodepth2"
    assert saved["config"]["resnet_layers"] == layers
    unused = {line.split()[0] for line in saved["source"]["unused"]}
    coarse = {f"decoder.{n}.conv.{p}" for n in (11, 12, 13) for p in ("weight", "bias")}
    assert unused >= {"encoder.fc.weight", "encoder.fc.bias"} | coarse
    assert public_weights.DISPARITY_RANGE in saved["source"]["approximations"]


def test_monodepth2_pose_is_their_first_frame_reordered(tmp_path):
    """Our [t, r] is their first frame's [axis-angle, translation] swapped: checked against
    a hand-copied PoseNet and against their decoder computed here from their tensors."""
    folder = monodepth2_folder(tmp_path / "m")
    out = tmp_path / "md2.pt"
    public_weights.import_weights(folder, "monodepth2", out, log=lambda m: None)
    pose_enc, pose = md2_tensors(folder, "pose_encoder"), md2_tensors(folder, "pose")
    w3, b3 = pose["net.3.weight"], pose["net.3.bias"]
    convs = [(pose[f"net.{i}.weight"], pose[f"net.{i}.bias"]) for i in range(3)]
    convs.append((torch.cat([w3[3:6], w3[0:3]]), torch.cat([b3[3:6], b3[0:3]])))
    net = loaded(out, "pose_net", PoseNet(18))
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    same_output(net, hand_pose_net(strip(pose_enc, "encoder."), convs), a, b)
    with torch.no_grad():  # their PoseDecoder on the same features
        f = net.encoder(torch.cat([a, b], 1))[-1]
        x = F.relu(F.conv2d(f, pose["net.0.weight"], pose["net.0.bias"]))
        x = F.relu(F.conv2d(x, pose["net.1.weight"], pose["net.1.bias"], padding=1))
        x = F.relu(F.conv2d(x, pose["net.2.weight"], pose["net.2.bias"], padding=1))
        theirs = 0.01 * F.conv2d(x, w3, b3).mean((2, 3)).view(-1, 2, 1, 6)
        ours = net(a, b)
    torch.testing.assert_close(ours[:, :3], theirs[:, 0, 0, 3:])  # translation
    torch.testing.assert_close(ours[:, 3:], theirs[:, 0, 0, :3])  # axis-angle, read as Euler
    assert public_weights.AXIS_ANGLE in checkpoint.load(out)["source"]["approximations"]


def test_monodepth2_resnet50_pose_is_refused_depth_kept(tmp_path):
    folder = monodepth2_folder(tmp_path / "m50", layers=50, pose_layers=50)
    notes = []
    done = public_weights.import_weights(folder, "monodepth2", tmp_path / "o.pt", log=notes.append)
    assert list(done.nets) == ["depth_net"] and done.resnet_layers == 50
    assert (
        "not imported: pose_encoder.pth is a ResNet-50 (encoder.layer1.0.conv3.weight "
        "[256, 64, 1, 1]), our PoseNet a ResNet-18: not imported" in notes
    ), notes
    with pytest.raises(checkpoint.CheckpointError, match="no PoseNet"):
        checkpoint.load_pose_model(tmp_path / "o.pt")


def test_monodepth2_folder_without_the_files_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(public_weights.ImportRefused, match="encoder.pth and depth.pth"):
        public_weights.read_public(tmp_path / "empty", "monodepth2")


# --- a public file where a scdepth checkpoint is expected -------------------------------------


def test_public_files_given_to_the_commands_name_the_import(tmp_path, capsys):
    """scdepth-export, -infer and -eval read only scdepth checkpoints (checkpoint.load): a public
    file is refused with the scdepth-import-weights command that converts it (the commands say
    it; checkpoint.load itself reads no foreign file)."""
    ckpt = lightning_ckpt(tmp_path / "v3.ckpt", sc_depth_state())
    folder = monodepth2_folder(tmp_path / "md2")
    with pytest.raises(SystemExit):
        export_cli.main([str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "d.ts")])
    want = f"scdepth-import-weights {ckpt} --from sc_depth_pl --out CHECKPOINT"
    assert f"{ckpt} is an SC-Depth PyTorch Lightning checkpoint" in capsys.readouterr().err
    for name in public_weights.MONODEPTH2_FILES:
        with pytest.raises(SystemExit):
            export_cli.main([str(folder / name), "--format", "onnx", "--out", str(tmp_path / "o")])
        assert f"scdepth-import-weights {folder} --from monodepth2" in capsys.readouterr().err, name
    with pytest.raises(SystemExit):
        eval_cli.main(["--checkpoint", str(ckpt), "--data-root", str(tmp_path), "--dataset", "nyu"])
    assert want in capsys.readouterr().err
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "other.pt")  # neither layout
    with pytest.raises(checkpoint.CheckpointError, match="is not a scdepth checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


# --- the result in use -----------------------------------------------------------------------


@pytest.fixture
def imported(tmp_path):
    src = lightning_ckpt(tmp_path / "v1.ckpt", sc_depth_state(), "v1", "kitti")
    out = tmp_path / "imported.pt"
    public_weights.import_weights(src, "sc_depth_pl", out, size=(64, 64), log=lambda m: None)
    return out


def test_imported_checkpoint_evaluates_and_infers(imported, tiny_synthetic, tmp_path, capsys):
    assert (
        eval_cli.main(
            [
                "--checkpoint",
                str(imported),
                "--data-root",
                str(tiny_synthetic),
                "--dataset",
                "synthetic",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "abs_rel" in capsys.readouterr().out
    frames = sorted((tiny_synthetic / "testing" / "color").iterdir())[:2]
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in frames:
        (folder / f.name).write_bytes(f.read_bytes())
    assert (
        infer_cli.main([str(imported), str(folder), "--out", str(tmp_path / "d"), "--no-progress"])
        == 0
    )
    assert len(list((tmp_path / "d").glob("*.npy"))) == 2


def test_init_from_starts_training_from_the_import_and_resume_ignores_it(
    imported, tiny_synthetic, tmp_path, capsys
):
    cfg = tiny_config(tiny_synthetic, method="sc_depth_v1", epochs=1, init_from=str(imported))
    depth_net, pose_net, _, _ = train.build(cfg, torch.device("cpu"))
    assert "depth_net, pose_net" in capsys.readouterr().err
    state = checkpoint.load(imported)
    for key, net in (("depth_net", depth_net), ("pose_net", pose_net)):
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[key][k]), k
    fresh, _, _, _ = train.build(cfg, torch.device("cpu"), init=False)
    assert not torch.equal(
        fresh.state_dict()["decoder.disp.1.weight"], state["depth_net"]["decoder.disp.1.weight"]
    )

    out = tmp_path / "run"
    train.train(cfg, out, progress=False)
    imported.unlink()  # a resume takes last.pt's weights and never reads init_from
    cfg2 = tiny_config(tiny_synthetic, method="sc_depth_v1", epochs=2, init_from=str(imported))
    run = train.train(cfg2, out, resume=True, progress=False)
    assert run.step == 2 * cfg2.epoch_size


def test_init_from_of_another_resnet_is_refused(imported, tiny_synthetic):
    cfg = tiny_config(tiny_synthetic, resnet_layers=50, init_from=str(imported))
    with pytest.raises(checkpoint.CheckpointError, match="ResNet-18, this run's resnet_layers"):
        train.build(cfg, torch.device("cpu"))


def test_init_from_must_be_a_path(tiny_synthetic):
    with pytest.raises(ValueError, match="init_from must be a checkpoint path"):
        tiny_config(tiny_synthetic, init_from=" x.pt")
    assert tiny_config(tiny_synthetic).init_from == ""  # by default nothing is loaded
