"""The trainer end to end on tiny generated data."""

import json
import math

import pytest
import torch
from conftest import tiny_config
from data_fixtures import make_layout, make_testing, write_scene

from scdepth import checkpoint, config, precision, train
from scdepth.cli import train as train_cli
from scdepth.data.layout import DatasetError
from scdepth.ops import get_backend
from scdepth.step import TERMS, compute_losses


def test_tiny_run_writes_everything(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    run = train.train(tiny_config(tiny_synthetic), out, progress=False)
    assert run.step == 4 and run.skipped == {"unreadable": 0, "non_finite": 0}
    for name in (
        "last.pt",
        "best.pt",
        "config.yaml",
        "log.jsonl",
        "curves.png",
        "test_metrics.json",
        "sheets/epoch_000.png",
        "sheets/epoch_001.png",
    ):
        assert (out / name).is_file(), name
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "train"] == [1, 2, 3, 4]
    assert {"abs_rel", "a1"} <= set(next(x for x in lines if x["kind"] == "val"))
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert 0 < metrics["all"]["abs_rel"] < 10 and "dynamic" in metrics and "static" in metrics
    assert checkpoint.load(out / "last.pt")["step"] == 4


def test_resume_continues_to_the_same_state(tiny_synthetic, tmp_path):
    # constant lr: a resume that raises epochs stretches a cosine schedule (documented)
    const = dict(lr_schedule="constant")
    straight = train.train(tiny_config(tiny_synthetic, **const), tmp_path / "a", progress=False)
    train.train(tiny_config(tiny_synthetic, epochs=1, **const), tmp_path / "b", progress=False)
    resumed = train.train(
        tiny_config(tiny_synthetic, **const), tmp_path / "b", resume=True, progress=False
    )
    assert resumed.step == straight.step == 4
    for a, b in zip(
        straight.depth_net.state_dict().values(),
        resumed.depth_net.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_existing_run_is_never_overwritten(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(train.TrainingError, match="pass --resume"):
        train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    assert (out / "last.pt").read_bytes() == before


def test_non_finite_losses_are_skipped_then_stop_training(tiny_synthetic, tmp_path, monkeypatch):
    real = train.compute_losses

    def poisoned(*args, **kwargs):
        total, terms, depth = real(*args, **kwargs)
        terms["geometry"] = terms["geometry"] * float("nan")
        return total * float("nan"), terms, depth

    monkeypatch.setattr(train, "compute_losses", poisoned)
    cfg = tiny_config(tiny_synthetic, max_bad_steps=3, epochs=3)
    with pytest.raises(train.TrainingError, match="3 consecutive steps had non-finite geometry"):
        train.train(cfg, tmp_path / "run", progress=False)
    skips = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [s["reason"] for s in skips if s["kind"] == "skip"] == ["non-finite geometry"] * 3


@pytest.mark.parametrize("workers", [0, 1])  # 1: the frame fails in a loader worker
def test_unreadable_frame_mid_run_is_skipped_and_counted(
    tiny_synthetic, tmp_path, monkeypatch, workers
):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    real_init = train.TrainFolder.__init__

    def init_then_break(self, *args, **kwargs):
        real_init(self, *args, **kwargs)  # the layout was valid at start
        if kwargs.get("split", "train") != "train":
            return  # the validation's sequences stay readable
        for scene in self.scenes:
            for frame in scene.frames:
                frame.unlink()  # every frame disappears mid-run

    monkeypatch.setattr(train.TrainFolder, "__init__", init_then_break)
    cfg = tiny_config(root, epochs=1, num_workers=workers)
    run = train.train(cfg, tmp_path / "run", progress=False)
    assert run.skipped["unreadable"] == 2 and run.step == 2
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert "missing" in log


def test_cli_runs_and_reports_bad_config(tiny_synthetic, tmp_path, capsys):
    args = [
        "--out",
        str(tmp_path / "cli"),
        "--no-progress",
        "--epochs",
        "1",
        "--epoch-size",
        "1",
        f"data_root={tiny_synthetic}",
        "image_size=[64, 64]",
        "batch_size=1",
        "num_workers=0",
        "val_max_frames=2",
    ]
    assert train_cli.main(args) == 0
    assert "abs_rel" in capsys.readouterr().out
    assert train_cli.main(["--out", str(tmp_path / "x"), "bogus=1"]) == 2
    assert "unknown config key 'bogus'" in capsys.readouterr().err


def test_ext_and_reference_give_the_same_losses_and_gradients(tiny_synthetic):
    from scdepth.data.folders import TrainFolder
    from scdepth.models import DepthNet, PoseNet

    # float64 end to end, and noise on the images: in flat regions the warped and the
    # unwarped error are mathematically equal, and rounding would decide the auto-mask
    cfg = tiny_config(tiny_synthetic)
    data = TrainFolder(tiny_synthetic, image_size=(64, 64), seed=0)
    batch = torch.utils.data.default_collate([data[0], data[3]])
    batch = {k: v.double() for k, v in batch.items()}
    g = torch.Generator().manual_seed(0)
    for k in ("tgt", "refs"):
        batch[k] = batch[k] + 0.01 * torch.randn(batch[k].shape, generator=g, dtype=torch.float64)
    results = {}
    for backend in ("ext", "reference"):
        torch.manual_seed(0)
        depth_net, pose_net = DepthNet(18).double(), PoseNet(18).double()
        total, terms, _ = compute_losses(depth_net, pose_net, batch, cfg, get_backend(backend), 7)
        total.backward()
        grads = [p.grad.clone() for p in [*depth_net.parameters(), *pose_net.parameters()]]
        results[backend] = (terms, grads)
    (t_ext, g_ext), (t_ref, g_ref) = results["ext"], results["reference"]
    for k in TERMS:
        assert t_ext[k].dtype == torch.float64
        torch.testing.assert_close(t_ext[k], t_ref[k], rtol=1e-9, atol=1e-12, msg=k)
    for a, b in zip(g_ext, g_ref, strict=True):
        scale = b.abs().max().clamp_min(1e-12)
        torch.testing.assert_close(a / scale, b / scale, rtol=1e-7, atol=1e-7)


def test_methods_use_their_terms(tiny_synthetic):
    from scdepth.data.folders import TrainFolder
    from scdepth.models import DepthNet, PoseNet

    data = TrainFolder(tiny_synthetic, image_size=(64, 64), seed=0)
    batch = torch.utils.data.default_collate([data[0], data[1]])
    for method, live in (
        ("sc_depth_v1", {"photo", "geometry", "smooth"}),
        ("monodepth2", {"photo"}),
        ("sc_depth_v3", {"photo", "geometry", "normal_matching", "mask_rank", "normal_rank"}),
    ):
        cfg = config.apply(tiny_config(tiny_synthetic), {"method": method}, "test")
        w = cfg.loss_weights()
        assert {k for k, v in w.items() if v} == live, method
        torch.manual_seed(0)
        total, terms, _ = compute_losses(
            DepthNet(18), PoseNet(18), batch, cfg, get_backend("ext"), 0
        )
        assert all(terms[k].detach().item() > 0 for k in live), method
        torch.testing.assert_close(total, sum(w[k] * terms[k] for k in live))


def test_two_runs_with_one_seed_are_bit_identical(tiny_synthetic, tmp_path):
    """deterministic (the default): same seed, same data -> the same logs and weights."""
    runs = [
        train.train(tiny_config(tiny_synthetic), tmp_path / name, progress=False)
        for name in ("a", "b")
    ]
    logs = [(tmp_path / name / "log.jsonl").read_text().splitlines() for name in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) >= 4
    for net in ("depth_net", "pose_net"):
        a, b = (getattr(r, net).state_dict() for r in runs)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_nondeterministic_kernels_are_reported_under_deterministic_algorithms():
    from scdepth.ops.warp import alert_not_deterministic

    alert_not_deterministic("x")  # off: silent
    try:
        torch.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="x is not deterministic"):
            alert_not_deterministic("x")
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match="x is not deterministic"):
            alert_not_deterministic("x")
    finally:
        torch.use_deterministic_algorithms(False)


def test_only_the_terms_that_read_it_need_pseudo_depth(tiny_synthetic):
    def uses(**values):
        return config.apply(tiny_config(tiny_synthetic), values, "test").uses_pseudo_depth()

    assert uses(method="sc_depth_v3") and not uses(method="sc_depth_v1")
    assert not uses(method="monodepth2")
    assert uses(no_drr=True) and uses(no_lsr=True)  # one refinement left still reads it
    assert not uses(no_drr=True, no_lsr=True)
    assert uses(method="sc_depth_v1", **{"weights.mask_rank": 0.1})


@pytest.fixture(scope="module")
def without_pseudo_depth(tmp_path_factory):
    """Real footage as scdepth-prepare imports it: frames and cam.txt, no leres_depth/; a val
    scene without GT (photometric validation); a test split without seg_mask/ (static)."""
    root = tmp_path_factory.mktemp("imported")
    make_layout(root, train=("s0",), val=(), pseudo=False)
    write_scene(root / "training/v0", n_frames=5, pseudo=False, seed=1)
    (root / "training/val.txt").write_text("v0\n")
    return make_testing(root, n=2, masks=False)


@pytest.mark.parametrize(
    "method, ablation",
    [("sc_depth_v1", {}), ("monodepth2", {}), ("sc_depth_v3", {"no_drr": True, "no_lsr": True})],
)
def test_methods_without_pseudo_depth_train_on_scenes_without_it(
    without_pseudo_depth, tmp_path, capsys, method, ablation
):
    cfg = tiny_config(without_pseudo_depth, method=method, epochs=1, **ablation)
    run = train.train(cfg, tmp_path / "run", progress=False)
    assert run.step == 2 and run.skipped == {"unreadable": 0, "non_finite": 0}
    log = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert "photo" in next(x for x in log if x["kind"] == "val")  # val scene without GT
    # the final evaluation of a test split without seg_mask: the "all" row only
    assert set(run.test_metrics) == {"all"} and run.test_metrics["all"]["count"] == 2
    table = capsys.readouterr().out
    assert "\nall " in table and "\ndynamic " not in table and "\nstatic " not in table


def test_v3_without_pseudo_depth_stops_before_training(without_pseudo_depth, tmp_path, capsys):
    root, out = without_pseudo_depth, tmp_path / "run"
    with pytest.raises(DatasetError) as e:
        train.train(tiny_config(root), out, progress=False)
    assert str(e.value).startswith(f"{root}/training/s0/leres_depth: 0 pseudo-depth PNGs")
    assert f"`scdepth-pseudo {root} --model MODEL.ts`" in str(e.value)
    assert not any(out.iterdir())  # no checkpoint, log or config written
    argv = ["--out", str(out), "--no-progress", f"data_root={root}", "image_size=[64, 64]"]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("scdepth-train: error: ") and "scdepth-pseudo" in err


def test_pose_metrics_logged_per_epoch_and_in_the_final_evaluation(
    tiny_synthetic, tmp_path, capsys
):
    """The synthetic val scene has poses.txt: each epoch logs val ate_snippet, and the final
    evaluation prints the pose table (PoseNet beside the baselines) and writes out/pose."""
    out = tmp_path / "run"
    run = train.train(tiny_config(tiny_synthetic, epochs=1), out, progress=False)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = [x for x in lines if x["kind"] == "val"]
    assert len(val) == 1 and 0 <= val[0]["ate_snippet"] < 1 and "abs_rel" in val[0]
    assert "photo" not in val[0]  # with GT depth only under best_metric=photo (a pass each)
    text = capsys.readouterr().out
    assert "abs_rel" in text and "snip_ate" in text and "constant-velocity" in text
    pose = run.pose_metrics["methods"]["posenet"]["overall"]
    assert pose["frames"] == 8 and pose["snippets"] == 4 and pose["ate"] >= 0
    saved = json.loads((out / "pose/pose_metrics.json").read_text())
    assert saved["methods"]["posenet"]["overall"] == pose
    assert (out / "pose/val_00/posenet.tum.txt").is_file()


HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


def test_steps_between_log_steps_read_nothing_back(tiny_synthetic, tmp_path, monkeypatch):
    """The loop's part of a step (batch to the device, backward, the non-finite guard, Adam,
    the bookkeeping) calls none of the tensor methods that wait for a GPU; only sync() at a
    log step (or a checkpoint save, or an epoch's end) reads. compute_losses is left out: its
    own input checks (scdepth.ops) read K. The train lines hold the mean of their window."""
    reads, counting, losses = [], [False], []
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if counting[0]:
                reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def only_in(fn, on):
        def wrapped(*args, **kwargs):
            before, counting[0] = counting[0], on
            try:
                return fn(*args, **kwargs)
            finally:
                counting[0] = before

        return wrapped

    real_losses = train.compute_losses

    def recorded(*args, **kwargs):
        total, terms, depth = real_losses(*args, **kwargs)
        losses.append(total.detach().item())
        return total, terms, depth

    monkeypatch.setattr(train, "compute_losses", only_in(recorded, False))
    # the loader's own work (sampler, decoding, collate) is host work on host tensors
    monkeypatch.setattr(train, "to_device", only_in(train.to_device, True))
    monkeypatch.setattr(train.Trainer, "train_step", only_in(train.Trainer.train_step, True))
    in_sync = []
    real_sync = train.Trainer.sync

    def sync(self, *args, **kwargs):
        counting[0], n = True, len(reads)
        try:
            return real_sync(self, *args, **kwargs)
        finally:
            counting[0] = False
            in_sync.append(len(reads) - n)
            del reads[n:]

    monkeypatch.setattr(train.Trainer, "sync", sync)
    loaders = []
    real_loader = train.make_loader
    monkeypatch.setattr(train, "make_loader", lambda *a: loaders.append(a) or real_loader(*a))
    cfg = tiny_config(tiny_synthetic, epochs=2, epoch_size=4, log_every=2)
    run = train.train(cfg, tmp_path / "run", progress=False)
    assert run.step == 8 and len(losses) == 8 and len(loaders) == 1  # one loader for the run
    assert reads == []
    assert in_sync and sum(in_sync) >= 4  # the counter sees the reads where they are made
    lines = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    logged = [(x["step"], x["loss"]) for x in lines if x["kind"] == "train"]
    assert [s for s, _ in logged] == [2, 4, 6, 8]
    for step, loss in logged:
        assert loss == pytest.approx(sum(losses[step - 2 : step]) / 2, rel=1e-5)


def test_a_skipped_step_leaves_weights_and_adam_untouched(tiny_synthetic, tmp_path, monkeypatch):
    """A non-finite step 1 of 2 ends where one good step ends: same weights, Adam moments and
    step count (BatchNorm's running statistics did see the bad step's forward pass)."""
    real = train.compute_losses

    def second_step_poisoned(*args, **kwargs):
        total, terms, depth = real(*args, **kwargs)
        return (total * float("nan") if args[5] == 1 else total), terms, depth

    one = train.train(
        tiny_config(tiny_synthetic, epochs=1, epoch_size=1), tmp_path / "a", progress=False
    )
    monkeypatch.setattr(train, "compute_losses", second_step_poisoned)
    cfg = tiny_config(tiny_synthetic, epochs=1, epoch_size=2)
    two = train.train(cfg, tmp_path / "b", progress=False)
    assert two.skipped == {"unreadable": 0, "non_finite": 1}
    for net in ("depth_net", "pose_net"):
        a, b = (dict(getattr(r, net).named_parameters()) for r in (one, two))
        assert all(torch.equal(a[k], b[k]) for k in a), net
    adam = [checkpoint.load(tmp_path / name / "last.pt")["optimizer"] for name in ("a", "b")]
    assert adam[0]["state"].keys() == adam[1]["state"].keys()
    for p, state in adam[0]["state"].items():
        assert state["step"].item() == 1
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state[k], adam[1]["state"][p][k]), (p, k)


def test_a_streak_of_bad_steps_is_noticed_by_the_next_log_step(
    tiny_synthetic, tmp_path, monkeypatch
):
    real = train.compute_losses

    def poisoned(*args, **kwargs):
        total, terms, depth = real(*args, **kwargs)
        return total * float("nan"), terms, depth

    monkeypatch.setattr(train, "compute_losses", poisoned)
    out = tmp_path / "run"
    cfg = tiny_config(tiny_synthetic, epochs=1, epoch_size=4, log_every=4, max_bad_steps=2)
    with pytest.raises(train.TrainingError, match="2 consecutive steps had non-finite loss"):
        train.train(cfg, out, progress=False)
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["step"]) for x in lines] == [("skip", 0), ("skip", 1)]
    assert not (out / "last.pt").exists()  # noticed before anything was saved


def test_learning_rate_schedules():
    cfg = config.load(overrides=["lr=1e-3", "warmup_steps=4", "lr_schedule=cosine"])
    lrs = [train.learning_rate(cfg, s, 14) for s in range(14)]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])  # linear warm-up
    assert lrs[4] == 1e-3 and lrs[9] == pytest.approx(5e-4)  # cosine: halfway at 5 of 10
    assert all(a > b for a, b in zip(lrs[4:-1], lrs[5:], strict=True))
    assert lrs[13] == pytest.approx(5e-4 * (1 + math.cos(0.9 * math.pi)))
    constant = config.load(overrides=["lr=1e-3", "lr_schedule=constant"])
    assert {train.learning_rate(constant, s, 14) for s in range(14)} == {1e-3}


def test_best_metric_chooses_the_epoch_of_best_pt():
    with_gt = {"abs_rel": 0.2, "photo": 0.3}
    assert train.selection_score("auto", with_gt, 10) == 0.2
    # without GT depth: the last epoch (experiments.best_epoch measured it against photo)
    assert train.selection_score("auto", {"photo": 0.3}, 10) == -10
    assert train.selection_score("photo", with_gt, 10) == 0.3
    # last: every later epoch scores lower, so best.pt is always the last epoch
    assert train.selection_score("last", with_gt, 20) < train.selection_score("last", with_gt, 10)
    assert math.isnan(train.selection_score("abs_rel", {"photo": 0.3}, 10))


@pytest.mark.parametrize("best_metric, best_step", [("auto", 2), ("photo", 4), ("last", 4)])
def test_best_pt_follows_best_metric(tiny_synthetic, tmp_path, monkeypatch, best_metric, best_step):
    """Validation scores whose abs_rel is best at the first epoch and photo at the second:
    best.pt is the epoch that best_metric prefers."""
    scores = iter([{"abs_rel": 0.1, "photo": 0.5}, {"abs_rel": 0.5, "photo": 0.1}])
    monkeypatch.setattr(train.Validator, "__call__", lambda self, *a, **k: next(scores))
    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, best_metric=best_metric), out, progress=False)
    assert checkpoint.load(out / "best.pt")["step"] == best_step
    assert checkpoint.load(out / "last.pt")["step"] == 4


def test_photo_is_validated_beside_gt_depth_when_it_picks_best_pt(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(tiny_synthetic, epochs=1, best_metric="photo"), out, progress=False)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = next(x for x in lines if x["kind"] == "val")
    assert "abs_rel" in val and 0 < val["photo"] < 1


def test_amp_auto_is_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision.amp_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision.amp_dtype("auto", cpu) is None
    assert precision.amp_dtype("bf16", cpu) is torch.bfloat16
    assert precision.amp_dtype("none", cpu) is None


def test_the_optimiser_follows_the_schedule(tiny_synthetic, tmp_path):
    cfg = tiny_config(tiny_synthetic, lr_schedule="cosine", warmup_steps=1)
    train.train(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [x["lr"] for x in lines if x["kind"] == "train"]
    assert logged == pytest.approx([train.learning_rate(cfg, s, 4) for s in range(4)])
    saved = checkpoint.load(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"][0]
    assert saved["lr"] == pytest.approx(logged[-1])


def test_channels_last_networks_give_the_same_losses_and_gradients(tiny_synthetic):
    from scdepth.data.folders import TrainFolder
    from scdepth.models import DepthNet, PoseNet
    from scdepth.step import prepare_networks

    data = TrainFolder(tiny_synthetic, image_size=(64, 64), seed=0)
    batch = {k: v.double() for k, v in torch.utils.data.default_collate([data[0]]).items()}
    results = {}
    for layout in (False, True):
        cfg = tiny_config(tiny_synthetic, channels_last=layout)
        torch.manual_seed(0)
        nets = DepthNet(18).double(), PoseNet(18).double()
        prepare_networks(cfg, *nets)
        conv = next(m for m in nets[0].modules() if isinstance(m, torch.nn.Conv2d)).weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == layout
        total, _, _ = compute_losses(*nets, batch, cfg, get_backend("ext"), 7)
        total.backward()
        results[layout] = (total, [p.grad for n in nets for p in n.parameters()])
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-9, atol=1e-12)
    for a, b in zip(results[True][1], results[False][1], strict=True):
        scale = b.abs().max().clamp_min(1e-12)
        torch.testing.assert_close(a / scale, b / scale, rtol=1e-7, atol=1e-7)
