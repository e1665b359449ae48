"""SC-DepthV2 in the trainer: the step, training, resume, evaluation and inference."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_config

from scdepth import checkpoint, config, infer, pose_eval, rectify, train
from scdepth.data.folders import TrainFolder
from scdepth.data.layout import read_image
from scdepth.data.transforms import resize_image
from scdepth.evaluate import evaluate_checkpoint
from scdepth.models import DepthNet, PoseNet, RectifyNet
from scdepth.ops import get_backend
from scdepth.step import TERMS, compute_losses

ROT = {"rot_triplet", "rot_consistency"}


def v2_config(root, **overrides):
    return tiny_config(root, method="sc_depth_v2", **overrides)


@pytest.fixture(scope="module")
def batch(tiny_synthetic):
    data = TrainFolder(tiny_synthetic, image_size=(64, 64), seed=0)
    return torch.utils.data.default_collate([data[0], data[3]])


def nets():
    torch.manual_seed(0)
    return DepthNet(18), PoseNet(18), RectifyNet(18)


def grad_norms(*modules):
    return [
        sum(p.grad.abs().sum().item() for p in m.parameters() if p.grad is not None)
        for m in modules
    ]


def test_v2_weights_and_config_errors(tiny_synthetic):
    w = v2_config(tiny_synthetic).loss_weights()
    assert {k: v for k, v in w.items() if v} == dict(
        photo=1.0, geometry=0.1, smooth=0.1, rot_consistency=1.0, rot_triplet=1.0
    )
    with pytest.raises(ValueError, match="unknown terms \\['rot_triplet'\\]"):
        config.load(overrides=["method=sc_depth_v1", "weights.rot_triplet=1"])
    preset = Path(__file__).parent.parent / "configs" / "nyu_v2.yaml"
    assert config.load(preset).method == "sc_depth_v2"


def test_v2_step_gradients_reach_all_three_networks(tiny_synthetic, batch):
    cfg = v2_config(tiny_synthetic)
    depth_net, pose_net, rectify_net = nets()
    total, terms, _ = compute_losses(
        depth_net, pose_net, batch, cfg, get_backend("ext"), 3, rectify_net=rectify_net
    )
    w = cfg.loss_weights()
    live = {k for k in TERMS if w[k]}
    assert all(terms[k].item() > 0 for k in live)
    torch.testing.assert_close(total, sum(w[k] * terms[k] for k in live))
    assert 0 < terms["rot_before"].item() < 0.1 and terms["rot_after"].item() > 0
    total.backward()
    assert all(g > 0 for g in grad_norms(depth_net, pose_net, rectify_net))
    with pytest.raises(ValueError, match="needs rectify_net"):
        compute_losses(depth_net, pose_net, batch, cfg, get_backend("ext"), 3)


def test_v1_losses_train_the_rectify_net_end_to_end(tiny_synthetic, batch):
    cfg = v2_config(tiny_synthetic, weights={"rot_triplet": 0.0, "rot_consistency": 0.0})
    depth_net, pose_net, rectify_net = nets()
    total, _, _ = compute_losses(
        depth_net, pose_net, batch, cfg, get_backend("ext"), 3, rectify_net=rectify_net
    )
    total.backward()  # through the rectified references
    assert grad_norms(rectify_net)[0] > 0


def test_v2_step_is_reproducible_per_step_and_matches_the_reference_backend(tiny_synthetic, batch):
    cfg = v2_config(tiny_synthetic)
    b64 = {k: v.double() for k, v in batch.items()}
    results = {}
    for backend, step in (("ext", 3), ("reference", 3), ("ext", 4)):
        depth_net, pose_net, rectify_net = (n.double() for n in nets())
        _, terms, _ = compute_losses(
            depth_net, pose_net, b64, cfg, get_backend(backend), step, rectify_net=rectify_net
        )
        results[backend, step] = terms
    for k in (*TERMS, "rot_before", "rot_after"):
        torch.testing.assert_close(
            results["ext", 3][k], results["reference", 3][k], rtol=1e-9, atol=1e-12, msg=k
        )
    # another step draws other random r3_gt (r1 is below the range at initialisation)
    assert results["ext", 4]["rot_consistency"] != results["ext", 3]["rot_consistency"]
    assert results["ext", 4]["photo"] == results["ext", 3]["photo"]


def test_v2_trains_logs_evaluates_and_infers(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    run = train.train(v2_config(tiny_synthetic), out, progress=False)
    assert run.step == 4 and run.rectify_net is not None
    state = checkpoint.load(out / "last.pt")
    assert set(state["rectify_net"]) == set(run.rectify_net.state_dict())
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    logged = [x for x in lines if x["kind"] == "train"]
    assert all(ROT | {"rot_before", "rot_after"} <= set(x) for x in logged)
    val = [x for x in lines if x["kind"] == "val"]
    assert len(val) == 2 and all({"abs_rel", "rot_before", "rot_after"} <= set(x) for x in val)
    # the sheet: 2 depth rows, then 2 rectification rows of 5 tiles
    sheet = cv2.imread(str(out / "sheets" / "epoch_001.png"))
    assert sheet.shape[0] == 4 * 64 and sheet.shape[1] >= 5 * 64
    assert (out / "test_metrics.json").is_file()
    # pose evaluation composes the RectifyNet's rotation with the PoseNet's pose
    assert all("ate_snippet" in x for x in val)
    assert "posenet" in run.pose_metrics["methods"]
    scene = pose_eval.val_pose_scenes(tiny_synthetic)[0]
    pose_net, size, rectify_net = checkpoint.load_pose_model(out / "best.pt")
    assert rectify_net is not None
    composed = pose_eval.predict_relative(pose_net, scene.frames[:2], size, rectify_net=rectify_net)
    alone = pose_eval.predict_relative(pose_net, scene.frames[:2], size)
    frames = [resize_image(read_image(f), size)[None] for f in scene.frames[:2]]
    K = torch.from_numpy(pose_eval.scaled_intrinsics(scene.frames, size)).float()[None]
    with torch.no_grad():
        want = rectify.predict_pose(pose_net, frames[1], frames[0], K, rectify_net)
    np.testing.assert_allclose(composed[0, :3], want[0].double().numpy(), atol=1e-6)
    assert not np.allclose(composed, alone, atol=1e-7)
    # scdepth-eval and scdepth-infer load the V2 checkpoint's DepthNet
    results = evaluate_checkpoint(out / "best.pt", tiny_synthetic, "synthetic", progress=False)
    assert 0 < results["all"]["abs_rel"] < 10
    frames = tiny_synthetic / "testing" / "color"
    n = infer.run(out / "best.pt", frames, tmp_path / "depth", progress=False)
    assert n == len(list(frames.iterdir())) and len(list((tmp_path / "depth").glob("*.npy"))) == n


def test_v2_resume_continues_to_the_same_state(tiny_synthetic, tmp_path):
    # constant lr: a resume that raises epochs stretches a cosine schedule (documented)
    const = dict(lr_schedule="constant")
    straight = train.train(v2_config(tiny_synthetic, **const), tmp_path / "a", progress=False)
    train.train(v2_config(tiny_synthetic, epochs=1, **const), tmp_path / "b", progress=False)
    resumed = train.train(
        v2_config(tiny_synthetic, **const), tmp_path / "b", resume=True, progress=False
    )
    assert resumed.step == straight.step == 4
    for part in ("depth_net", "pose_net", "rectify_net"):
        for a, b in zip(
            getattr(straight, part).state_dict().values(),
            getattr(resumed, part).state_dict().values(),
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=part)


def test_v2_checkpoint_without_rectify_net_is_reported(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    train.train(v2_config(tiny_synthetic, epochs=1), out, progress=False)
    state = checkpoint.load(out / "last.pt")
    del state["rectify_net"], state["format"]
    checkpoint.save(state, out / "last.pt")
    with pytest.raises(checkpoint.CheckpointError, match="holds no rectify_net"):
        train.train(v2_config(tiny_synthetic), out, resume=True, progress=False)


def ddp_worker(rank, world, port, root, out):
    from test_distributed import join

    join(rank, world, port)
    run = train.train(v2_config(root, epochs=1, device="cpu"), out / "run", progress=False)
    nets = {"depth": run.depth_net, "pose": run.pose_net, "rectify": run.rectify_net}
    # weights, and the gradients of the last step (each rank's batch differs; DDP averages)
    dump = {
        k: {n: (p.detach(), p.grad) for n, p in v.named_parameters() if p.grad is not None}
        for k, v in nets.items()
    }
    torch.save(dump, out / f"rank{rank}.pt")


def test_v2_under_ddp_keeps_all_three_networks_identical(tiny_synthetic, tmp_path):
    # the RectifyNet runs twice per step (r1, then r2 and r3) before one backward
    import torch.multiprocessing as mp
    from test_distributed import free_port

    mp.spawn(ddp_worker, args=(2, free_port(), tiny_synthetic, tmp_path), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    for part in ("depth", "pose", "rectify"):
        assert len(a[part]) > 10, part
        for (name, (wa, ga)), (wb, gb) in zip(a[part].items(), b[part].values(), strict=True):
            torch.testing.assert_close(wa, wb, rtol=0, atol=0, msg=f"{part} {name}")
            torch.testing.assert_close(ga, gb, rtol=0, atol=0, msg=f"{part} {name}")
        assert sum(g.abs().sum() for _, g in a[part].values()) > 0, part
