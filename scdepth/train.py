"""Training: the Trainer (run -> epoch -> train_step, validate, save) and what surrounds it
-- building the networks, the learning rate, mixed precision, and the final evaluation of
the best checkpoint. The command is scdepth/cli/train.py."""

import contextlib
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

from . import checkpoint, config, host_memory, plots, pose_eval, run_control
from .data.folders import TrainFolder
from .data.layout import UnreadableFrame
from .data.loader import make_loader, to_device
from .distributed import Dist
from .evaluate import evaluate_model
from .logger import Log, StepStats
from .metrics import format_table
from .models import DepthNet, PoseNet, RectifyNet
from .ops import get_backend
from .precision import amp_dtype
from .step import compute_losses, prepare_networks
from .validation import Validator


def selection_score(best_metric: str, metrics: dict, step: int) -> float:
    """The lower-is-better score by which best.pt is chosen among epochs (cfg.best_metric)."""
    if best_metric == "auto":
        best_metric = "abs_rel" if "abs_rel" in metrics else config.NO_GT_BEST_METRIC
    if best_metric == "last":
        return -float(step)
    return metrics.get(best_metric, math.nan)


class TrainingError(RuntimeError):
    pass


class TrainingStopped(Exception):
    """SIGTERM ended the run after saving last.pt at the current step."""


# settings a resumed run may change (how it runs, not what it learns); epochs: train longer
RESUME_MAY_CHANGE = (
    "epochs", "device", "backend", "num_workers", "compile", "host_memory", "log_every",
    "checkpoint_every", "max_bad_steps", "sheet_frames", "val_max_frames", "deterministic",
)  # fmt: skip


def resumed_config(state, asked, explicit, path):
    """The config a resume continues with: the checkpoint's, with the RESUME_MAY_CHANGE keys
    the command set (`explicit`; epochs always from `asked`). TrainingError naming each key
    the command set to another value than the checkpoint's; CheckpointError for a config
    this version cannot read."""
    try:
        saved = config.from_dict(state["config"])
    except ValueError as e:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} holds a config this version of scdepth cannot read ({e})"
        ) from None
    explicit = set(explicit or ()) | {"epochs"}
    differ = [
        f"{k}: the checkpoint has {getattr(saved, k)!r}, the command asks {getattr(asked, k)!r}"
        for k in sorted(explicit - set(RESUME_MAY_CHANGE))
        if getattr(saved, k) != getattr(asked, k)
    ]
    if differ:
        raise TrainingError(
            f"--resume of {path} refused, the run would change what it learns: "
            + "; ".join(differ)
            + " (start a new --out, or drop these settings)"
        )
    for k in explicit & set(RESUME_MAY_CHANGE):
        setattr(saved, k, getattr(asked, k))
    return saved.validate()


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
    generate(
        root,
        preset=cfg.synth_preset,
        seed=cfg.seed,
        num_scenes=cfg.synth_scenes,
        progress=progress,
    )


def learning_rate(cfg, step, total_steps):
    """lr of `step` (from 0): linear warm-up over warmup_steps, then constant or cosine to 0
    at total_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    done = (step - cfg.warmup_steps) / max(total_steps - cfg.warmup_steps, 1)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def build(cfg, device, init=True):
    """DepthNet, PoseNet, RectifyNet (SC-DepthV2; else None) and one Adam over all of them,
    the networks started from cfg.init_from's weights when `init` (a new run; a resumed one
    takes last.pt's). Adam is the fused one: it takes a device flag (found_inf) that skips
    its whole step, so a bad step is skipped without the host reading the flag."""
    imagenet = cfg.pretrained == "imagenet"
    depth_net = DepthNet(cfg.resnet_layers, pretrained=imagenet).to(device)
    scale = cfg.pose_rotation_scale
    pose_net = PoseNet(18, pretrained=imagenet, rotation_scale=scale).to(device)
    rectify_net = None
    if cfg.method == "sc_depth_v2":
        rectify_net = RectifyNet(18, pretrained=imagenet, rotation_scale=scale).to(device)
    if init and cfg.init_from:
        named = {"depth_net": depth_net, "pose_net": pose_net, "rectify_net": rectify_net}
        loaded = checkpoint.init_networks(cfg.init_from, named, cfg.resnet_layers)
        print(f"init_from {cfg.init_from}: {', '.join(loaded)}", file=sys.stderr)
    nets = [n for n in (depth_net, pose_net, rectify_net) if n is not None]
    prepare_networks(cfg, *nets)  # channels_last, compile: all (losses: cfg.compile)
    params = [p for n in nets for p in n.parameters()]
    return depth_net, pose_net, rectify_net, torch.optim.Adam(params, lr=cfg.lr, fused=True)


def finite_flags(total, params, dist):
    """[2] float on the device: 1 where the loss is finite, and where all gradients are, on
    every rank (one in-place all-reduce, nothing read back). The gradient check is the
    fused kernel GradScaler uses (found_inf), here with a unit scale."""
    grads = [p.grad for p in params if p.grad is not None]
    found_inf = torch.zeros((), device=total.device)
    torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones_like(found_inf))
    flags = torch.stack([total.detach().isfinite().float(), 1 - found_inf])
    dist.all_min_(flags)
    return flags


def train(cfg, out_dir, *, resume=False, progress=True, explicit=None):
    """Trains, writing checkpoints, logs and pictures into out_dir (rank 0 only), which no
    other run may use meanwhile. explicit: the config keys the user set (a resume checks
    them against the checkpoint's, see resumed_config)."""
    dist = Dist.setup(cfg.device)
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    set_deterministic(cfg.deterministic, dist.device)
    try:
        lock = run_control.output_lock(out_dir) if dist.is_main else contextlib.nullcontext()
        with lock, host_memory.caching(cfg.host_memory == "cache"):
            trainer = Trainer(cfg, Path(out_dir), dist, resume, progress and dist.is_main, explicit)
            return trainer.run()
    except run_control.FolderInUse as e:
        raise TrainingError(str(e)) from None
    except RuntimeError as e:
        if not loader_worker_died(e):
            raise
        message = worker_death_message(e, Path(out_dir) / "last.pt")
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)
        dist.close()
    raise TrainingError(message)  # outside the handler: the dead loader is released by now


def loader_worker_died(e: BaseException) -> bool:
    """A DataLoader worker's death, as torch reports it: from the iterator, or from its
    SIGCHLD handler at any point of the main thread (so possibly more than once)."""
    return isinstance(e, RuntimeError) and "DataLoader worker" in str(e)


def worker_death_message(e, last) -> str:
    """What to say when a loader worker died; `last`: the run's last.pt."""
    kept = "no checkpoint was written yet"
    for _ in range(3):
        try:
            step = checkpoint.load(last)["step"]
        except checkpoint.CheckpointError as failed:
            # torch's SIGCHLD handler may report the same death again in the middle of the
            # read (any Python code of the main thread): then read again
            if loader_worker_died(failed.__context__):
                continue
            break
        kept = f"--resume continues from {last} (step {step}) as the run would have gone on"
        break
    return (
        f"a data-loading worker died ({e}); the usual cause is the out-of-memory killer: lower "
        f"num_workers or batch_size. {kept}"
    )


def set_deterministic(on, device):
    """torch's deterministic algorithms: on the CPU two runs with one seed are then
    bit-identical. On a GPU the kernels without a deterministic version (inverse_warp's and
    grid_sample's atomic scatters among them) warn instead of stopping the run, and cuBLAS
    needs a fixed workspace (CUBLAS_WORKSPACE_CONFIG, set here unless the user set it)."""
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=device.type == "cuda")


class Trainer:
    """SC-Depth's training loop. Each step: depth and pose of the batch's frames, the
    method's losses, backward, and an Adam step unless the loss or a gradient is not finite
    (then the step is skipped: weights and Adam's state stay as they were). After each epoch:
    validation, last.pt and best.pt. run() is the whole; epoch(), train_step(), sync(),
    validate() and save() its parts.

    No step reads the device: the skip decision stays on it (finite_flags, fused Adam's
    found_inf) and the numbers wait in StepStats until sync() at a log step, a checkpoint
    save or an epoch's end. So max_bad_steps consecutive bad steps are noticed up to
    log_every - 1 steps late (steps after the streak are taken or skipped as usual, and no
    checkpoint is written before the notice)."""

    def __init__(self, cfg, out, dist, resume, progress, explicit=None):
        self.out, self.dist, self.progress = out, dist, progress
        self.last, self.best_path = out / "last.pt", out / "best.pt"
        state = self._prepare_output(resume)
        if state is not None:
            cfg = resumed_config(state, cfg, explicit, self.last)
        self.cfg, self.device = cfg, dist.device
        torch.manual_seed(cfg.seed)
        if dist.is_main:
            ensure_dataset(cfg, progress)
        dist.barrier()
        self.train_set = TrainFolder(
            cfg.data_root,
            image_size=cfg.image_size,
            sequence_length=cfg.sequence_length,
            skip_frames=cfg.skip_frames,
            use_pseudo_depth=cfg.uses_pseudo_depth(),  # V3's refinements only; checked here
            seed=cfg.seed,
        )
        self.validator = Validator(cfg) if dist.is_main else None
        self.ops = get_backend(cfg.backend)
        nets = build(cfg, self.device, init=state is None)
        self.depth_net, self.pose_net, self.rectify_net, self.optim = nets
        self.amp_dtype = amp_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype is torch.float16
        )
        self.step, self.best, self.history = 0, math.inf, {}
        self.stop_request = run_control.StopRequest()
        self.skipped = {"unreadable": 0, "non_finite": 0}
        self.bad_in_a_row, self.total_steps = 0, cfg.epochs * cfg.epoch_size
        if state is not None:
            self._restore(state)
        self.depth_ddp, self.pose_ddp = dist.wrap(self.depth_net), dist.wrap(self.pose_net)
        self.rectify_ddp = dist.wrap(self.rectify_net) if self.rectify_net is not None else None
        self.stats, self.log, self.bar = StepStats(), None, None
        if dist.is_main:
            (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(cfg), sort_keys=False))
            self.log = Log(out, self.history)

    def _prepare_output(self, resume):
        """Checks the output folder (rank 0) and returns last.pt's state when resuming."""
        if self.dist.is_main:
            checkpoint.check_writable(self.out)
            checkpoint.remove_stale_temporaries(self.out)
            if self.last.exists() and not resume:
                raise TrainingError(
                    f"{self.last} exists: pass --resume to continue it, or choose another "
                    "--out (nothing is overwritten)"
                )
        self.dist.barrier()
        return checkpoint.load(self.last) if resume and self.last.exists() else None

    def _restore(self, state):
        for key in ("depth_net", "pose_net", "rectify_net"):
            if getattr(self, key) is not None:
                checkpoint.load_weights(getattr(self, key), state, key, self.last)
        self.optim.load_state_dict(state["optimizer"])
        self.step, self.best, self.skipped = state["step"], state["best"], dict(state["skipped"])
        self.history.update({k: [tuple(p) for p in v] for k, v in state["history"].items()})
        if self.dist.is_main:
            print(f"resuming {self.last} at step {self.step}", file=sys.stderr)

    def run(self):
        """Every remaining epoch, then the final evaluation (rank 0). Returns a Run."""
        self.bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"scdepth-train {self.cfg.method}",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        loader = make_loader(self.train_set, self.cfg, self.dist.rank, self.step, self.device)
        batches = iter(loader)
        try:
            with run_control.sigterm_requests() as self.stop_request:
                while self.step < self.total_steps:
                    self.epoch(batches)
        finally:
            del batches  # stops the loader's workers
            self.bar.close()
            if self.log is not None:
                self.log.close()
        return self.finish()

    def epoch(self, batches):
        """The current epoch's remaining steps, then validation and checkpoints."""
        cfg = self.cfg
        epoch = self.step // cfg.epoch_size
        t0, first = time.perf_counter(), self.step
        while self.step < (epoch + 1) * cfg.epoch_size:
            batch = self.next_batch(batches)
            if batch is not None:
                self.train_step(batch)
            self.step += 1
            self.bar.update()
            log_step = self.step % cfg.log_every == 0 or self.step == self.total_steps
            if log_step:
                self.sync(rate=(self.step - first) / (time.perf_counter() - t0))
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.sync()  # a streak of bad steps stops the run before it is saved
                if self.dist.is_main:
                    self.save(self.last)
            # the ranks agree on a stop at log steps: one host all-reduce a log line, not a step
            if log_step and not self.dist.all_true(not self.stop_request.requested):
                self.stop()
        self.sync()
        if self.dist.is_main:
            self.validate(epoch)
        self.dist.barrier()

    def stop(self):
        """SIGTERM (on any rank): last.pt at the current step, then TrainingStopped."""
        self.sync()
        if self.dist.is_main:
            self.save(self.last)
        self.dist.barrier()
        raise TrainingStopped(
            f"stopped by SIGTERM at step {self.step}; saved {self.last}: --resume continues"
        )

    def next_batch(self, batches):
        """The next batch on the device; None (the step is skipped and counted) when a frame
        of it, on any rank, could not be read. Every rank skips such a step: DDP needs all."""
        try:
            batch, why = to_device(next(batches), self.device), None
        except UnreadableFrame as e:  # a frame went missing mid-run
            batch, why = None, str(e)
        except (ConnectionError, EOFError) as e:
            # A worker killed while it handed a batch over (its shared memory comes through a
            # socket), before torch noticed the death: reported as torch reports one.
            raise RuntimeError(f"DataLoader worker lost while sending a batch ({e!r})") from e
        if self.dist.all_true(batch is not None):
            return batch
        self.stats.unreadable(self.step, why or "another rank's frame was unreadable")
        return None

    def train_step(self, batch):
        """One optimisation step on the device, without reading anything back."""
        total, terms, _ = compute_losses(
            self.depth_ddp,
            self.pose_ddp,
            batch,
            self.cfg,
            self.ops,
            self.dist.rank * 10_000_019 + self.step,
            amp_dtype=self.amp_dtype,
            rectify_net=self.rectify_ddp,
        )
        self.optim.zero_grad(set_to_none=True)
        for group in self.optim.param_groups:
            group["lr"] = learning_rate(self.cfg, self.step, self.total_steps)
        self.scaler.scale(total).backward()  # DDP averages the gradients here
        self.scaler.unscale_(self.optim)
        params = [p for g in self.optim.param_groups for p in g["params"]]
        flags = finite_flags(total, params, self.dist)
        self.optim.found_inf = 1 - flags.amin()  # 1: fused Adam leaves weights and state
        try:
            self.optim.step()
        finally:
            del self.optim.found_inf
        self.scaler.update()  # fp16: backs the scale off after an overflow
        self.stats.add(self.step, total, terms, flags)

    def sync(self, rate=None):
        """Reads StepStats (the loop's one host sync): logs the queued skips, counts bad
        steps in a row (TrainingError at max_bad_steps), and with `rate` (a log step) writes
        the train line: the mean of each term over the steps taken since the last one."""
        events, values = self.stats.read(mean=rate is not None)
        for step, event in events:
            if isinstance(event, str):
                self.note_skip("unreadable", step, event)
            elif event[0]:
                self.bad_in_a_row = 0
            else:
                cause = self.stats.cause(event)
                self.note_skip("non_finite", step, f"non-finite {cause}")
                self.bad_in_a_row += 1
                if self.bad_in_a_row >= self.cfg.max_bad_steps:
                    raise TrainingError(
                        f"{self.bad_in_a_row} consecutive steps had non-finite {cause}; "
                        f"stopping at step {step} (the last checkpoint is intact)"
                    )
        if values is not None and self.log is not None:
            lr = learning_rate(self.cfg, self.step - 1, self.total_steps)
            self.log.write("train", self.step, {**values, "lr": lr})
            self.bar.set_postfix(
                loss=f"{values['loss']:.4f}", photo=f"{values['photo']:.4f}", it_s=f"{rate:.2f}"
            )

    def note_skip(self, kind, step, reason):
        self.skipped[kind] += 1
        if self.log is not None:
            self.log.write("skip", step, {"reason": reason})

    def validate(self, epoch):
        """Rank 0 after each epoch: val metrics and sheet, then last.pt and best.pt."""
        nets = (self.depth_net, self.pose_net, self.rectify_net)
        metrics = self.validator(nets[0], nets[1], self.ops, self.device, nets[2])
        if metrics:
            self.log.write("val", self.step, metrics)
            self.bar.write(
                f"epoch {epoch}: " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
        sheet = self.validator.sheet(self.depth_net, self.device, self.rectify_net, self.ops)
        if sheet is not None:
            (self.out / "sheets").mkdir(exist_ok=True)
            cv2.imwrite(str(self.out / "sheets" / f"epoch_{epoch:03d}.png"), sheet)
        score = selection_score(self.cfg.best_metric, metrics, self.step)
        improved = math.isfinite(score) and score < self.best
        self.best = score if improved else self.best
        self.save(self.last)
        best_missing = not self.best_path.exists()
        if (improved or best_missing) and not checkpoint.link(self.last, self.best_path):
            self.save(self.best_path)

    def save(self, path):
        nets = {"depth_net": self.depth_net, "pose_net": self.pose_net}
        if self.rectify_net is not None:
            nets["rectify_net"] = self.rectify_net
        checkpoint.save(
            {
                "config": config.to_dict(self.cfg),
                "step": self.step,
                "best": self.best,
                **{k: n.state_dict() for k, n in nets.items()},
                "optimizer": self.optim.state_dict(),
                "history": {k: [list(p) for p in v] for k, v in self.history.items()},
                "skipped": self.skipped,
                "world_size": self.dist.world_size,
            },
            path,
        )

    def finish(self):
        """Rank 0: the curves, the skip count, the test split's and the poses' evaluation."""
        results, pose = {}, {}
        if self.dist.is_main:
            plots.save_curves(self.history, self.out / "curves.png", epoch_size=self.cfg.epoch_size)
            if any(self.skipped.values()):
                print(f"skipped steps: {self.skipped}", file=sys.stderr)
            results = final_evaluation(
                self.cfg, self.best_path, self.out, self.device, self.progress
            )
            pose = pose_eval.final_pose_evaluation(self.best_path, self.cfg, self.out, self.device)
        return Run(
            self.depth_net,
            self.pose_net,
            self.step,
            self.skipped,
            results,
            pose,
            self.rectify_net,
        )


def final_evaluation(cfg, best_path, out, device, progress):
    """The best checkpoint on the test split, printed as a table and saved as JSON."""
    if not (Path(cfg.data_root) / "testing").is_dir():
        return {}
    model, image_size = checkpoint.load_depth_model(best_path, device)
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
