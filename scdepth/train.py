"""scdepth-train: trains SC-Depth V1 / V2 / SC-DepthV3 from video on the fused ops.

    scdepth-train [--config FILE] [--out DIR] [--resume] [--device cpu|cuda]
                  [--backend ext|reference] [--epochs N] [--epoch-size N] [key=value ...]

With no arguments: SC-DepthV3 on the synthetic indoor dataset (generated on first use), on
the GPU when there is one; at the end the test split is evaluated and the table printed.
Under torchrun it trains with DistributedDataParallel (see the README).
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import torch
import yaml
from tqdm import tqdm

from . import checkpoint, config, plots, pose_eval
from .data.dataset import TrainFolder
from .data.layout import UnreadableFrame
from .distributed import Dist
from .evaluate import evaluate_model, format_table
from .models import DepthNet, PoseNet, RectifyNet
from .models.encoder import PretrainedUnavailable
from .ops import get_backend
from .step import compute_losses
from .validate import Validator

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(RuntimeError):
    pass


@dataclass
class Run:
    """What train() returns: the trained networks, the step reached, the test metrics (and
    the pose metrics of the val scenes with poses.txt)."""

    depth_net: torch.nn.Module
    pose_net: torch.nn.Module
    step: int
    skipped: dict
    test_metrics: dict
    pose_metrics: dict = field(default_factory=dict)
    rectify_net: torch.nn.Module | None = None  # SC-DepthV2 only


def ensure_dataset(cfg, progress):
    """The synthetic default is generated on first use; any other root must exist."""
    root = Path(cfg.data_root)
    if (root / "training").is_dir():
        return
    if cfg.dataset != "synthetic":
        raise TrainingError(f"data_root {root} has no training/ folder (SC-Depth layout)")
    from .data.synth import generate

    print(f"generating the synthetic {cfg.synth_preset} dataset into {root}", file=sys.stderr)
    generate(root, preset=cfg.synth_preset, seed=cfg.seed, progress=progress)


def epoch_batches(n_samples, cfg, epoch, start, rank=0):
    """One epoch's index batches for one rank: epoch_size random batches drawn from
    (seed, epoch, rank), so that a resumed run draws the same ones; batches before `start`
    are skipped."""
    g = torch.Generator().manual_seed((cfg.seed * 100_003 + epoch) * 1009 + rank)
    idx = torch.randint(n_samples, (cfg.epoch_size, cfg.batch_size), generator=g)
    return idx[start:].tolist()


def to_device(batch, device):
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


class Log:
    """log.jsonl (every logged step and epoch), TensorBoard when installed, curve history."""

    def __init__(self, out, history):
        self.file = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed in close())
        self.history = history
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, kind, step, values):
        self.file.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.history.setdefault(f"{kind}/{k}", []).append((step, float(v)))
                if self.tb is not None:
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self):
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def build(cfg, device):
    """DepthNet, PoseNet, RectifyNet (SC-DepthV2; else None) and one Adam over all of them."""
    imagenet = cfg.pretrained == "imagenet"
    depth_net = DepthNet(cfg.resnet_layers, pretrained=imagenet).to(device)
    pose_net = PoseNet(18, pretrained=imagenet).to(device)
    rectify_net = None
    if cfg.method == "sc_depth_v2":
        rectify_net = RectifyNet(18, pretrained=imagenet).to(device)
    nets = [n for n in (depth_net, pose_net, rectify_net) if n is not None]
    params = [p for n in nets for p in n.parameters()]
    return depth_net, pose_net, rectify_net, torch.optim.Adam(params, lr=cfg.lr)


def all_finite(tensors):
    return bool(torch.stack([t.detach().abs().amax() for t in tensors]).isfinite().all())


def train(cfg, out_dir, *, resume=False, progress=True):
    """Trains, writing checkpoints, logs and pictures into out_dir (rank 0 only)."""
    dist = Dist.setup(cfg.device)
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    set_deterministic(cfg.deterministic, dist.device)
    try:
        return _train(cfg, Path(out_dir), dist, resume, progress and dist.is_main)
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)
        dist.close()


def set_deterministic(on, device):
    """torch's deterministic algorithms: on the CPU two runs with one seed are then
    bit-identical. On a GPU the kernels without a deterministic version (inverse_warp's and
    grid_sample's atomic scatters among them) warn instead of stopping the run, and cuBLAS
    needs a fixed workspace (CUBLAS_WORKSPACE_CONFIG, set here unless the user set it)."""
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=device.type == "cuda")


def _train(cfg, out, dist, resume, progress):
    last, best_path = out / "last.pt", out / "best.pt"
    if dist.is_main:
        checkpoint.check_writable(out)
        checkpoint.remove_stale_temporaries(out)
        if last.exists() and not resume:
            raise TrainingError(
                f"{last} exists: pass --resume to continue it, or choose another --out "
                "(nothing is overwritten)"
            )
    dist.barrier()
    state = checkpoint.load(last) if resume and last.exists() else None
    if state is not None:
        saved = config.from_dict(state["config"])
        saved.epochs = cfg.epochs  # the one setting a resume may change: train longer
        cfg = saved.validate()
    device = dist.device
    torch.manual_seed(cfg.seed)
    if dist.is_main:
        ensure_dataset(cfg, progress)
    dist.barrier()
    train_set = TrainFolder(
        cfg.data_root,
        image_size=cfg.image_size,
        sequence_length=cfg.sequence_length,
        skip_frames=cfg.skip_frames,
        use_pseudo_depth=cfg.uses_pseudo_depth(),  # V3's refinements only; checked here
        seed=cfg.seed,
    )
    validator = Validator(cfg) if dist.is_main else None
    ops = get_backend(cfg.backend)
    depth_net, pose_net, rectify_net, optim = build(cfg, device)
    amp_dtype = AMP_DTYPES[cfg.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    step, best, history = 0, math.inf, {}
    skipped = {"unreadable": 0, "non_finite": 0}
    if state is not None:
        depth_net.load_state_dict(state["depth_net"])
        pose_net.load_state_dict(state["pose_net"])
        if rectify_net is not None:
            if "rectify_net" not in state:
                raise checkpoint.CheckpointError(f"{last}: sc_depth_v2 run without rectify_net")
            rectify_net.load_state_dict(state["rectify_net"])
        optim.load_state_dict(state["optimizer"])
        step, best, skipped = state["step"], state["best"], dict(state["skipped"])
        history = {k: [tuple(p) for p in v] for k, v in state["history"].items()}
        if dist.is_main:
            print(f"resuming {last} at step {step}", file=sys.stderr)
    depth_ddp, pose_ddp = dist.wrap(depth_net), dist.wrap(pose_net)
    rectify_ddp = dist.wrap(rectify_net) if rectify_net is not None else None
    log = None
    if dist.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(cfg), sort_keys=False))
        log = Log(out, history)
    total_steps = cfg.epochs * cfg.epoch_size
    bad_in_a_row = 0

    def save(path):
        checkpoint.save(
            {
                "config": config.to_dict(cfg),
                "step": step,
                "best": best,
                "depth_net": depth_net.state_dict(),
                "pose_net": pose_net.state_dict(),
                **({"rectify_net": rectify_net.state_dict()} if rectify_net is not None else {}),
                "optimizer": optim.state_dict(),
                "history": {k: [list(p) for p in v] for k, v in history.items()},
                "skipped": skipped,
                "world_size": dist.world_size,
            },
            path,
        )

    def note_skip(kind, reason):
        skipped[kind] += 1
        if log is not None:
            log.write("skip", step, {"reason": reason})

    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"scdepth-train {cfg.method}",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        while step < total_steps:
            epoch, start = divmod(step, cfg.epoch_size)
            train_set.set_epoch(epoch)
            batches = epoch_batches(len(train_set), cfg, epoch, start, dist.rank)
            loader = torch.utils.data.DataLoader(
                train_set,
                batch_sampler=batches,
                num_workers=cfg.num_workers,
                pin_memory=device.type == "cuda",
            )
            it, t0, first = iter(loader), time.perf_counter(), step
            for _ in batches:
                try:
                    batch, why = to_device(next(it), device), None
                except UnreadableFrame as e:  # a frame went missing mid-run: skip and count
                    batch, why = None, str(e)
                # Every rank skips a step that any rank cannot take (DDP needs all of them).
                if not dist.all_true(batch is not None):
                    note_skip("unreadable", why or "another rank's frame was unreadable")
                else:
                    total, terms, _ = compute_losses(
                        depth_ddp,
                        pose_ddp,
                        batch,
                        cfg,
                        ops,
                        dist.rank * 10_000_019 + step,
                        amp_dtype=amp_dtype,
                        rectify_net=rectify_ddp,
                    )
                    values = {k: v.detach().item() for k, v in terms.items()}
                    optim.zero_grad(set_to_none=True)
                    loss_value = total.detach().item()
                    ok = dist.all_true(math.isfinite(loss_value))
                    cause = ", ".join(k for k, v in values.items() if not math.isfinite(v))
                    if ok:
                        scaler.scale(total).backward()  # DDP averages the gradients here
                        scaler.unscale_(optim)
                        ok = all_finite(
                            [p.grad for p in optim.param_groups[0]["params"] if p.grad is not None]
                        )
                        cause = "gradients"
                    if ok:
                        scaler.step(optim)
                        scaler.update()
                        bad_in_a_row = 0
                    else:
                        note_skip("non_finite", f"non-finite {cause or 'loss (another rank)'}")
                        bad_in_a_row += 1
                        if bad_in_a_row >= cfg.max_bad_steps:
                            raise TrainingError(
                                f"{bad_in_a_row} consecutive steps had non-finite {cause}; "
                                f"stopping at step {step} (the last checkpoint is intact)"
                            )
                    if log is not None and (
                        (step + 1) % cfg.log_every == 0 or step + 1 == total_steps
                    ):
                        rate = (step + 1 - first) / (time.perf_counter() - t0)
                        log.write("train", step + 1, {"loss": loss_value, **values})
                        bar.set_postfix(
                            loss=f"{loss_value:.4f}",
                            photo=f"{values['photo']:.4f}",
                            it_s=f"{rate:.2f}",
                        )
                step += 1
                bar.update()
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and dist.is_main:
                    save(last)
            if dist.is_main:
                metrics = validator(depth_net, pose_net, ops, device, rectify_net)
                if metrics:
                    log.write("val", step, metrics)
                    bar.write(
                        f"epoch {epoch}: " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                    )
                sheet = validator.sheet(depth_net, device, rectify_net, ops)
                if sheet is not None:
                    (out / "sheets").mkdir(exist_ok=True)
                    cv2.imwrite(str(out / "sheets" / f"epoch_{epoch:03d}.png"), sheet)
                score = metrics.get("abs_rel", metrics.get("photo", math.nan))
                improved = math.isfinite(score) and score < best
                best = score if improved else best
                save(last)
                if (improved or not best_path.exists()) and not checkpoint.link(last, best_path):
                    save(best_path)
            dist.barrier()
    finally:
        bar.close()
        if log is not None:
            log.close()
    results, pose = {}, {}
    if dist.is_main:
        plots.save_curves(history, out / "curves.png", epoch_size=cfg.epoch_size)
        if any(skipped.values()):
            print(f"skipped steps: {skipped}", file=sys.stderr)
        results = final_evaluation(cfg, best_path, out, device, progress)
        pose = pose_eval.final_pose_evaluation(best_path, cfg, out, device)
    return Run(depth_net, pose_net, step, skipped, results, pose, rectify_net)


def final_evaluation(cfg, best_path, out, device, progress):
    """The best checkpoint on the test split, printed as a table and saved as JSON."""
    if not (Path(cfg.data_root) / "testing").is_dir():
        return {}
    from .infer import load_depth_model

    model, image_size = load_depth_model(best_path, device)
    results = evaluate_model(
        model,
        cfg.data_root,
        cfg.dataset,
        image_size=image_size,
        split="test",
        device=device,
        progress=progress,
    )
    (out / "test_metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{cfg.method} on {cfg.dataset} test ({best_path}):")
    print(format_table(results))
    return results


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
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--backend", choices=("ext", "reference"))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--epoch-size", type=int)
    ap.add_argument("--no-progress", action="store_true")
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
        train(cfg, a.out, resume=a.resume, progress=not a.no_progress)
    except (ValueError, TrainingError, checkpoint.CheckpointError, PretrainedUnavailable) as e:
        print(f"scdepth-train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
